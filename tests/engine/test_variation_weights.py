"""Variation weights with ``leading(object.field, i)``: the i-th object of a config collection, on the host.

On the CMS Open Data ttbar file (200 events), a config whose ``jets`` are the
AGC's (``abs(eta) < 2.4`` and the jet ID, ordered by pT) carries weight variations that read
``leading(jets.pt, i)`` (a field the config reads anyway) and
``leading(jets.mass, 1)`` (one only the weight reads). Their event weights and
hard-cut histograms equal plain-Awkward computations; bad uses are one-line
:class:`~diffhep.errors.ConfigError` naming the systematic.
"""

from __future__ import annotations

import copy
import dataclasses

import awkward as ak
import jax
import numpy as np
import pytest

from diffhep.config import load_config_dict
from diffhep.engine import combine, loading
from diffhep.engine.backend import HARD, SOFT
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.errors import ConfigError, InputError
from diffhep.examples import ttbar
from diffhep.io import read_events

FILE = "nanoAOD_2015_CMS_Open_Data_ttbar.root"
LUMI, XSEC = 3378.0, 729.84
#: Loose cuts that fill both regions of this small file.
CUTS = {"lepton_pt_min": 10.3, "jet_pt_min": 20.1, "btag_min": 0.3}
#: Systematic -> (up weight, factor from the plain-Awkward jets: ``events * var`` pT-ordered records).
VARIATIONS = {
    "btag_var_0": ("1 + 0.075 * leading(jets.pt, 0) / 50", lambda j: 1 + 0.075 * _nth(j.pt, 0) / 50),
    "btag_var_3": ("1 + 0.075 * leading(jets.pt, 3) / 50", lambda j: 1 + 0.075 * _nth(j.pt, 3) / 50),
    "far": ("1 + leading(jets.pt, 9) / 100", lambda j: 1 + _nth(j.pt, 9) / 100),
    "mixed": (
        "1 + 0 * genWeight + leading(jets.mass, 1) / (100 + leading(jets.pt, 0))",
        lambda j: 1 + _nth(j.mass, 1) / (100 + _nth(j.pt, 0)),
    ),
}


def _nth(values: ak.Array, i: int) -> np.ndarray:
    """The i-th value per event, 0 where there are fewer (float64)."""
    return ak.to_numpy(ak.fill_none(ak.pad_none(values, i + 1, axis=1)[:, i], 0)).astype(np.float64)


def config(path: str, systematics: dict | None = None) -> dict:
    """The AGC selection on ``path`` (one sample) with weight variations."""
    if systematics is None:
        systematics = {name: {"type": "histosys", "up": {"weight": up}} for name, (up, _) in VARIATIONS.items()}
    return {
        "name": "weights",
        "lumi_pb": LUMI,
        "samples": {"ttbar": {"role": "signal", "files": [path], "xsec_pb": XSEC, "weight": "genWeight"}},
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
                "bandwidth": 10,
            },
            "4j2b": {
                "select": "count(leptons) == 1 and count(jets) >= 4 and count(jets.btag) >= 2",
                "observable": "trijet_mass(jets, jets.btag)",
                "binning": {"bins": 11, "range": [110, 550]},
                "bandwidth": 10,
            },
        },
        "systematics": systematics,
    }


def analysis_of(data: dict) -> ConfiguredAnalysis:
    checked = load_config_dict(data)
    return ConfiguredAnalysis.from_config(checked.data, base=checked.base_dir)


@pytest.fixture(scope="module")
def loaded(data_file):
    """The analysis, loaded in float64, and the file's events with the AGC's jets (plain Awkward)."""
    path = str(data_file(FILE))
    with jax.enable_x64(True):
        analysis = analysis_of(config(path))
        data = analysis.load()
    events = read_events(path, branches=[*ttbar.BRANCHES])
    jets = events.Jet[(abs(events.Jet.eta) < 2.4) & ((events.Jet.jetId & 4) != 0)]
    jets = jets[ak.argsort(jets.pt, axis=1, ascending=False, stable=True)]
    return analysis, data, events, jets


@pytest.mark.parametrize("name", list(VARIATIONS))
def test_weight_is_nominal_times_the_plain_awkward_factor(loaded, name):
    _, data, events, jets = loaded
    nominal = data.weights_of("ttbar")
    varied = data.weights_of(f"ttbar/{name}/up")  # a weight variation shares the nominal's events
    assert len(varied) == len(events) == 200
    factor = VARIATIONS[name][1](jets)
    np.testing.assert_allclose(varied, nominal * factor, rtol=1e-12, atol=0)
    if name == "far":  # no event of this file has ten jets in |eta| < 2.4: the weight is 1
        assert np.all(factor == 1.0)
    else:
        assert np.std(factor) > 0


