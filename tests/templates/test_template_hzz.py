"""The H->ZZ*->4l template (analyses/hzz): what hzz.py selects on the real file, and an optimisation that pays.

* On ``../shared/data/uproot-HZZ.root`` and on a small generated Higgs sample
  (many events with several ZZ candidates) the config's hard selection is that
  of the independent oracle ``tests/reference/hzz.py`` in its "choose, then cut"
  convention (the template's ``z1_mass``/``z2_mass`` plugin applies the mass
  windows to the candidate ``m4l`` chose): histograms, sums of squared weights
  and every cutflow step. On the real file no event has a preferred candidate
  outside the windows, so there :func:`diffhep.examples.hzz.hard_selection`
  ("cut, then choose") agrees too; on the generated sample it does not.
* At small size (generated samples in ``tmp_path``), ``diffhep generate`` and
  ``diffhep optimize`` run the config as it is, and the hard-cut pyhf
  significance at the optimised cuts beats the one at the starting cuts.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml
from reference import hzz as reference

from diffhep.cli import main
from diffhep.config import load_config, load_config_dict
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.examples import hzz
from diffhep.io import generate_hzz_sample, read_events

TEMPLATE = Path(__file__).resolve().parents[2] / "analyses" / "hzz"
CONFIG = TEMPLATE / "config.yaml"
REAL = "uproot-HZZ.root"
#: The starting cuts and a tighter point where the real file still has ten selected events.
POINTS = [
    {p.name: p.init for p in hzz.CUTS},
    {"muon_pt_min": 12.3, "electron_pt_min": 9.1, "iso_max": 2.05, "z1_mass_min": 61.0, "z2_mass_min": 21.3},
]
#: Events per sample of the small optimisation, and its steps.
SMALL = {"higgs": 1000, "zz": 3000, "zjets": 4000, "ttbar_4l": 4000}
STEPS = 30


def test_symlink_and_starting_cuts_are_those_of_hzz_py():
    config = load_config(TEMPLATE.parents[1] / "configs" / "hzz.yaml")
    assert config.base_dir == TEMPLATE  # the symlink resolves: paths are relative to analyses/hzz
    params = config.data["parameters"]
    for cut in hzz.CUTS:
        assert params[cut.name]["init"] == cut.init and params[cut.name]["slope"] == cut.slope
        assert params[cut.name]["bounds"] == [cut.low, cut.high]
    analysis = ConfiguredAnalysis.from_config(config.data, base=config.base_dir)
    np.testing.assert_array_equal(analysis.edges["sr"], hzz.EDGES)


@pytest.fixture(scope="module")
def on_real_file(data_file, tmp_path_factory):
    """The template's config with the real file as its signal and a small generated Higgs sample as
    a background (x64), loaded; and each sample's path and normalisation."""
    path = data_file(REAL)
    generated = generate_hzz_sample(tmp_path_factory.mktemp("hzz") / "higgs.root", "higgs", 600, seed=3)
    config = load_config(CONFIG)
    data = copy.deepcopy(config.data)
    sample = {k: v for k, v in data["samples"]["higgs"].items() if k != "generate"}
    data["samples"] = {
        "higgs": {**sample, "files": [str(path)]},
        "generated": {**sample, "role": "background", "files": [str(generated)]},
    }
    data["systematics"] = {}  # they name the generated backgrounds
    with jax.enable_x64(True):
        real = load_config_dict(data, base_dir=config.base_dir)
        analysis = ConfiguredAnalysis.from_config(real.data, base=real.base_dir)
        loaded = analysis.load()
    samples = {}
    for name, file in [("higgs", path), ("generated", generated)]:
        weights = read_events(file, tree="events", branches=["EventWeight"]).EventWeight
        samples[name] = (
            file,
            sample["xsec_pb"] * data["lumi_pb"] / float(np.sum(np.asarray(weights, dtype=np.float64))),
        )
    return analysis, loaded, samples


