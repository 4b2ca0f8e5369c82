"""The dimuon analysis: soft path vs an independent plain-Awkward hard path, gradients, pyhf."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from diffhep.examples import dimuon
from diffhep.examples.dimuon_fit import Setup, evaluate_hard, soft_histograms, soft_significance
from diffhep.histogram import hard_hist
from diffhep.io import PROCESSES, Sample, load_sample, normalisation

LUMI = 10_000.0
CUTS = {"muon_pt_min": 20.0, "jet_pt_veto": 60.0, "met_max": 50.0}


@pytest.fixture(scope="module", autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def samples(synthetic_dataset):
    events, norms, data = {}, {}, {}
    for name, path in synthetic_dataset.items():
        sample = Sample(name, (str(path),), PROCESSES[name]["xsec_pb"])
        norms[name] = normalisation(sample, LUMI)
        events[name] = load_sample(sample, dimuon.BRANCHES)
        data[name] = dimuon.prepare(events[name], norms[name])
    return events, norms, data


def steep(slope):
    return {name: slope for name in CUTS}


def test_soft_selection_converges_to_plain_awkward_hard_selection(samples):
    events, norms, data = samples
    setup = Setup(bandwidth=0.0)
    data = {k: dimuon.with_binning(d, setup.edges, 0.0) for k, d in data.items()}
    for name in events:
        mass, weight = dimuon.hard_selection(events[name], CUTS, norms[name])
        _, ref = hard_hist(mass, weight, setup.edges)
        errors = []
        for slope in [0.5, 5.0, 1e6]:
            h = soft_histograms({name: data[name]}, CUTS, steep(slope), setup)[name]
            errors.append(np.abs(np.asarray(h.counts) - ref.counts).sum() / ref.counts.sum())
        assert errors[0] > errors[1] > errors[2], (name, errors)
        h = soft_histograms({name: data[name]}, CUTS, steep(1e6), setup)[name]
        np.testing.assert_allclose(h.counts, ref.counts, rtol=1e-6, atol=1e-9 * ref.counts.max())
        np.testing.assert_allclose(h.sumw2, ref.sumw2, rtol=1e-6, atol=1e-9 * ref.sumw2.max())


def test_soft_significance_equals_pyhf_at_the_hard_limit(samples):
    events, norms, data = samples
    setup = Setup(bandwidth=0.0)
    data = {k: dimuon.with_binning(d, setup.edges, 0.0) for k, d in data.items()}
    soft = float(soft_significance(data, CUTS, steep(1e6), setup))
    hard = evaluate_hard(events, norms, CUTS, setup).significance
    assert soft == pytest.approx(hard, rel=1e-4)


def test_objective_gradient_matches_finite_differences(samples):
    _, _, data = samples
    small = {k: jax.tree.map(lambda x: x, v) for k, v in data.items()}
    setup = Setup()
    slopes = {p.name: p.slope for p in dimuon.CUTS}

    @jax.jit
    def z_of(c, events):
        cuts = {"muon_pt_min": c[0], "jet_pt_veto": c[1], "met_max": c[2]}
        return soft_significance(events, cuts, slopes, setup)

    def z(c):  # the events are an argument of the compiled program, not constants folded into it
        return z_of(c, small)

    c0 = jnp.array([15.0, 80.0, 90.0])
    check_grads(z, (c0,), order=1, modes=["rev", "fwd"], eps=1e-3, atol=1e-5, rtol=1e-4)
    assert np.all(np.abs(np.asarray(jax.grad(z)(c0))) > 0)


def test_soft_objective_is_smooth_in_float32(synthetic_dataset):
    """q0 is a difference of large log-likelihoods: it must not turn to noise in float32."""

    def scan(x64: bool) -> np.ndarray:
        with jax.enable_x64(x64):
            data = {}
            for name, path in synthetic_dataset.items():
                sample = Sample(name, (str(path),), PROCESSES[name]["xsec_pb"])
                data[name] = dimuon.prepare(load_sample(sample, dimuon.BRANCHES), normalisation(sample, LUMI))
            slopes = {p.name: p.slope for p in dimuon.CUTS}
            z = jax.jit(lambda v, events: soft_significance(events, {**CUTS, "muon_pt_min": v}, slopes, Setup()))
            dtype = jnp.float64 if x64 else jnp.float32
            return np.array([float(z(jnp.asarray(v, dtype=dtype), data)) for v in np.linspace(10.0, 12.0, 9)])

    values, exact = scan(False), scan(True)
    # The curvature of Z itself (second differences up to 5e-3 of the largest value here, where a
    # bin's qcd MC thins below one event's sumw2 and its floor takes over) is the same in float32 as
    # in float64; float32 moves the values by ~1e-5. Alternating noise of +-5e-4 would show here.
    second_difference = np.diff(values, 2) - np.diff(exact, 2)
    assert np.abs(second_difference).max() < 2e-4 * np.abs(exact).max(), (values, exact)
    assert np.abs(values - exact).max() < 1e-4 * np.abs(exact).max(), (values, exact)


def test_binning_mismatch_is_a_one_line_error(samples):
    from diffhep.errors import ConfigError

    _, _, data = samples
    with pytest.raises(ConfigError, match="prepared with bandwidth 1.0 .* setup has bandwidth 2.0"):
        soft_histograms(data, CUTS, steep(1.0), Setup(bandwidth=2.0))
