"""The H->ZZ*->4l template (analyses/hzz): what hzz.py selects on the real file, and an optimisation that pays.

* On ``../shared/data/uproot-HZZ.root`` the config's hard selection is that of
  :func:`diffhep.examples.hzz.hard_selection` (same cuts, same binning), event
  by event: histograms, sums of squared weights and the cutflow.
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

from diffhep.examples import hzz
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.cli import main
from diffhep.config import load_config, load_config_dict
from diffhep.histogram import hard_hist
from diffhep.io import read_events

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
def on_real_file(data_file):
    """The template's config with the real file as its only sample (x64), loaded; and the file's events."""
    path = data_file(REAL)
    config = load_config(CONFIG)
    data = copy.deepcopy(config.data)
    sample = {k: v for k, v in data["samples"]["higgs"].items() if k != "generate"}
    data["samples"] = {"higgs": {**sample, "files": [str(path)]}}
    data["systematics"] = {}  # they name the generated backgrounds
    with jax.enable_x64(True):
        real = load_config_dict(data, base_dir=config.base_dir)
        analysis = ConfiguredAnalysis.from_config(real.data, base=real.base_dir)
        loaded = analysis.load()
        events = read_events(path, tree="events", branches=hzz.BRANCHES)
    norm = sample["xsec_pb"] * data["lumi_pb"] / float(np.sum(np.asarray(events.EventWeight, dtype=np.float64)))
    return analysis, loaded, events, norm


@pytest.mark.parametrize("cuts", POINTS, ids=["starting cuts", "tight"])
def test_real_file_hard_selection_is_that_of_hzz_py(on_real_file, cuts):
    analysis, _, events, norm = on_real_file
    m4l, weight, _ = hzz.hard_selection(events, cuts, norm)
    assert len(m4l) >= 10  # uproot-HZZ.root has four-lepton events (ZZ production) at both points
    _, ref = hard_hist(m4l, weight, hzz.EDGES)
    with jax.enable_x64(True):
        hard = analysis.hard_histograms(cuts)["sr"]["higgs"]
    np.testing.assert_allclose(hard.counts, ref.counts, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hard.sumw2, ref.sumw2, rtol=1e-10, atol=1e-12)


def test_real_file_cutflow_is_that_of_hzz_py(on_real_file):
    analysis, loaded, events, norm = on_real_file
    cuts = POINTS[0]
    _, _, ref = hzz.hard_selection(events, cuts, norm)  # all, >= 4 leptons, ZZ candidate, Z mass windows
    with jax.enable_x64(True):
        flow = analysis.cutflow(cuts, loaded)["higgs"]
    assert [r["step"] for r in flow] == [
        "all events",
        "sr: count(leptons) >= 4",
        "sr: z1_mass(muons, electrons) > z1_mass_min",
        "sr: z2_mass(muons, electrons) > z2_mass_min",
    ]
    hard = [r["hard"] for r in flow]
    np.testing.assert_allclose([hard[0], hard[1], hard[3]], [ref[0], ref[1], ref[3]], rtol=1e-10)
    assert ref[2] >= hard[2] >= ref[3]  # Z1 window passed: between "a candidate" and "both windows"
    soft = [r["soft"] for r in flow]
    assert np.all(np.isfinite(soft)) and np.all(np.diff(soft) <= 1e-9)


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
