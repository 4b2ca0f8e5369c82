"""The H->ZZ->4l and AGC ttbar selections on the real files: soft -> hard, gradients.

H->ZZ: the plain-Awkward hard path and the soft path are compared with the
independent oracle ``tests/reference/hzz.py`` (which shares no code with
diffhep's lepton and ZZ-candidate building), on ``uproot-HZZ.root`` and on small
generated samples, whose four-electron and four-muon events have several ZZ
candidates (pairing, Z1 choice and the preference among candidates are tested).
"""

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference import hzz as reference

from diffhep.examples import hzz, ttbar
from diffhep.histogram import hard_hist
from diffhep.io import generate_hzz_dataset, read_events


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


#: Small generated H->ZZ samples (a fraction of a second to write).
GENERATED = {"higgs": 600, "zz": 400, "zjets": 1500, "ttbar_4l": 1500}
REAL = "uproot-HZZ.root"


@pytest.fixture(scope="module")
def hzz_generated(tmp_path_factory):
    return generate_hzz_dataset(tmp_path_factory.mktemp("hzz"), GENERATED, seed=3)


@pytest.fixture(scope="module")
def hzz_path(data_file, hzz_generated):
    """Path of an H->ZZ file by name: the real file or a generated sample."""
    return lambda name: data_file(REAL) if name == REAL else hzz_generated[name]


@pytest.fixture(scope="module")
def hzz_events(data_file):
    return read_events(data_file(REAL), tree="events", branches=hzz.BRANCHES)


@pytest.fixture(scope="module")
def ttbar_events(data_file):
    return read_events(data_file("nanoAOD_2015_CMS_Open_Data_ttbar.root"), branches=ttbar.BRANCHES)


def _steep(params, slope):
    return {p.name: slope for p in params}


HZZ_POINTS = [
    {p.name: p.init for p in hzz.CUTS},
    {"muon_pt_min": 12.3, "electron_pt_min": 9.1, "iso_max": 2.05, "z1_mass_min": 61.0, "z2_mass_min": 21.3},
]


@pytest.mark.parametrize("cuts", HZZ_POINTS, ids=["starting cuts", "tight"])
@pytest.mark.parametrize("name", [REAL, *GENERATED])
def test_hzz_hard_selection_is_the_reference(hzz_path, name, cuts):
    """hzz.hard_selection selects the events of the oracle, with the same m4l, event by event."""
    path = hzz_path(name)
    m4l, weight, cutflow = hzz.hard_selection(read_events(path, tree="events", branches=hzz.BRANCHES), cuts, 2.5)
    ref = reference.select(path, cuts, 2.5)
    assert ref.cutflow[1] > 0  # four-lepton events (with ZZ candidates, but at the tight point in fakes)
    np.testing.assert_allclose(np.asarray(m4l), ref.m4l, rtol=1e-12)
    np.testing.assert_allclose(weight, ref.weight, rtol=1e-15)
    np.testing.assert_allclose(cutflow, ref.cutflow, rtol=1e-12)


#: Files of the soft and candidate checks: the real file, generated Higgs (many four-electron and
#: four-muon events: two pairings) and Z+jets (five and more leptons: candidates with different
#: leptons, and candidates sharing their Z1, ordered by the Z2 pT sum).
MIXED = (REAL, "higgs", "zjets")


@pytest.fixture(scope="module")
def hzz_mixed(hzz_path):
    """The events of :data:`MIXED` one after the other (one shape: one compilation), prepared
    (hard histograms), and a function of the cuts giving the oracle's selection of them."""
    paths = [hzz_path(name) for name in MIXED]
    events = ak.concatenate([read_events(p, tree="events", branches=hzz.BRANCHES) for p in paths])

    def select(cuts):
        parts = [reference.select(p, cuts, 1.0) for p in paths]
        m4l, weight = (np.concatenate([getattr(r, k) for r in parts]) for k in ("m4l", "weight"))
        return m4l, weight, sum(r.cutflow for r in parts)

    with jax.enable_x64(True):  # module fixtures set up outside the autouse x64 fixture
        data = hzz.prepare(events, 1.0, bandwidth=0.0)
    return paths, data, select


def test_hzz_candidates_are_the_reference(hzz_mixed):
    """Every ZZ candidate of every event (all leptons), in order of preference: pairing, Z1/Z2
    assignment, the 120 GeV limit, the order by |m(Z1) - m_Z| and the Z2 pT sum tie-break."""
    paths, data, _ = hzz_mixed
    every_lepton = {"muon_pt_min": -np.inf, "electron_pt_min": -np.inf, "iso_max": np.inf}
    expected = []
    for path in paths:
        arrays = reference.read(path)
        for i in range(len(arrays["EventWeight"])):
            candidates = reference.zz_candidates(reference.event_leptons(arrays, i, every_lepton))
            candidates.sort(key=lambda c: (abs(c["mz1"] - reference.Z_MASS), -c["z2_pt"]))
            expected.append([(c["mz1"], c["mz2"], c["m4l"]) for c in candidates])
    c = data.candidates
    assert c.n_events == len(expected)
    got = [[] for _ in expected]
    for event, *masses in zip(np.asarray(c.segment_ids), np.asarray(c.mz1), np.asarray(c.mz2), np.asarray(c.m4l)):
        got[event].append(masses)
    assert [len(g) for g in got] == [len(e) for e in expected]
    assert sum(len(e) > 2 and e[0][0] == e[1][0] for e in expected) > 5  # candidates sharing their Z1
    flat = np.array([m for e in expected for m in e])
    np.testing.assert_allclose(np.array([m for g in got for m in g]), flat, rtol=1e-12)