def test_hard_histograms_carry_the_weight(loaded):
    analysis, _, events, jets = loaded
    with jax.enable_x64(True):
        hard = analysis.hard_histograms(CUTS)
    norm = XSEC * LUMI / float(np.sum(np.asarray(events.genWeight, dtype=np.float64)))
    factor = 1 + 0.075 * _nth(jets.pt, 0) / 50
    obs = ttbar.hard_observables(events, CUTS)
    weight = np.asarray(events.genWeight, dtype=np.float64) * norm * factor
    edges = np.linspace(110.0, 550.0, 12)
    for region, x in (("4j1b", "HT"), ("4j2b", "trijet_mass")):
        mask = obs[region]
        assert mask.sum() > 0
        counts = np.histogram(obs[x][mask], bins=edges, weights=weight[mask])[0]
        np.testing.assert_allclose(hard[region]["ttbar/btag_var_0/up"].counts, counts, rtol=1e-10, atol=1e-12)
        # the selected jets are a prefix of the pT-ordered jets: leading(jets.pt, 0) is the leading selected jet
        selected = jets.pt[jets.pt > CUTS["jet_pt_min"]]
        np.testing.assert_array_equal(_nth(selected, 0)[mask], _nth(jets.pt, 0)[mask])


def test_symmetrised_down_and_the_spec(loaded):
    analysis, _, _, _ = loaded
    with jax.enable_x64(True):
        hard = analysis.hard_histograms(CUTS)
        spec = analysis.spec(hard)
    mods = {m["name"]: m for c in spec["channels"] for s in c["samples"] for m in s["modifiers"]}
    assert {"btag_var_0", "btag_var_3", "far", "mixed"} <= set(mods)
    assert all(mods[k]["type"] == "histosys" for k in VARIATIONS)


@pytest.mark.parametrize(
    "weight, message",
    [
        ("1 + leading(jet.pt, 0)", "unknown object 'jet'"),
        ("1 + leading(jets.btag, 0)", "is a flag"),
        ("1 + leading(jets.pt, 0.5)", "non-negative integer"),
        ("1 + leading(jets.pt, -1)", "non-negative integer"),
        ("1 + leading(jets.pt, btag_min)", "btag_min"),
        ("1 + leading(jets.pt)", "leading"),
        ("1 + leading(jets, 0)", "jets"),
        ("1 + leading(MET_pt, 0)", "leading"),
        ("1 + leading(jets.pt, 0) * count(jets)", "count"),
    ],
)
def test_bad_uses_are_one_line_errors_naming_the_systematic(data_file, weight, message):
    data = config(str(data_file(FILE)), {"btag_bad": {"type": "histosys", "up": {"weight": weight}}})
    with pytest.raises(ConfigError) as err:
        analysis_of(copy.deepcopy(data))
    text = str(err.value)
    assert "\n" not in text and "btag_bad" in text and message in text, text


def test_unknown_field_is_a_one_line_input_error_when_reading(data_file):
    weight = "1 + leading(jets.ptt, 0)"
    data = config(str(data_file(FILE)), {"btag_bad": {"type": "histosys", "up": {"weight": weight}}})
    analysis = analysis_of(data)  # fields are the file's: known only when it is read
    with pytest.raises(InputError) as err:
        analysis.load()
    text = str(err.value)
    assert "\n" not in text and weight in text and "'Jet_ptt'" in text and "Jet_pt" in text, text


def test_leading_is_not_an_event_weight_of_a_sample(data_file):
    data = config(str(data_file(FILE)), {})
    data["samples"]["ttbar"]["weight"] = "genWeight * leading(jets.pt, 0)"
    with pytest.raises(ConfigError, match="leading"):
        analysis_of(data)


def _old_layout(analysis: ConfiguredAnalysis):
    """Every variation loaded as a sample of its own, a copy of its events (the layout before issue 17 item 5)."""
    options = dict(defs=analysis.object_defs, specs=analysis.expressions, parameters=analysis.parameter_map,
                   functions=analysis.functions)  # fmt: skip
    variants = analysis.variants()
    parts = [
        loading.load_sample(
            s, v, plan_=analysis.branch_plan, region_defs=analysis.region_defs, lumi_pb=analysis.lumi_pb, **options
        )  # fmt: skip
        for _, s, v in variants
    ]
    data = combine.concatenate(parts, [k for k, _, _ in variants], analysis.object_defs, analysis.expressions)
    data = dataclasses.replace(data, discrete=analysis.discrete)
    return loading.with_kernels(data, region_defs=analysis.region_defs, **options)


