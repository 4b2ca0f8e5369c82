"""Selections and observables of configs: counts, logic, candidates, m4l; one-line errors."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import vector
from reference import hzz as reference
from test_configured import write_events

from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.errors import ConfigError, DiffhepError, InputError
from diffhep.histogram import hard_hist
from diffhep.io import generate_hzz_sample, read_events

vector.register_awkward()

CUTS = {"lep_pt": 15.0, "jet_pt": 32.5, "btag_min": 0.625, "met_min": 45.0}


@pytest.fixture(scope="module", autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def logic_config() -> dict:
    """Chained counts, not/or, any(), a joint count with == 0, candidate comparisons, max/min, a static observable."""
    return {
        "name": "logic",
        "lumi_pb": 10.0,
        "samples": {"s": {"role": "signal", "files": ["s.root"], "xsec_pb": 5.0, "weight": "genWeight"}},
        "parameters": {
            "lep_pt": {"init": 20, "bounds": [5, 60], "slope": 0.5},
            "jet_pt": {"init": 30, "bounds": [20, 80], "slope": 0.5},
            "btag_min": {"init": 0.5, "bounds": [0.1, 0.95], "slope": 20},
            "met_min": {"init": 20, "bounds": [0, 100], "slope": 0.2},
        },
        "objects": {
            "muons": {"collection": "Muon", "cuts": "pt > lep_pt", "order": "pt"},
            "electrons": {"collection": "Electron", "cuts": "pt > lep_pt or iso < 0.0625"},
            "jets": {
                "collection": "Jet",
                "require": "abs(eta) < 2.4",
                "cuts": "pt > jet_pt",
                "flags": {"btag": "btag > btag_min"},
            },
        },
        "regions": {
            "veto": {
                "select": "2 <= count(jets) <= 4 and not any(muons)",
                "observable": "MET_pt",
                "binning": {"bins": 5, "range": [0, 150]},
                "bandwidth": 0,
            },
            "lead": {
                "select": "count(jets.btag) >= 1 or MET_pt > met_min",
                "observable": "max(jets.pt)",
                "binning": {"bins": 6, "range": [30, 210]},
                "bandwidth": 0,
            },
            "zlike": {
                "select": "pair_mass(muons) > 40 and 1 <= count(electrons) < 3",
                "observable": "pair_mass(muons)",
                "binning": {"bins": 4, "range": [40, 200]},
                "bandwidth": 0,
            },
            "notag": {
                "select": "count(jets) == 2 and count(jets.btag) == 0",
                "observable": "min(jets.eta)",
                "binning": {"bins": 4, "range": [-2.4, 2.4]},
                "bandwidth": 0,
            },
        },
    }


def logic_reference(events: ak.Array, cuts: dict, normalisation: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    mu = events.Muon[events.Muon.pt > cuts["lep_pt"]]
    mu = mu[ak.argsort(mu.pt, axis=1, ascending=False, stable=True)]
    el = events.Electron[(events.Electron.pt > cuts["lep_pt"]) | (events.Electron.iso < 0.0625)]
    jet = events.Jet[(abs(events.Jet.eta) < 2.4) & (events.Jet.pt > cuts["jet_pt"])]
    n_jet, n_tag = ak.num(jet, axis=1), ak.sum(jet.btag > cuts["btag_min"], axis=1)
    pair = ak.pad_none(
        ak.zip({k: ak.values_astype(mu[k], np.float64) for k in ("pt", "eta", "phi", "mass")}, with_name="Momentum4D"),
        2,
        axis=1,
        clip=True,
    )
    mass = ak.fill_none((pair[:, 0] + pair[:, 1]).mass, -1.0)
    weight = np.asarray(events.genWeight, dtype=np.float64) * normalisation
    regions = {
        "veto": ((n_jet >= 2) & (n_jet <= 4) & (ak.num(mu, axis=1) == 0), events.MET_pt),
        "lead": (
            ((n_tag >= 1) | (events.MET_pt > cuts["met_min"])) & (n_jet > 0),
            ak.fill_none(ak.max(jet.pt, axis=1), -1),
        ),
        "zlike": ((mass > 40) & (ak.num(el, axis=1) >= 1) & (ak.num(el, axis=1) < 3), mass),
        "notag": ((n_jet == 2) & (n_tag == 0), ak.fill_none(ak.min(jet.eta, axis=1), -9)),
    }
    return {k: (ak.to_numpy(x)[ak.to_numpy(m)], weight[ak.to_numpy(m)]) for k, (m, x) in regions.items()}


@pytest.fixture(scope="module")
def logic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("logic")
    write_events(folder / "s.root", 400, 11, signal=True)
    analysis = ConfiguredAnalysis.from_config(logic_config(), base=folder)
    return folder, analysis, analysis.load()


def test_logic_hard_matches_plain_awkward_and_steep_soft_matches_hard(logic):
    folder, analysis, data = logic
    events = read_events(folder / "s.root")
    norm = 5.0 * 10.0 / float(np.sum(np.asarray(events.genWeight, dtype=np.float64)))
    hard = analysis.hard_histograms(CUTS)
    for region, (x, w) in logic_reference(events, CUTS, norm).items():
        _, ref = hard_hist(x, w, analysis.edges[region])
        assert ref.counts.sum() > 0, region
        np.testing.assert_allclose(hard[region]["s"].counts, ref.counts, rtol=1e-10, err_msg=region)
        np.testing.assert_allclose(hard[region]["s"].sumw2, ref.sumw2, rtol=1e-10, err_msg=region)
    soft = jax.jit(analysis.soft_histograms)({k: jnp.asarray(v) for k, v in CUTS.items()}, data, 1e6)
    for region in hard:
        np.testing.assert_allclose(soft[region]["s"].counts, hard[region]["s"].counts, rtol=1e-8, atol=1e-8)


def test_count_distributions_are_shared_between_regions(logic):
    from diffhep.engine.counting import count_limits
    from diffhep.engine.expressions import parse

    _, analysis, _ = logic
    assert analysis._limits == {"jets": 5, "electrons": 4, "jets.btag": 2}
    selects = [parse("count(jets) >= 1 or 3 > count(jets.btag)", "x"), parse("1 <= count(jets) <= 6", "y")]
    assert count_limits(selects, analysis.object_defs) == {"jets": 7, "jets.btag": 4}


def hzz_config(path: Path, higgs: Path, zjets: Path) -> dict:
    return {
        "name": "hzz",
        "lumi_pb": 1.0,
        "tree": "events",
        "samples": {
            "h": {"role": "signal", "files": [str(path)], "xsec_pb": 1.0, "weight": "EventWeight"},
            "g": {"role": "background", "files": [str(higgs)], "xsec_pb": 1.0, "weight": "EventWeight"},
            "z": {"role": "background", "files": [str(zjets)], "xsec_pb": 1.0, "weight": "EventWeight"},
        },
        "parameters": {
            "muon_pt_min": {"init": 5, "bounds": [3, 40], "slope": 1},
            "electron_pt_min": {"init": 7, "bounds": [5, 40], "slope": 1},
            "iso_max": {"init": 5, "bounds": [0.5, 20], "slope": 2},
        },
        "objects": {
            "muons": {"collection": "Muon", "cuts": "pt > muon_pt_min and Iso < iso_max"},
            "electrons": {"collection": "Electron", "cuts": "pt > electron_pt_min and Iso < iso_max"},
        },
        "regions": {
            # 1 GeV bins: a different candidate of the same event (five leptons) lands in another bin
            "4l": {"observable": "m4l(muons, electrons)", "binning": {"bins": 1000, "range": [0, 1000]}, "bandwidth": 2}
        },
    }


def test_m4l_on_uproot_hzz_reproduces_the_reference(data_file, tmp_path):
    """Px/Py/Pz/E collections: pt is computed from them; m4l pairs leptons as the oracle
    tests/reference/hzz.py does (no mass windows), on the real file and on generated Higgs
    (four-electron and four-muon events: two ZZ candidates) and Z+jets samples (five and more
    leptons: candidates of different leptons, whose choice changes m4l)."""
    path = data_file("uproot-HZZ.root")
    higgs = generate_hzz_sample(tmp_path / "higgs.root", "higgs", 400, seed=3)
    zjets = generate_hzz_sample(tmp_path / "zjets.root", "zjets", 1500, seed=3)
    analysis = ConfiguredAnalysis.from_config(hzz_config(path, higgs, zjets), base=path.parent)
    data = analysis.load()
    files = {"h": path, "g": higgs, "z": zjets}
    norms = {k: 1.0 / float(np.sum(reference.read(f)["EventWeight"], dtype=np.float64)) for k, f in files.items()}
    no_windows = {"z1_mass_min": -np.inf, "z2_mass_min": -np.inf}
    for cuts in [
        {"muon_pt_min": 3.5, "electron_pt_min": 5.5, "iso_max": 19.0},  # loose: Z+jets events with five leptons
        {"muon_pt_min": 5.0, "electron_pt_min": 7.0, "iso_max": 5.0},
        {"muon_pt_min": 12.3, "electron_pt_min": 9.1, "iso_max": 2.05},
    ]:
        hard = analysis.hard_histograms(cuts)["4l"]
        for key, file in files.items():
            ref = reference.select(file, {**cuts, **no_windows}, norms[key])
            assert len(ref.m4l) >= 5 or key == "z"  # (Z+jets at the tight point: none)
            counts, _ = reference.histogram(ref.m4l, ref.weight, analysis.edges["4l"])
            np.testing.assert_allclose(hard[key].counts, counts, rtol=1e-10, atol=1e-14, err_msg=key)
    soft = jax.jit(analysis.soft_histograms)({k: jnp.asarray(v) for k, v in cuts.items()}, data, 1e7)["4l"]
    for key, file in files.items():
        ref = reference.select(file, {**cuts, **no_windows}, norms[key])
        counts, _ = reference.histogram(ref.m4l, ref.weight, analysis.edges["4l"])
        assert float(jnp.sum(soft[key].counts)) == pytest.approx(float(np.sum(counts)), rel=1e-6), key


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("errors")
    write_events(path / "s.root", 20, 5, signal=True)
    return path


def _broken(**changes) -> dict:
    """The logic config with its region ``veto`` only (which uses ``met_min``, or the loader refuses it unused)."""
    config = logic_config()
    veto = config["regions"]["veto"]
    config["regions"] = {"veto": dict(veto, select=f"{veto['select']} and MET_pt > met_min")}
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = config
        for p in parents:
            node = node[p]
        node[last] = value
    return config


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"objects.jets.cuts": "ptt > jet_pt"}, ["object 'jets' cuts 'ptt > jet_pt'", "'Jet_ptt'", "mean 'Jet_pt'"]),
        ({"objects.jets.require": "abs(etaa) < 2.4"}, ["object 'jets' require", "'Jet_etaa'", "mean 'Jet_eta'"]),
        ({"objects.jets.collection": "Jets"}, ["object 'jets' require", "'Jets_eta'", "did you mean 'Jet_eta'"]),
        (
            {"regions.veto.select": "MET_ptt > met_min"},
            ["region 'veto' select 'MET_ptt > met_min'", "'MET_ptt'", "did you mean 'MET_pt'"],
        ),
        ({"regions.veto.observable": "sum(jets.mas)"}, ["region 'veto' observable", "'Jet_mas'", "mean 'Jet_mass'"]),
    ],
)
def test_missing_branches_are_one_line_errors_naming_object_expression_and_closest_branch(folder, changes, expected):
    analysis = ConfiguredAnalysis.from_config(_broken(**changes), base=folder)
    with pytest.raises(InputError) as info:
        analysis.load()
    message = str(info.value)
    assert "\n" not in message
    for piece in expected:
        assert piece in message, message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # found by the config loader (the dict is validated first)
        ({"objects.jets.require": "pt > jet_pt"}, "objects.jets.require: parameter 'jet_pt' is not allowed in require"),
        ({"regions.veto.select": "cnt(jets) >= 2"}, "regions.veto.select: unknown event-level function 'cnt'"),
        ({"regions.veto.observable": "trijet_mass(jets)"}, "trijet_mass() takes 2 argument(s), got 1"),
        # found by the engine, located by the config's sections
        (
            {"objects.jets.flags": {"btag": "btag == btag_min"}},
            "objects.jets.flags.btag: '==' and '!=' cannot compare with a parameter",
        ),
        (
            {"samples.s.weight": "genWeight * jet_pt"},
            "samples.s.weight: 'genWeight * jet_pt' uses 'jet_pt': event weights",
        ),
    ],
)
def test_config_mistakes_are_one_line_config_errors(folder, changes, expected):
    with pytest.raises(ConfigError) as info:
        analysis = ConfiguredAnalysis.from_config(_broken(**changes), base=folder)
        analysis.hard_histograms(CUTS)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_engine_errors_name_the_file_and_line_of_the_field(folder):
    """An error the engine finds after loading still names FILE:LINE (through the config's sections)."""
    import yaml

    from diffhep.config import load_config

    path = folder / "broken.yaml"
    path.write_text(yaml.safe_dump(_broken(**{"objects.jets.flags": {"btag": "btag == btag_min"}}), sort_keys=False))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "btag == btag_min" in text)
    with pytest.raises(ConfigError, match=rf"^{path}:{line}: objects\.jets\.flags\.btag: '==' and '!='"):
        ConfiguredAnalysis.from_config(load_config(path))


