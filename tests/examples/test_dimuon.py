"""The dimuon analysis: soft path vs an independent plain-Awkward hard path, gradients, pyhf."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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

    @jax.jit  # one compiled program per sample (its shapes) for every slope, instead of operation by operation
    def histogram(sample, slope):
        return soft_histograms({"sample": sample}, CUTS, steep(slope), setup)["sample"]

    for name in events:
        mass, weight = dimuon.hard_selection(events[name], CUTS, norms[name])
        _, ref = hard_hist(mass, weight, setup.edges)
        errors = []
        for slope in [0.5, 5.0, 1e6]:
            h = histogram(data[name], slope)
            errors.append(np.abs(np.asarray(h.counts) - ref.counts).sum() / ref.counts.sum())
        assert errors[0] > errors[1] > errors[2], (name, errors)
        np.testing.assert_allclose(h.counts, ref.counts, rtol=1e-6, atol=1e-9 * ref.counts.max())
        np.testing.assert_allclose(h.sumw2, ref.sumw2, rtol=1e-6, atol=1e-9 * ref.sumw2.max())


def test_soft_significance_equals_pyhf_at_the_hard_limit(samples):
    events, norms, data = samples
    setup = Setup(bandwidth=0.0)
    data = {k: dimuon.with_binning(d, setup.edges, 0.0) for k, d in data.items()}
    soft = float(soft_significance(data, CUTS, steep(1e6), setup))
    hard = evaluate_hard(events, norms, CUTS, setup).significance
    assert soft == pytest.approx(hard, rel=1e-4)


#: The slopes of the example's cuts.
SLOPES = {p.name: p.slope for p in dimuon.CUTS}


@jax.jit
def z_of(c, events):
    """Soft Z0 (``Setup()``) at ``c = (muon_pt_min, jet_pt_veto, met_max)``; the events are an argument of the
    compiled program, not constants folded into it. One program per dtype, shared by the tests below."""
    cuts = {"muon_pt_min": c[0], "jet_pt_veto": c[1], "met_max": c[2]}
    return soft_significance(events, cuts, SLOPES, Setup())


def test_objective_gradient_matches_finite_differences(samples):
    """The reverse-mode gradient (what the optimiser uses) equals a central finite difference of the compiled value
    along every cut (step 1e-3 GeV): two compiled programs, where ``check_grads`` in both modes compiled several."""
    _, _, data = samples
    c0 = jnp.array([15.0, 80.0, 90.0])
    grad = np.asarray(jax.jit(jax.grad(z_of))(c0, data))
    eps = 1e-3
    for i, step in enumerate(eps * np.eye(len(c0))):
        finite_difference = (float(z_of(c0 + step, data)) - float(z_of(c0 - step, data))) / (2 * eps)
        np.testing.assert_allclose(grad[i], finite_difference, rtol=1e-4, atol=1e-5, err_msg=dimuon.CUTS[i].name)
    assert np.all(np.abs(grad) > 0)


def test_soft_objective_is_smooth_in_float32(samples):
    """q0 is a difference of large log-likelihoods: it must not turn to noise in float32."""
    events, norms, data64 = samples

    def scan(data) -> np.ndarray:
        dtype = data["signal"].met.dtype
        return np.array(
            [float(z_of(jnp.array([v, CUTS["jet_pt_veto"], CUTS["met_max"]], dtype=dtype), data))
             for v in np.linspace(10.0, 12.0, 9)]
        )  # fmt: skip

    with jax.enable_x64(False):  # the same events prepared in float32, and the program compiled for float32
        data32 = {name: dimuon.prepare(events[name], norms[name]) for name in events}
        assert data32["signal"].met.dtype == jnp.float32
        values = scan(data32)
    exact = scan(data64)
    assert data64["signal"].met.dtype == jnp.float64
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