def test_weight_variations_share_the_nominal_events_with_the_same_histograms(data_file):
    """A weight variation and a jet-energy scale: only the nominal and the scale are events of their own
    (the weight variation is one row of weights over the nominal's 200 events, its objects no copy), and
    the hard-cut histograms are bit for bit those of every variation loaded as a copy of its events."""
    systematics = {
        "btag_var_0": {"type": "histosys", "up": {"weight": VARIATIONS["btag_var_0"][0]}},
        "jes": {"type": "histosys", "up": {"scale": {"Jet_pt": 1.03}}},
    }
    with jax.enable_x64(True):
        analysis = analysis_of(config(str(data_file(FILE)), systematics))
        data = analysis.load()
        old = _old_layout(analysis)
    assert data.keys == old.keys == ("ttbar", "ttbar/btag_var_0/up", "ttbar/jes/up")
    assert np.shape(data.weight) == (400,) and np.shape(old.weight) == (600,)
    assert np.shape(data.varied_weight) == (1, 200)
    for name, jagged in data.objects.items():  # no copy of the objects for the weight variation
        assert 3 * jagged.n_objects == 2 * old.objects[name].n_objects, name
    assert data.objects["jets"].n_objects > 0
    leaves, old_leaves = (jax.tree.leaves((d.objects, d.candidates, d.events)) for d in (data, old))
    assert 3 * sum(x.nbytes for x in leaves) == 2 * sum(x.nbytes for x in old_leaves)
    np.testing.assert_array_equal(data.weights_of("ttbar/btag_var_0/up"), old.weights_of("ttbar/btag_var_0/up"))
    new_h, old_h = (analysis.histograms_at(CUTS, d, 1.0, HARD) for d in (data, old))
    for region, hs in old_h.items():  # 4j1b: an event observable; 4j2b: a candidate observable
        for key, h in hs.items():
            np.testing.assert_array_equal(new_h[region][key].counts, h.counts)
            np.testing.assert_array_equal(new_h[region][key].sumw2, h.sumw2)
        assert all(np.any(h.counts != 0) for h in hs.values()), region  # genWeight: some negative


@pytest.mark.parametrize("backend", [HARD, SOFT], ids=["hard", "soft"])
def test_varied_rows_fill_as_copies_of_their_entries(backend):
    """``fill_by_sample`` with rows of weights over blocks of entries (two variations of sample ``a``, one
    of ``b``: its second row is unused) equals the fill of those entries copied, the layout before
    issue 17 item 5."""
    rng = np.random.default_rng(3)
    n, edges = 50, np.linspace(0.0, 1.0, 6)
    x, weight = rng.uniform(-0.1, 1.1, n), rng.uniform(0.5, 2.0, n)
    sample = (np.arange(n) >= 30).astype(np.int32)  # entries 0-29 of "a", 30-49 of "b"
    rows = rng.uniform(0.5, 2.0, (2, n))
    blocks = ((0, 30, ("a/v1", "a/v2")), (30, 50, ("b/v1",)))
    keys = ("a", "b", "a/v1", "a/v2", "b/v1")
    with jax.enable_x64(True):
        kernel = backend.kernel(backend.asarray(x), edges, 0.2)
        got = backend.fill_by_sample(kernel, weight, sample, keys, (rows, blocks))
        copies = np.concatenate([np.arange(n), np.arange(30), np.arange(30), np.arange(30, 50)])
        copied = backend.kernel(backend.asarray(x[copies]), edges, 0.2)
        w = np.concatenate([weight, rows[0, :30], rows[1, :30], rows[0, 30:]])
        s = np.concatenate([sample, [2] * 30, [3] * 30, [4] * 20]).astype(np.int32)
        want = backend.fill_by_sample(copied, w, s, keys)
    assert list(got) == list(keys)
    for key in keys:
        assert np.sum(np.asarray(want[key].counts)) > 0, key
        np.testing.assert_allclose(np.asarray(got[key].counts), np.asarray(want[key].counts), rtol=1e-13, atol=0)
        np.testing.assert_allclose(np.asarray(got[key].sumw2), np.asarray(want[key].sumw2), rtol=1e-13, atol=0)
