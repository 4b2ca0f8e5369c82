"""The dimuon template (``analyses/dimuon``): it optimises, it is the hand-written analysis, it reads real data.

* The canonical config, with its samples generated small into ``tmp_path``,
  runs the optimisation job and the hard-cut pyhf significance improves over
  the starting cuts.
* At the starting cuts its hard-cut histograms equal those of the hand-written
  selection in plain Awkward (:func:`diffhep.examples.dimuon.hard_selection`),
  binned the same way: the YAML says what ``dimuon.py`` does.
* ``real_data.yaml`` observes the CMS 2012 RNTuple (muon collections, ``role:
  data``) with the template's objects and simulation: ``workspace.json``'s
  observations are the data's histograms counted again in plain uproot + NumPy
  (the Z peak), the observed numbers are reported with ``--unblind``, and without
  it (streaming) the signal regions are blinded.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml

from diffhep.cli import main
from diffhep.config import load_config
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.examples import dimuon
from diffhep.io.read import read_events
from diffhep.optimize.settings import OptimizerSettings
from diffhep.workflow.job import run_job

TEMPLATE = Path(__file__).resolve().parents[2] / "analyses" / "dimuon"
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


#: Generated events per simulated sample of ``real_data.yaml`` in its test: the data are the point.
REAL_DATA_SIZES = {"signal": 1000, "dy": 2000, "ttbar": 1000, "qcd": 2000}


@pytest.fixture(scope="module")
def real_data(data_file, tmp_path_factory) -> Path:
    """``real_data.yaml`` with its simulation generated small next to a copy; the data file read where it is."""
    raw = copy.deepcopy(load_config(TEMPLATE / "real_data.yaml").raw)
    assert (TEMPLATE / raw["samples"]["data"]["files"][0]).resolve() == data_file(RNTUPLE).resolve()
    root = tmp_path_factory.mktemp("dimuon_real_data")
    for name, sample in raw["samples"].items():
        if sample["role"] == "data":
            sample["files"] = [str(data_file(RNTUPLE))]
            continue
        sample["files"] = [f"data/{name}.root"]
        sample["generate"]["events"] = REAL_DATA_SIZES[name]
    raw["objective"] = {"name": "asimov_significance"}  # no fit to compile: the objective is not tested here
    path = root / "real_data.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["generate", "--config", str(path)]) == 0
    return path


def _cms2012_histograms(path: Path, edges: dict[str, np.ndarray], pt_min: float) -> dict[str, np.ndarray]:
    """The data's counts per region in plain uproot + NumPy: at least two muons above ``pt_min``, the two
    leading muons (all muons, by pT) of opposite charge, the mass of the two leading selected muons."""
    with uproot.open(path) as f:
        mu = f["Events"].arrays(["Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge"])
    mu = mu[ak.argsort(mu.Muon_pt, axis=1, ascending=False)]  # every field, in pT order
    by_pt = ak.zip({k[5:]: mu[k] for k in mu.fields})
    selected = by_pt[by_pt.pt > pt_min]
    keep = (ak.num(selected) >= 2) & (ak.num(by_pt) >= 2)
    keep = keep & ak.fill_none(ak.firsts(by_pt.charge) * ak.firsts(by_pt.charge[:, 1:]) < 0, False)
    pair = selected[keep][:, :2]
    pt, eta, phi, m = (np.asarray(pair[k], dtype=np.float64) for k in ("pt", "eta", "phi", "mass"))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + m**2)
    mass = np.sqrt(np.maximum(e.sum(1) ** 2 - px.sum(1) ** 2 - py.sum(1) ** 2 - pz.sum(1) ** 2, 0.0))
    return {r: np.histogram(mass[mass < x[-1]], x)[0].astype(float) for r, x in edges.items()}


@pytest.fixture(scope="module")
def unblinded_real_data(real_data) -> Path:
    """``diffhep run --unblind`` of :func:`real_data`: its output folder."""
    out = real_data.parent / "unblinded"
    assert main(["run", str(real_data), "--output", str(out), "--quiet", "--unblind"]) == 0
    return out


def test_real_data_config_observes_the_cms_2012_data(real_data, unblinded_real_data, data_file):
    """``role: data``: the RNTuple's hard-cut histograms are the observations, the observed numbers are reported
    with ``--unblind``, and the objects are the template's own."""
    template = load_config(TEMPLATE / "config.yaml").raw
    config = load_config(real_data)
    for name in ("muons", "leading"):
        assert config.raw["objects"][name] == template["objects"][name]
    tmp_path = unblinded_real_data
    analysis = ConfiguredAnalysis.from_config(config)
    expected = _cms2012_histograms(data_file(RNTUPLE), analysis.edges, 20.0)
    observed = {o["name"]: o["data"] for o in json.loads((tmp_path / "workspace.json").read_text())["observations"]}
    for region, counts in expected.items():
        np.testing.assert_array_equal(observed[region], counts, err_msg=region)
    assert 85.0 <= _peak(expected["peak"], analysis.edges["peak"]) <= 95.0  # the Z, in real data
    assert 50 < expected["peak"].sum() < 1000
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["observed"]["observations"] == "data" and results["observed"]["converged"] is True
    assert set(results["yields"]["peak"]) == {"signal", "dy", "ttbar", "qcd"}  # data are no sample of the model


def test_real_data_config_is_blinded_and_streams(real_data, tmp_path):
    """Without ``--unblind`` (streaming, the data read whole): no observed number, no data in workspace.json's
    signal regions; both regions hold a trace of signal (mis-paired muons), so both are signal regions."""
    command = ["run", str(real_data), "--output", str(tmp_path), "--quiet", "--execution", "streaming"]
    assert main([*command, "--chunk-size", "1500"]) == 0
    observed = json.loads((tmp_path / "results.json").read_text())["observed"]
    assert observed["blinded_regions"] == observed["signal_regions"] and "peak" in observed["blinded_regions"]
    assert observed["cls"] == "blinded" and observed["mu_hat"] == "blinded"
    assert set(observed["workspace_observations"].values()) <= {"asimov", "data"}
    for region in observed["blinded_regions"]:
        assert observed["workspace_observations"][region] == "asimov"


def test_real_data_over_http_gives_the_same_observations(real_data, unblinded_real_data, shared_data_server):
    """The data file read from the local HTTP server (issue 14): the same observations as ``diffhep run --unblind``
    wrote from the local file, read by the analysis itself (no second ``diffhep run``: the observed numbers are
    computed from these observations and the simulation, both the same, on the path that
    :func:`test_real_data_config_observes_the_cms_2012_data` checks)."""
    raw = yaml.safe_load(real_data.read_text())
    raw["samples"]["data"]["files"] = [f"{shared_data_server.url}/{RNTUPLE}"]
    path = real_data.parent / "real_data_http.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    config = load_config(path)
    analysis = ConfiguredAnalysis.from_config(config.data, base=config.base_dir)
    assert analysis.observations == "data"
    before = len(shared_data_server.requests)
    remote = analysis.observed({p.name: p.init for p in analysis.parameters}, {})
    assert f"/{RNTUPLE}" in shared_data_server.requests[before:]
    local = {
        o["name"]: o["data"] for o in json.loads((unblinded_real_data / "workspace.json").read_text())["observations"]
    }
    assert set(remote) == set(local)
    for region, counts in local.items():
        np.testing.assert_array_equal(remote[region], counts, err_msg=region)
