"""Integer and boolean branches compared with a parameter (issue 18 item 5): hard forward, sigmoid gradient.

A sigmoid cut gives 0.5 to a value exactly on the cut, at every slope, where the hard
cut gives 1 (``>=``) or 0 (``>``). Integer-valued branches (hit counts, tag counts) sit
there whenever the cut is an integer. The engine reads from the files' types which
fields are discrete and evaluates their comparisons with a parameter straight-through:
the soft weight is the hard one, the gradient is the sigmoid's. Float branches keep
the sigmoid, even for a value exactly on the cut.

The oracles are written with uproot, NumPy and ``jax.nn.sigmoid`` on the file's own
arrays (nothing from diffhep).
"""

from __future__ import annotations

import copy

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import uproot

from diffhep.engine.backend import HARD, SOFT
from diffhep.engine.chunked import ChunkedAnalysis
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.execute import ExecutionSettings

#: Cuts on integer values that several objects (events) hold exactly.
CUTS = {"pt_min": 20.0, "nhits_min": 10.0, "nhits_max": 12.0, "ntag_min": 2.0}
#: Slope scales: gentle to steep.
SCALES = (0.2, 1.0, 50.0)


@pytest.fixture(scope="module", autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def write(path, n: int, seed: int) -> None:
    """``n`` events: float ``Muon_pt``, int32 ``Muon_nHits`` (8..14), float32 ``Electron_nHits``, int32 ``nTag``.

    Muon pT avoids ``[15, 25]`` except for some muons exactly at 20 GeV (a float on the cut).
    """
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 4, n)
    m = int(counts.sum())
    pt = np.where(rng.random(m) < 0.5, rng.uniform(5, 15, m), rng.uniform(25, 80, m))
    pt[rng.random(m) < 0.1] = 20.0
    hits = rng.integers(8, 15, m).astype(np.int32)
    e_counts = rng.integers(0, 3, n)
    e_hits = rng.integers(8, 15, int(e_counts.sum())).astype(np.float32)
    with uproot.recreate(path) as f:
        f["Events"] = {
            "Muon_pt": ak.unflatten(pt.astype(np.float32), counts),
            "Muon_nHits": ak.unflatten(hits, counts),
            "Electron_pt": ak.unflatten(rng.uniform(25, 80, len(e_hits)).astype(np.float32), e_counts),
            "Electron_nHits": ak.unflatten(e_hits, e_counts),
            "nTag": rng.integers(0, 5, n).astype(np.int32),
            "MET_pt": rng.uniform(0, 200, n).astype(np.float32),
        }