@pytest.mark.parametrize("cuts", HZZ_POINTS, ids=["starting cuts", "tight"])
def test_hzz_soft_converges_to_the_reference(hzz_mixed, cuts):
    _, data, select = hzz_mixed
    m4l, weight, cutflow = select(cuts)
    assert len(m4l) >= 50  # four-lepton events at these cuts
    counts, sumw2 = reference.histogram(m4l, weight, hzz.EDGES)
    errors = []
    for slope in [1.0, 10.0, 1e7]:
        h = hzz.soft_histogram(data, cuts, _steep(hzz.CUTS, slope))
        errors.append(np.abs(np.asarray(h.counts) - counts).sum() / counts.sum())
    assert errors[0] > errors[1] > errors[2], errors
    np.testing.assert_allclose(h.counts, counts, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(h.sumw2, sumw2, rtol=1e-9, atol=1e-18)
    soft_flow = hzz.soft_cutflow(data, cuts, _steep(hzz.CUTS, 1e7))
    np.testing.assert_allclose(soft_flow, cutflow, rtol=1e-9)
    assert np.all(np.diff(cutflow) <= 0)


def _check_gradient(value, c0: jnp.ndarray, eps: float, rtol: float) -> np.ndarray:
    """``jax.grad(value)`` at ``c0`` (reverse mode, what the optimiser uses) equals a central finite difference of the
    compiled ``value`` along every parameter, to ``rtol`` and 1e-5 absolute (``check_grads``'s float64 default): two
    compiled programs (``check_grads`` in both modes compiled more). Returns the gradient."""
    grad = np.asarray(jax.jit(jax.grad(value))(c0))
    for i, step in enumerate(eps * np.eye(len(c0))):
        finite_difference = (float(value(c0 + step)) - float(value(c0 - step))) / (2 * eps)
        np.testing.assert_allclose(grad[i], finite_difference, rtol=rtol, atol=1e-5, err_msg=f"parameter {i}")
    return grad


def test_hzz_gradients_match_finite_differences(hzz_events):
    data = hzz.prepare(hzz_events, 1.0)
    slopes = {p.name: p.slope for p in hzz.CUTS}
    names = [p.name for p in hzz.CUTS]

    @jax.jit
    def yield_in_window(c):
        h = hzz.soft_histogram(data, dict(zip(names, c)), slopes)
        return jnp.sum(h.counts[5:15]) / jnp.sqrt(jnp.sum(h.sumw2) + 1e-6)

    c0 = jnp.array([6.0, 8.0, 4.0, 45.0, 15.0])
    grad = _check_gradient(yield_in_window, c0, eps=1e-4, rtol=1e-4)
    assert np.count_nonzero(grad) == len(names)


TTBAR_POINTS = [
    {"lepton_pt_min": 10.3, "jet_pt_min": 20.1, "btag_min": 0.11},
    {"lepton_pt_min": 30.0, "jet_pt_min": 30.0, "btag_min": 0.5},
]


@pytest.mark.parametrize("cuts", TTBAR_POINTS)
def test_ttbar_soft_observables_converge_to_plain_awkward(ttbar_events, cuts):
    data = ttbar.prepare(ttbar_events, 1.0, bandwidth=0.0)
    hard = ttbar.hard_observables(ttbar_events, cuts)
    assert hard["has_trijet"].sum() >= 4  # 4 of the 200 events at the AGC cuts, with the jet ID (issue 14 item 1)
    soft = ttbar.soft_observables(data, cuts, _steep(ttbar.CUTS, 1e7))
    for key in ("4j1b", "4j2b", "has_trijet"):
        np.testing.assert_allclose(soft[key], hard[key].astype(float), atol=1e-9, err_msg=key)
    np.testing.assert_allclose(soft["HT"], hard["HT"], rtol=1e-9, err_msg="HT")
    np.testing.assert_allclose(soft["trijet_mass"], hard["trijet_mass"], rtol=1e-9, err_msg="trijet mass")
    # Histograms too, where the file has events in the region.
    soft_h = ttbar.soft_histograms(data, cuts, _steep(ttbar.CUTS, 1e7))
    for region, (x, w) in ttbar.hard_selection(ttbar_events, cuts, 1.0).items():
        _, ref = hard_hist(x, w, ttbar.REGIONS[region][1])
        np.testing.assert_allclose(soft_h[region].counts, ref.counts, rtol=1e-9, atol=1e-9 * np.abs(w).sum())
    # Softer cuts are further from the hard result.
    loose = ttbar.soft_observables(data, cuts, _steep(ttbar.CUTS, 0.5))
    assert np.abs(np.asarray(loose["HT"]) - hard["HT"]).max() > 1.0


def test_ttbar_gradients_match_finite_differences(ttbar_events):
    data = ttbar.prepare(ttbar_events, 1.0)
    slopes = {p.name: p.slope for p in ttbar.CUTS}
    names = [p.name for p in ttbar.CUTS]

    @jax.jit
    def objective(c):
        h = ttbar.soft_histograms(data, dict(zip(names, c)), slopes)
        return jnp.sum(h["4j2b"].counts[2:10]) + 0.1 * jnp.sum(h["4j1b"].counts[3:12])

    c0 = jnp.array([12.0, 22.0, 0.3])
    grad = _check_gradient(objective, c0, eps=1e-4, rtol=1e-4)
    assert np.count_nonzero(grad) == len(names)
