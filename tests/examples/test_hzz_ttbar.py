"""The H->ZZ->4l and AGC ttbar selections on the real files: soft -> hard, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from diffhep.examples import hzz, ttbar
from diffhep.histogram import hard_hist
from diffhep.io import read_events


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def hzz_events(data_file):
    return read_events(data_file("uproot-HZZ.root"), tree="events", branches=hzz.BRANCHES)


@pytest.fixture(scope="module")
def ttbar_events(data_file):
    return read_events(data_file("nanoAOD_2015_CMS_Open_Data_ttbar.root"), branches=ttbar.BRANCHES)


def _steep(params, slope):
    return {p.name: slope for p in params}


HZZ_POINTS = [
    {p.name: p.init for p in hzz.CUTS},
    {"muon_pt_min": 12.3, "electron_pt_min": 9.1, "iso_max": 2.05, "z1_mass_min": 61.0, "z2_mass_min": 21.3},
]


@pytest.mark.parametrize("cuts", HZZ_POINTS)
def test_hzz_soft_converges_to_plain_awkward(hzz_events, cuts):
    data = hzz.prepare(hzz_events, 1.0, bandwidth=0.0)
    m4l, weight, cutflow = hzz.hard_selection(hzz_events, cuts, 1.0)
    assert len(m4l) >= 5  # the real file has four-lepton events at these cuts
    _, ref = hard_hist(m4l, weight, hzz.EDGES)
    errors = []
    for slope in [1.0, 10.0, 1e7]:
        h = hzz.soft_histogram(data, cuts, _steep(hzz.CUTS, slope))
        errors.append(np.abs(np.asarray(h.counts) - ref.counts).sum() / ref.counts.sum())
    assert errors[0] > errors[1] > errors[2], errors
    np.testing.assert_allclose(h.counts, ref.counts, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(h.sumw2, ref.sumw2, rtol=1e-9, atol=1e-18)
    soft_flow = hzz.soft_cutflow(data, cuts, _steep(hzz.CUTS, 1e7))
    np.testing.assert_allclose(soft_flow, cutflow, rtol=1e-9)
    assert np.all(np.diff(cutflow) <= 0)


def test_hzz_gradients_match_finite_differences(hzz_events):
    data = hzz.prepare(hzz_events, 1.0)
    slopes = {p.name: p.slope for p in hzz.CUTS}
    names = [p.name for p in hzz.CUTS]

    @jax.jit
    def yield_in_window(c):
        h = hzz.soft_histogram(data, dict(zip(names, c)), slopes)
        return jnp.sum(h.counts[5:15]) / jnp.sqrt(jnp.sum(h.sumw2) + 1e-6)

    c0 = jnp.array([6.0, 8.0, 4.0, 45.0, 15.0])
    check_grads(yield_in_window, (c0,), order=1, modes=["fwd", "rev"], eps=1e-4, rtol=1e-4)
    assert np.count_nonzero(np.asarray(jax.grad(yield_in_window)(c0))) == len(names)


TTBAR_POINTS = [
    {"lepton_pt_min": 10.3, "jet_pt_min": 20.1, "btag_min": 0.11},
    {"lepton_pt_min": 30.0, "jet_pt_min": 30.0, "btag_min": 0.5},
]


@pytest.mark.parametrize("cuts", TTBAR_POINTS)
def test_ttbar_soft_observables_converge_to_plain_awkward(ttbar_events, cuts):
    data = ttbar.prepare(ttbar_events, 1.0, bandwidth=0.0)
    hard = ttbar.hard_observables(ttbar_events, cuts)
    assert hard["has_trijet"].sum() >= 5
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
    check_grads(objective, (c0,), order=1, modes=["fwd", "rev"], eps=1e-4, rtol=1e-4)
    assert np.count_nonzero(np.asarray(jax.grad(objective)(c0))) == len(names)