def test_missing_files_are_input_errors(folder):
    config = _broken()
    config["samples"]["s"]["files"] = ["nothing_*.root"]
    with pytest.raises(DiffhepError, match="no files matched"):
        ConfiguredAnalysis.from_config(config, base=folder).load()


def test_plugin_functions_get_values_or_weighted_objects(logic):
    """Object level: arrays of fields; event level: objects as a Jagged with a ``weight`` field."""
    from diffhep.config import FUNCTIONS, register

    folder, _, _ = logic
    register("test_double")(lambda x: 2 * x)
    register("test_weighted_ht")(lambda jets: jets.sum(jets.weight * jets.value))
    try:
        config = logic_config()
        config["objects"]["jets"]["cuts"] = "test_double(pt) > 2 * jet_pt"
        del config["parameters"]["met_min"]  # used by no region below: the loader would refuse it
        config["regions"] = {
            "a": {
                "select": "count(jets) >= 2",
                "observable": "test_weighted_ht(jets.pt)",
                "binning": {"bins": 5, "range": [0, 500]},
                "bandwidth": 0,
            },
            "b": {
                "select": "count(jets) >= 2",
                "observable": "sum(jets.pt)",
                "binning": {"bins": 5, "range": [0, 500]},
                "bandwidth": 0,
            },
        }
        analysis = ConfiguredAnalysis.from_config(config, base=folder)
        hard = analysis.hard_histograms({k: v for k, v in CUTS.items() if k != "met_min"})
    finally:
        del FUNCTIONS["test_double"], FUNCTIONS["test_weighted_ht"]
    events = read_events(folder / "s.root")
    jets = events.Jet[(abs(events.Jet.eta) < 2.4) & (events.Jet.pt > CUTS["jet_pt"])]
    keep = ak.to_numpy(ak.num(jets, axis=1) >= 2)
    ht = ak.to_numpy(ak.sum(ak.values_astype(jets.pt, np.float64), axis=1))[keep]
    weight = np.asarray(events.genWeight, dtype=np.float64)[keep] * 50.0 / float(np.sum(events.genWeight))
    _, ref = hard_hist(ht, weight, analysis.edges["b"])
    assert ref.counts.sum() > 0
    np.testing.assert_allclose(hard["b"]["s"].counts, ref.counts, rtol=1e-6)
    np.testing.assert_allclose(hard["a"]["s"].counts, hard["b"]["s"].counts, rtol=1e-12)
