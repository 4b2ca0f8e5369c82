"""The AGC-style config of configs/README.md on the CMS Open Data ttbar file reproduces ttbar.py."""

from __future__ import annotations

import copy
import warnings

import awkward as ak
import jax
import numpy as np
import pytest

from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.examples import ttbar
from diffhep.histogram import hard_hist
from diffhep.io import read_events

FILE = "nanoAOD_2015_CMS_Open_Data_ttbar.root"
LUMI = 3378.0
XSEC = {"ttbar": 729.84, "wjets": 15566.2551}
# At the AGC values (30, 30, 0.5) no event of this 200-event file passes; these
# points fill the regions' bins, thinly with the jet ID (the first: two events in 4j2b,
# one in its range; the second: one in each region; the first is also used by test_hzz_ttbar.py).
POINTS = [
    {"lepton_pt_min": 10.3, "jet_pt_min": 20.1, "btag_min": 0.11},
    {"lepton_pt_min": 10.3, "jet_pt_min": 20.1, "btag_min": 0.3},
]


def agc_config() -> dict:
    """The README example: the file plays both samples (made-up roles), with every kind of systematic."""
    return {
        "name": "ttbar",
        "lumi_pb": LUMI,
        "tree": "Events",
        "samples": {
            "ttbar": {"role": "signal", "files": [FILE], "xsec_pb": XSEC["ttbar"], "weight": "genWeight"},
            "wjets": {"role": "background", "files": [FILE], "xsec_pb": XSEC["wjets"], "weight": "genWeight"},
        },
        "parameters": {
            "lepton_pt_min": {"init": 30, "bounds": [10, 80], "slope": 0.5, "unit": "GeV"},
            "jet_pt_min": {"init": 30, "bounds": [20, 80], "slope": 0.5, "unit": "GeV"},
            "btag_min": {"init": 0.5, "bounds": [0.1, 0.95], "slope": 20, "unit": ""},
        },
        "objects": {
            "muons": {
                "collection": "Muon",
                "require": "abs(eta) < 2.1 and tightId and sip3d < 4 and pfRelIso04_all < 0.15",
                "cuts": "pt > lepton_pt_min",
            },
            "electrons": {
                "collection": "Electron",
                "require": "abs(eta) < 2.1 and cutBased == 4 and sip3d < 4",
                "cuts": "pt > lepton_pt_min",
            },
            "leptons": {"union": ["muons", "electrons"]},
            "jets": {
                "collection": "Jet",
                "require": "abs(eta) < 2.4 and bit(jetId, 2)",
                "cuts": "pt > jet_pt_min",
                "order": "pt",
                "flags": {"btag": "btagCSVV2 > btag_min"},
            },
        },
        "regions": {
            "4j1b": {
                "select": "count(leptons) == 1 and count(jets) >= 4 and count(jets.btag) == 1",
                "observable": "sum(jets.pt)",
                "binning": {"bins": 11, "range": [110, 550]},
                "bandwidth": 5,
            },
            "4j2b": {
                "select": "count(leptons) == 1 and count(jets) >= 4 and count(jets.btag) >= 2",
                "observable": "trijet_mass(jets, jets.btag)",
                "binning": {"bins": 11, "range": [110, 550]},
                "bandwidth": 5,
            },
        },
        "systematics": {
            "lumi": {"type": "lumi", "sigma": 0.03},
            "wjets_norm": {"type": "normsys", "samples": ["wjets"], "hi": 1.025, "lo": 0.975},
            "jes": {"type": "histosys", "samples": ["ttbar", "wjets"], "up": {"scale": {"Jet_pt": 1.03}}},
            "jer": {"type": "histosys", "up": {"smear": {"Jet_pt": 0.05}, "seed": 7}},
            "btag_var": {"type": "histosys", "up": {"weight": "1.05"}, "down": {"weight": "0.95"}},
            "alt_ttbar": {"type": "histosys", "samples": ["ttbar"], "up": {"files": [FILE]}},
            "mc_stat": {"type": "staterror"},
        },
        "measurement": {"poi": "mu", "fixed": [], "parameters": {}},
        "objective": {"name": "discovery_significance", "mu": 1.0},
    }