@pytest.mark.parametrize("cuts", POINTS, ids=["starting cuts", "tight"])
def test_real_file_hard_selection_is_that_of_the_reference(on_real_file, cuts):
    analysis, _, samples = on_real_file
    with jax.enable_x64(True):
        hard = analysis.hard_histograms(cuts)["sr"]
    for name, (path, norm) in samples.items():
        ref = reference.select(path, cuts, norm, choose_then_cut=True)
        assert len(ref.m4l) >= 10  # four-lepton events (ZZ production in uproot-HZZ.root) at both points
        counts, sumw2 = reference.histogram(ref.m4l, ref.weight, analysis.edges["sr"])
        np.testing.assert_allclose(hard[name].counts, counts, rtol=1e-10, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(hard[name].sumw2, sumw2, rtol=1e-10, atol=1e-12, err_msg=name)
    # On the real file the conventions agree: hzz.py ("cut, then choose") selects the same events.
    path, norm = samples["higgs"]
    m4l, _, _ = hzz.hard_selection(read_events(path, tree="events", branches=hzz.BRANCHES), cuts, norm)
    np.testing.assert_allclose(
        np.asarray(m4l), reference.select(path, cuts, norm, choose_then_cut=True).m4l, rtol=1e-12
    )


def test_real_file_cutflow_is_that_of_the_reference(on_real_file):
    analysis, loaded, samples = on_real_file
    cuts = POINTS[0]
    with jax.enable_x64(True):
        flows = analysis.cutflow(cuts, loaded)
    for name, (path, norm) in samples.items():
        # all, >= 4 leptons, the chosen candidate's Z1 window, and its Z2 window
        ref = reference.select(path, cuts, norm, choose_then_cut=True).cutflow
        flow = flows[name]
        assert [r["step"] for r in flow] == [
            "all events",
            "sr: count(leptons) >= 4",
            "sr: z1_mass(muons, electrons) > z1_mass_min",
            "sr: z2_mass(muons, electrons) > z2_mass_min",
        ]
        np.testing.assert_allclose([r["hard"] for r in flow], ref, rtol=1e-10, err_msg=name)
        soft = [r["soft"] for r in flow]
        assert np.all(np.isfinite(soft)) and np.all(np.diff(soft) <= 1e-9)
    # The generated sample tells the conventions apart: its Z2 window removes events whose
    # preferred candidate fails it, and "cut, then choose" would keep some of them.
    path, norm = samples["generated"]
    chosen = reference.select(path, cuts, norm, choose_then_cut=True).cutflow
    assert chosen[2] > chosen[3] and reference.select(path, cuts, norm).cutflow[3] > chosen[3]


def small_config(folder: Path, seed: int = 1) -> Path:
    """The template's config with small generated samples written to ``folder`` (nothing else changed
    but the scan, which is made cheap)."""
    config = load_config(CONFIG)
    data = copy.deepcopy(config.raw)
    for name, sample in data["samples"].items():
        sample["files"] = [f"data/{name}.root"]
        sample["generate"] = {**sample["generate"], "events": SMALL[name], "seed": seed}
    data["plugins"] = [str(config.resolve(p)) for p in data["plugins"]]
    data["optimizer"]["scan"] = {"points": 2, "width": 0.1}
    path = folder / "hzz_small.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_optimisation_at_small_size_improves_the_hard_significance(tmp_path, capsys):
    config = small_config(tmp_path)
    assert main(["generate", "--config", str(config)]) == 0
    assert sorted(p.name for p in (tmp_path / "data").glob("*.root")) == sorted(f"{s}.root" for s in SMALL)
    out = tmp_path / "optimize"
    assert main(["optimize", str(config), "--output", str(out), "--steps", str(STEPS), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    z = results["significance"]["hard_pyhf"]
    assert results["steps"] == STEPS and results["stop_reason"] == f"completed all {STEPS} steps"
    assert z["before"] > 0 and z["after"] > 1.5 * z["before"], z
    assert results["significance"]["soft"]["after"] > results["significance"]["soft"]["before"]
    # The fakes of Z+jets and ttbar are not isolated: the optimiser tightens the isolation.
    assert results["final"]["iso_max"] < results["initial"]["iso_max"]
    assert list(results["final"]) == list(results["initial"]) == list(results["parameters"])  # the config's order
    after = results["yields"]["after"]["sr"]
    before = results["yields"]["before"]["sr"]
    assert after["zjets"] + after["ttbar_4l"] < 0.5 * (before["zjets"] + before["ttbar_4l"])
    assert (out / "workspace.json").is_file() and (out / "report.md").is_file()
    assert "hard Z0" in capsys.readouterr().out