def config(folder) -> dict:
    parameters = {
        "pt_min": {"init": 20, "bounds": [5, 60], "slope": 0.5},
        "nhits_min": {"init": 10, "bounds": [5, 15], "slope": 2.0},
        "nhits_max": {"init": 12, "bounds": [5, 15], "slope": 2.0},
        "ntag_min": {"init": 2, "bounds": [0, 4], "slope": 3.0},
    }
    return {
        "name": "discrete",
        "lumi_pb": 10.0,
        "samples": {
            "s": {"role": "signal", "files": [str(folder / "s.root")], "xsec_pb": 5.0},
            "b": {"role": "background", "files": [str(folder / "b.root")], "xsec_pb": 50.0},
        },
        "parameters": parameters,
        "objects": {
            "muons": {
                "collection": "Muon",
                "cuts": "pt > pt_min and nHits >= nhits_min",
                "flags": {"many": "nHits > nhits_max"},
            },
            "electrons": {"collection": "Electron", "cuts": "nHits >= nhits_min"},
            "leptons": {"union": ["muons", "electrons"]},
        },
        "regions": {
            "sr": {
                "select": "nTag >= ntag_min and count(muons) >= 1",
                "observable": "MET_pt",
                "binning": {"bins": 4, "range": [0, 200]},
                "bandwidth": 0,
            },
            "cr": {
                "select": "count(leptons) >= 1 and count(muons.many) == 0",
                "observable": "MET_pt",
                "binning": {"bins": 4, "range": [0, 200]},
                "bandwidth": 0,
            },
        },
        "objective": {"name": "asimov_significance"},
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("discrete_cuts")
    write(path / "s.root", 400, 1)
    write(path / "b.root", 600, 2)
    return path


@pytest.fixture(scope="module")
def analysis(folder):
    with jax.enable_x64(True):
        a = ConfiguredAnalysis.from_config(config(folder))
        a.load()
        return a


def arrays(folder, name: str) -> dict[str, np.ndarray]:
    """The file's muons (flat) and events, as read by uproot."""
    events = uproot.open(folder / name)["Events"].arrays(["Muon_pt", "Muon_nHits", "nTag"])
    return {
        "pt": ak.to_numpy(ak.flatten(events["Muon_pt"])).astype(np.float64),
        "nhits": ak.to_numpy(ak.flatten(events["Muon_nHits"])).astype(np.float64),
        "ntag": ak.to_numpy(events["nTag"]).astype(np.float64),
    }


def soft_weights(analysis, key: str, cuts, scale: float) -> np.ndarray:
    data = analysis._data
    slopes = {p.name: p.slope * scale for p in analysis.parameters}
    return np.asarray(analysis.selection_step(data, cuts, slopes, SOFT).weights(key))


def test_integer_and_boolean_branches_are_found_from_the_files_types(analysis):
    # Muon_nHits and nTag are int32; Electron_nHits is float32 (integer values, a float type)
    assert analysis.discrete == ("muons.nHits", "nTag")
    assert analysis._data.discrete == analysis.discrete
    assert analysis.discrete_comparisons() == [
        "object 'muons' cuts: nHits >= nhits_min",
        "object 'muons' flags.many: nHits > nhits_max",
        "region 'sr' select: nTag >= ntag_min",
    ]


@pytest.mark.parametrize("scale", SCALES)
def test_objects_on_an_integer_cut_get_the_hard_weight_at_every_slope(analysis, folder, scale):
    both = {k: np.concatenate([arrays(folder, "s.root")[k], arrays(folder, "b.root")[k]]) for k in ("pt", "nhits")}
    on_cut = both["nhits"] == CUTS["nhits_min"]
    at_max = both["nhits"] == CUTS["nhits_max"]
    assert on_cut.sum() > 20 and at_max.sum() > 20
    slope_pt = 0.5 * scale
    pt_weight = np.asarray(jax.nn.sigmoid(slope_pt * (both["pt"] - CUTS["pt_min"])))
    hits_hard = (both["nhits"] >= CUTS["nhits_min"]).astype(float)
    muons = soft_weights(analysis, "muons", CUTS, scale)
    np.testing.assert_allclose(muons, pt_weight * hits_hard, rtol=1e-12, atol=1e-300)
    assert np.all(muons[on_cut] == pt_weight[on_cut])  # nHits == 10 passes '>= 10' fully: weight 1, not 0.5
    many = soft_weights(analysis, "muons.many", CUTS, scale) / np.where(muons > 0, muons, 1.0)
    assert np.all(many[at_max & (muons > 0)] == 0.0)  # nHits == 12 fails '> 12': weight 0, not 0.5
    # a float branch exactly on the cut keeps the sigmoid: pt == 20 GeV gets 0.5
    exact_pt = (both["pt"] == CUTS["pt_min"]) & (both["nhits"] > CUTS["nhits_min"])
    assert exact_pt.sum() > 5
    np.testing.assert_allclose(muons[exact_pt], 0.5, rtol=1e-12)


def test_a_float_branch_with_integer_values_keeps_the_sigmoid(analysis):
    weights = soft_weights(analysis, "electrons", CUTS, 50.0)
    hits = np.asarray(analysis._data.objects["electrons"].fields["nHits"])
    assert np.sum(hits == CUTS["nhits_min"]) > 10
    np.testing.assert_allclose(weights[hits == CUTS["nhits_min"]], 0.5, rtol=1e-12)  # Electron_nHits is float32


@pytest.mark.parametrize("scale", SCALES)
def test_an_event_branch_on_an_integer_cut_gets_the_hard_weight(analysis, scale):
    step = analysis.selection_step(analysis._data, CUTS, {p.name: p.slope * scale for p in analysis.parameters}, SOFT)
    ntag = np.asarray(analysis._data.events["nTag"])
    weight = np.asarray(step.evaluator("test").weight(analysis.region_defs["sr"].terms()[0]))
    assert np.sum(ntag == CUTS["ntag_min"]) > 50
    np.testing.assert_array_equal(weight, (ntag >= CUTS["ntag_min"]).astype(float))


def test_steep_soft_histograms_and_cutflow_equal_the_hard_ones(analysis):
    cuts = {**CUTS, "pt_min": 21.0}  # away from the muons at 20 GeV: only the integers sit on cuts
    soft = analysis.soft_histograms(cuts, analysis._data, 200.0)
    hard = analysis.hard_histograms(cuts)
    for key, h in hard["sr"].items():  # "cr" reads the float32 Electron_nHits: sigmoids at 10.0, as they should
        assert np.sum(h.counts) > 0
        np.testing.assert_allclose(np.asarray(soft["sr"][key].counts), h.counts, rtol=1e-9, atol=1e-9)
    for rows in analysis.cutflow(CUTS, analysis._data).values():
        assert rows[1]["step"] == "sr: nTag >= ntag_min"
        assert rows[1]["soft"] == pytest.approx(rows[1]["hard"], rel=1e-12)  # at the parameters' own slopes


def test_the_gradient_is_the_sigmoids_straight_through(analysis, folder):
    both = {k: np.concatenate([arrays(folder, "s.root")[k], arrays(folder, "b.root")[k]]) for k in ("pt", "nhits")}
    data, scale = analysis._data, 1.0

    def total(cuts):
        slopes = {p.name: p.slope * scale for p in analysis.parameters}
        return jnp.sum(analysis.selection_step(data, cuts, slopes, SOFT).weights("muons"))

    def sigmoid_total(c):  # the oracle: the same cuts, both sigmoids
        pt = jax.nn.sigmoid(0.5 * scale * (both["pt"] - CUTS["pt_min"]))
        return jnp.sum(pt * jax.nn.sigmoid(2.0 * scale * (both["nhits"] - c)))

    cuts = {k: jnp.asarray(v) for k, v in CUTS.items()}
    grad = jax.grad(total)(cuts)["nhits_min"]
    want = jax.grad(sigmoid_total)(CUTS["nhits_min"])
    assert np.isfinite(float(grad)) and float(want) < 0
    assert float(grad) == pytest.approx(float(want), rel=1e-12)
    events = jax.grad(lambda c: jnp.sum(analysis.soft_histograms(c, data)["sr"]["s"].counts))(cuts)
    assert np.isfinite(float(events["ntag_min"])) and float(events["ntag_min"]) < 0


def test_hard_weights_are_unchanged(analysis):
    hard = analysis.selection_step(analysis._data, CUTS, {p.name: p.slope for p in analysis.parameters}, HARD)
    nhits = np.asarray(analysis._data.objects["muons"].fields["nHits"])
    pt = np.asarray(analysis._data.objects["muons"].fields["pt"])
    np.testing.assert_array_equal(hard.weights("muons"), ((pt > 20) & (nhits >= 10)).astype(float))


def test_streamed_chunks_carry_the_same_discrete_names(analysis, folder):
    reference_value, reference_grad = jax.value_and_grad(lambda c: analysis.objective(c, analysis._data, 1.0))(
        {k: jnp.asarray(v) for k, v in CUTS.items()}
    )
    settings = ExecutionSettings(mode="streaming", chunk_size=150, reuse=False)
    with ChunkedAnalysis(analysis, copy.deepcopy(config(folder)), settings=settings) as streamed:
        streamed.load()
        result = streamed.value_and_grad(CUTS, 1.0)
        hard = streamed.hard_histograms(CUTS)
    assert float(result.value) == pytest.approx(float(reference_value), rel=1e-10)
    for name, g in reference_grad.items():
        assert float(result.grad[name]) == pytest.approx(float(g), rel=1e-9, abs=1e-12)
    for region, samples in analysis.hard_histograms(CUTS).items():
        for key, h in samples.items():
            np.testing.assert_allclose(hard[region][key].counts, h.counts, rtol=1e-10)