@pytest.fixture(scope="module", autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def agc(data_file):
    """Validated by diffhep.config, then built, loaded once."""
    from diffhep.config import load_config_dict

    path = data_file(FILE)
    config = load_config_dict(agc_config(), base_dir=path.parent)
    analysis = ConfiguredAnalysis.from_config(config.data, base=config.base_dir)
    events = read_events(path, branches=ttbar.BRANCHES)
    return analysis, analysis.load(), events


def _reference(events: ak.Array, cuts: dict, sample: str, analysis: ConfiguredAnalysis) -> dict:
    norm = XSEC[sample] * LUMI / float(np.sum(np.asarray(events.genWeight, dtype=np.float64)))
    selected = ttbar.hard_selection(events, cuts, norm)
    return {r: (hard_hist(x, w, analysis.edges[r])[1], w.sum()) for r, (x, w) in selected.items()}


@pytest.mark.parametrize("cuts", POINTS)
def test_hard_histograms_reproduce_ttbar_hard_selection(agc, cuts):
    analysis, data, events = agc
    hard = analysis.hard_histograms(cuts)
    smeared = ak.with_field(events, events.Jet.pt * 1.03, ["Jet", "pt"])
    for key, sample, ev in [
        ("ttbar", "ttbar", events),
        ("wjets", "wjets", events),
        ("ttbar/jes/up", "ttbar", smeared),
        ("ttbar/alt_ttbar/up", "ttbar", events),
    ]:
        for region, (ref, _) in _reference(ev, cuts, sample, analysis).items():
            np.testing.assert_allclose(
                hard[region][key].counts, ref.counts, rtol=1e-10, atol=1e-9, err_msg=f"{key} {region}"
            )
            np.testing.assert_allclose(
                hard[region][key].sumw2, ref.sumw2, rtol=1e-10, atol=1e-9, err_msg=f"{key} {region}"
            )
    for region in hard:
        np.testing.assert_allclose(
            hard[region]["ttbar/btag_var/up"].counts, 1.05 * hard[region]["ttbar"].counts, rtol=1e-12
        )
    assert any(np.abs(hard[r]["ttbar"].counts).sum() > 0 for r in hard)


def test_cutflow_hard_column_ends_at_the_selected_yield(agc):
    analysis, data, events = agc
    cuts = POINTS[1]
    flow = analysis.cutflow(cuts, data)["ttbar"]
    ref = _reference(events, cuts, "ttbar", analysis)
    assert [r["step"] for r in flow][:4] == [
        "all events",
        "4j1b: count(leptons) == 1",
        "4j1b: count(jets) >= 4",
        "4j1b: count(jets.btag) == 1",
    ]
    assert flow[0]["hard"] == pytest.approx(XSEC["ttbar"] * LUMI)
    assert flow[3]["hard"] == pytest.approx(ref["4j1b"][1], rel=1e-10)
    assert flow[6]["hard"] == pytest.approx(ref["4j2b"][1], rel=1e-10)
    assert all(np.isfinite(r["soft"]) for r in flow)


def test_workspace_of_every_systematic_validates_with_pyhf(agc):
    import pyhf

    analysis, _, _ = agc
    ws = analysis.workspace(analysis.hard_histograms(POINTS[0]))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="jsonschema.RefResolver", category=DeprecationWarning)
        model = pyhf.Workspace(copy.deepcopy(ws)).model()
    assert sorted(model.config.channels) == ["4j1b", "4j2b"]
    assert {"mu", "lumi", "wjets_norm", "jes", "jer", "btag_var", "alt_ttbar", "mc_stat_4j1b"} <= set(
        model.config.parameters
    )
    types = {m["name"]: m["type"] for c in ws["channels"] for s in c["samples"] for m in s["modifiers"]}
    assert types["jer"] == types["alt_ttbar"] == "histosys" and types["lumi"] == "lumi"
    lumi = [p for p in ws["measurements"][0]["config"]["parameters"] if p["name"] == "lumi"][0]
    assert lumi["sigmas"] == [0.03] and lumi["auxdata"] == [1.0]
