"""The dimuon template (``analyses/dimuon``): it optimises, it is the hand-written analysis, it reads real data.

* The canonical config, with its samples generated small into ``tmp_path``,
  runs the optimisation job and the hard-cut pyhf significance improves over
  the starting cuts.
* At the starting cuts its hard-cut histograms equal those of the hand-written
  selection in plain Awkward (:func:`diffhep.examples.dimuon.hard_selection`),
  binned the same way: the YAML says what ``dimuon.py`` does.
* ``real_data.yaml`` runs with ``diffhep run`` on ``uproot-Zmumu.root`` (flat
  branches, read as they are) and its mass histogram peaks at the Z; the
  README's config for the CMS 2012 RNTuple (muon collections) reads the
  RNTuple with the same object definitions as the template and peaks there too.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import uproot
import yaml

from diffhep.cli import main
from diffhep.config import load_config, load_config_dict
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.examples import dimuon
from diffhep.io.read import read_events
from diffhep.optimize.settings import OptimizerSettings
from diffhep.workflow.job import run_job

TEMPLATE = Path(__file__).resolve().parents[2] / "analyses" / "dimuon"
ZMUMU = "uproot-Zmumu.root"
RNTUPLE = "Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root"

#: Generated events per sample: small, but enough that the improvement is far above MC noise
#: (checked with generator seeds 1, 2 and 3).
SIZES = {"signal": 2000, "dy": 5000, "ttbar": 3000, "qcd": 5000}
#: Optimiser steps: compilation, not the steps, dominates the run time.
STEPS = 60


@pytest.fixture(scope="module")
def small_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The canonical config with small samples generated next to it (``diffhep generate --config``)."""
    raw = copy.deepcopy(load_config(TEMPLATE / "config.yaml").raw)
    root = tmp_path_factory.mktemp("dimuon_template")
    for name, sample in raw["samples"].items():
        sample["files"] = [f"data/{name}.root"]
        sample["generate"]["events"] = SIZES[name]
    raw["optimizer"]["scan"] = {"points": 2, "width": 0.1}  # 4 random points; the scan is tested elsewhere
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["generate", "--config", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def job(small_config: Path) -> tuple[ConfiguredAnalysis, dict]:
    """The optimisation job of the small config: the analysis (data loaded) and ``results.json``."""
    config = load_config(small_config)
    analysis = ConfiguredAnalysis.from_config(config.data, base=config.base_dir)
    settings = replace(OptimizerSettings.from_config(config.data["optimizer"]), steps=STEPS)
    output = small_config.parent / "optimize"
    run_job(analysis, settings, output, config_hash=config.config_hash, progress=False)
    return analysis, json.loads((output / "results.json").read_text())


def test_optimisation_improves_the_hard_cut_pyhf_significance(job):
    _, results = job
    z = results["significance"]["hard_pyhf"]
    # measured: 0.325 -> 0.544, 0.443 -> 0.550, 0.392 -> 0.548 (x1.67, x1.24, x1.40) with seeds 1, 2, 3: at this
    # size one qcd MC event weighs 4000 events, and a bin without qcd MC still carries one (x4.6, x3.5, x3.6
    # when an empty bin counted as background-free)
    assert z["after"] > 1.2 * z["before"], z
    # the physics the README tells: a higher muon threshold (QCD), a lower MET cut (ttbar). The jet veto is
    # flat at this size: it ends at 141 or 158 GeV (from 150) depending only on XLA's float32 rounding (fused
    # or not), with soft objectives 0.5352 and 0.5350, so its direction is not asserted here.
    initial, final = results["initial"], results["final"]
    assert final["muon_pt_min"] > initial["muon_pt_min"] + 10.0  # measured 5 -> 18.9
    assert final["met_max"] < initial["met_max"] - 100.0  # measured 200 -> 51.3


@pytest.mark.parametrize("stage", ["initial", "final"])
def test_hard_histograms_equal_the_hand_written_selection(job, small_config, stage):
    analysis, results = job
    config = load_config(small_config)
    cuts = results[stage]  # the starting cuts, and the optimised ones
    hard = analysis.hard_histograms(cuts)["mumu"]
    edges = analysis.edges["mumu"]
    lumi = config.data["lumi_pb"]
    for name, sample in config.data["samples"].items():
        events = read_events([str(config.resolve(f)) for f in sample["files"]], branches=dimuon.BRANCHES)
        norm = sample["xsec_pb"] * lumi / np.sum(np.asarray(events.genWeight, dtype=np.float64))
        mass, weight = dimuon.hard_selection(events, cuts, norm)
        counts, _ = np.histogram(mass, bins=edges, weights=weight)
        sumw2, _ = np.histogram(mass, bins=edges, weights=weight**2)
        assert counts.sum() > 0 or stage == "final", name  # the optimised cuts may leave no QCD event
        # weights are float32 in the analysis: agreement to 1e-6, and no event in another bin
        np.testing.assert_allclose(hard[name].counts, counts, rtol=1e-6, atol=1e-9 * counts.max(), err_msg=name)
        np.testing.assert_allclose(hard[name].sumw2, sumw2, rtol=1e-6, atol=1e-9 * sumw2.max(), err_msg=name)


def _peak(counts: np.ndarray, edges: np.ndarray) -> float:
    """Centre of the fullest bin, GeV."""
    k = int(np.argmax(counts))
    return 0.5 * (edges[k] + edges[k + 1])


def test_real_data_config_reads_uproot_zmumu_as_is(data_file, tmp_path):
    path = TEMPLATE / "real_data.yaml"
    config = load_config(path)
    assert config.resolve(config.data["samples"]["data"]["files"][0]).resolve() == data_file(ZMUMU).resolve()
    assert main(["run", str(path), "--output", str(tmp_path), "--quiet"]) == 0
    hist = uproot.open(tmp_path / "histograms.root")["z_peak_data"]
    counts, edges = hist.values(), hist.axis().edges()
    assert 85.0 <= _peak(counts, edges) <= 97.0, counts
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["yields"]["z_peak"]["data"] == pytest.approx(counts.sum())
    assert 1500 < counts.sum() <= 2304  # every event counts 1; most of the 2304 pairs pass


def _readme_rntuple_config() -> dict:
    """The RNTuple config of the README (the ```yaml block that names the RNTuple)."""
    text = (TEMPLATE / "README.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S) if RNTUPLE in b]
    assert len(blocks) == 1, "README.md: expected one yaml block reading the CMS 2012 RNTuple"
    return yaml.safe_load(blocks[0])


def test_readme_rntuple_config_reads_the_cms_2012_muon_collections(data_file):
    raw = _readme_rntuple_config()
    file = data_file(RNTUPLE)
    (written,) = raw["samples"]["data"]["files"]
    assert (TEMPLATE / written).resolve() == file.resolve()  # the README's path, from analyses/dimuon/
    template = load_config(TEMPLATE / "config.yaml").raw
    for name in ("muons", "leading"):  # the template's own muon objects, unchanged
        assert raw["objects"][name] == template["objects"][name]
    config = load_config_dict(raw, "README.md", base_dir=TEMPLATE)
    analysis = ConfiguredAnalysis.from_config(config.data, base=config.base_dir)
    analysis.load()
    hard = analysis.hard_histograms({p.name: p.init for p in analysis.parameters})["mumu"]["data"]
    assert 50 < hard.counts.sum() < 1000  # weight 1 per event
    assert 85.0 <= _peak(hard.counts, analysis.edges["mumu"]) <= 97.0, hard.counts


def test_readme_rntuple_config_runs_in_auto_and_streaming_mode(data_file, tmp_path, capsys):
    """``diffhep run`` with no execution section (``auto``: sizes its input first) and streaming, on the RNTuple."""
    raw = _readme_rntuple_config()
    raw["samples"]["data"]["files"] = [str(data_file(RNTUPLE))]
    path = tmp_path / "rntuple.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    for mode, extra in (("auto", []), ("streaming", ["--execution", "streaming", "--chunk-size", "300"])):
        assert main(["run", str(path), "--output", str(tmp_path / mode), *extra]) == 0, capsys.readouterr().err
    assert "auto: in memory (estimated" in capsys.readouterr().err
    with (
        uproot.open(tmp_path / "auto" / "histograms.root") as a,
        uproot.open(tmp_path / "streaming" / "histograms.root") as b,
    ):
        keys = [k for k in a.keys(cycle=False) if "data" in k]
        assert keys
        for key in keys:
            np.testing.assert_allclose(a[key].values(), b[key].values(), rtol=1e-12)
