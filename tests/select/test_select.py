import itertools

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import relaxed
from jagged_factory import random_collection
from jax.test_util import check_grads

from diffhep.errors import ConfigError
from diffhep.jagged import from_awkward
from diffhep.select import (
    at_least,
    count_distribution,
    exactly,
    hard_above,
    hard_below,
    hard_window,
    none_pass,
    soft_above,
    soft_below,
    soft_window,
)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def brute_force_distribution(w, n_max):
    """P(N = k) for k < n_max and P(N >= n_max), enumerating all pass/fail patterns."""
    out = np.zeros(n_max + 1)
    for pattern in itertools.product([0, 1], repeat=len(w)):
        p = np.prod([wi if s else 1 - wi for wi, s in zip(w, pattern)])
        out[min(sum(pattern), n_max)] += p
    return out


def test_soft_cuts_equal_relaxed_cut_where_finite():
    x = jnp.linspace(-5, 5, 101)
    np.testing.assert_allclose(soft_above(x, 0.5, 2.0), relaxed.cut(x, 0.5, 2.0, "above"), rtol=1e-12)
    np.testing.assert_allclose(soft_below(x, 0.5, 2.0), relaxed.cut(x, 0.5, 2.0, "below"), rtol=1e-12)


@pytest.mark.parametrize("keep, ours", [("above", soft_above), ("below", soft_below)])
@pytest.mark.parametrize("slope", [0.5, 2.0, 20.0])
def test_soft_cut_gradients_equal_relaxed_cut_where_finite(keep, ours, slope):
    """d/d(cut) and d/d(slope) of the summed weights, per event too (jacobian in x)."""
    x = jnp.linspace(-5, 5, 101)
    g_ours = jax.grad(lambda c, s: ours(x, c, s).sum(), argnums=(0, 1))(0.5, slope)
    g_relaxed = jax.grad(lambda c, s: relaxed.cut(x, c, s, keep).sum(), argnums=(0, 1))(0.5, slope)
    assert np.all(np.isfinite(g_relaxed))
    np.testing.assert_allclose(g_ours, g_relaxed, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(
        jax.jacfwd(lambda v: ours(v, 0.5, slope))(x),
        jax.jacfwd(lambda v: relaxed.cut(v, 0.5, slope, keep))(x),
        rtol=1e-10,
        atol=1e-14,
    )


def test_temperature_is_inverse_slope_and_matches_relaxed_cut():
    x = jnp.linspace(-5, 5, 101)
    np.testing.assert_allclose(soft_above(x, 0.5, temperature=0.25), relaxed.cut(x, 0.5, 4.0, "above"), rtol=1e-12)
    np.testing.assert_allclose(soft_below(x, 0.5, temperature=0.25), soft_below(x, 0.5, 4.0), rtol=1e-15)
    np.testing.assert_allclose(
        soft_window(x, -1.0, 2.0, temperature=0.5), soft_window(x, -1.0, 2.0, slope=2.0), rtol=1e-15
    )


@pytest.mark.parametrize("kwargs", [{}, {"slope": 1.0, "temperature": 1.0}])
def test_soft_cut_needs_exactly_one_of_slope_and_temperature(kwargs):
    with pytest.raises(ConfigError, match="exactly one of slope"):
        soft_above(jnp.zeros(3), 0.0, **kwargs)


def test_soft_cuts_vmap_over_cuts_and_slopes():
    x = jnp.asarray(np.random.default_rng(3).normal(size=50))
    cuts = jnp.linspace(-1.0, 1.0, 5)
    slopes = jnp.array([0.5, 1.0, 10.0, 100.0, 1e4])
    batched = jax.jit(jax.vmap(lambda c, s: soft_window(x, c, c + 1.0, s)))(cuts, slopes)
    for k in range(5):
        np.testing.assert_allclose(batched[k], soft_window(x, cuts[k], cuts[k] + 1.0, slopes[k]), rtol=1e-14)


def test_soft_cut_gradients_match_finite_differences():
    x = jnp.asarray(np.random.default_rng(4).normal(size=20))
    check_grads(lambda c, s: soft_above(x, c, s).sum(), (0.1, 3.0), order=1, modes=["fwd", "rev"])
    check_grads(lambda c, t: soft_below(x, c, temperature=t).sum(), (0.1, 0.3), order=1, modes=["rev"])
    check_grads(lambda lo, hi: soft_window(x, lo, hi, 2.0).sum(), (-0.5, 0.7), order=1, modes=["rev"])


def test_soft_cut_gradient_stays_finite_at_steep_slopes():
    x = jnp.array([-1000.0, 0.0, 1000.0])
    g = jax.grad(lambda c: soft_above(x, c, 50.0).sum())(0.1)
    assert np.isfinite(g)
    g_relaxed = jax.grad(lambda c: relaxed.cut(x, c, 50.0, "above").sum())(0.1)
    assert not np.isfinite(g_relaxed)  # the instability we avoid


@pytest.mark.parametrize("keep, ours, hard", [("above", soft_above, hard_above), ("below", soft_below, hard_below)])
@pytest.mark.parametrize("slope", [50.0, 1e4, 1e8])
def test_steep_soft_cuts_stay_finite_where_relaxed_cut_gives_nan_gradients(keep, ours, hard, slope):
    """exp(slope * |x - cut|) overflows in relaxed.cut: its weights stay 0/1 but the gradients are NaN."""
    x = jnp.array([-1000.0, -3.0, 0.1 + 0.5 / slope, 3.0, 1000.0])
    w = ours(x, 0.1, slope)
    assert np.all(np.isfinite(w)) and np.all((w >= 0) & (w <= 1))
    far = np.abs(np.asarray(x) - 0.1) > 1.0
    np.testing.assert_allclose(np.asarray(w)[far], np.asarray(hard(x, 0.1), dtype=float)[far], atol=1e-30)
    np.testing.assert_allclose(w, relaxed.cut(x, 0.1, slope, keep), rtol=1e-12)  # the values agree
    g = jax.grad(lambda c, s: ours(x, c, s).sum(), argnums=(0, 1))(0.1, slope)
    g_relaxed = jax.grad(lambda c, s: relaxed.cut(x, c, s, keep).sum(), argnums=(0, 1))(0.1, slope)
    assert np.all(np.isfinite(g))
    assert not np.any(np.isfinite(g_relaxed))  # the overflow diffhep's sigmoid avoids
    # where relaxed.cut is finite (the one event near the cut), the gradients agree
    near = x[2:3]
    np.testing.assert_allclose(
        jax.grad(lambda c: ours(near, c, slope).sum())(0.1),
        jax.grad(lambda c: relaxed.cut(near, c, slope, keep).sum())(0.1),
        rtol=1e-10,
    )


@pytest.mark.parametrize("slope", [1e2, 1e4, 1e6])
def test_soft_cuts_converge_to_hard(slope):
    x = jnp.asarray(np.random.default_rng(0).normal(size=1000))
    tol = 1.0 / slope * 50
    mask = np.abs(np.asarray(x) - 0.3) > tol
    np.testing.assert_allclose(soft_above(x, 0.3, slope)[mask], hard_above(x, 0.3)[mask], atol=1e-6)
    np.testing.assert_allclose(soft_below(x, 0.3, slope)[mask], hard_below(x, 0.3)[mask], atol=1e-6)
    mask2 = mask & (np.abs(np.asarray(x) - 1.0) > tol)
    np.testing.assert_allclose(soft_window(x, 0.3, 1.0, slope)[mask2], hard_window(x, 0.3, 1.0)[mask2], atol=1e-6)


def test_count_distribution_matches_enumeration():
    # three random samples in one collection: one shape, one compiled program per function
    arr = ak.concatenate([random_collection(seed, n_events=15, long_event=9) for seed in (0, 1, 2)])
    j = from_awkward(arr)
    w = jax.nn.sigmoid(0.2 * (j.pt - 15.0))
    dist = np.asarray(count_distribution(j, w, 3))
    w_ev = ak.unflatten(np.asarray(w), j.counts())
    for i in range(j.n_events):
        np.testing.assert_allclose(dist[i], brute_force_distribution(ak.to_list(w_ev[i]), 3), atol=1e-12)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(at_least(j, w, 2), dist[:, 2] + dist[:, 3], rtol=1e-12)
    np.testing.assert_allclose(exactly(j, w, 1), dist[:, 1], rtol=1e-12)
    np.testing.assert_allclose(none_pass(j, w), dist[:, 0], rtol=1e-12)


def test_count_gradients_match_finite_differences():
    # First order only: optimisers need no more, and compiling second-order
    # checks cost ~30 s on two CPU cores.
    j = from_awkward(random_collection(0))

    @jax.jit
    def f(c):
        w = soft_above(j.pt, c, 0.2)
        return jnp.sum(at_least(j, w, 2) * jnp.arange(j.n_events) + exactly(j, w, 1) + none_pass(j, w))

    check_grads(f, (18.0,), order=1, modes=["rev"])  # reverse mode against central finite differences


@pytest.mark.parametrize("n", [0, 1, 2, 4])
def test_soft_count_converges_to_hard_count(n):
    arr = random_collection(11, n_events=200)
    j = from_awkward(arr)
    cut = 17.3
    hard = ak.to_numpy(ak.num(arr.pt[arr.pt > cut]) >= n).astype(float)
    passes = arr.pt > cut
    errors = []
    for slope in [10.0, 1e3, 1e6]:
        w = soft_above(j.pt, cut, slope)
        error = np.abs(np.asarray(at_least(j, w, n)) - hard)
        # P(N >= n) is linear in each weight with a coefficient in [0, 1]: an event's error is at
        # most the sum of its objects' distances to their hard weights (a bound at every slope).
        moved = ak.to_numpy(ak.sum(abs(ak.unflatten(np.asarray(w), ak.num(arr.pt)) - passes), axis=1))
        assert np.all(error <= moved + 1e-12), (slope, np.max(error - moved))
        errors.append(error.max())
    # The closest pT is 0.046 GeV from the cut: still soft at slope 10, exp(-46) = 1e-20 at 1e3.
    assert (errors[0] > 0.1 if n > 0 else errors[0] == 0) and max(errors[1:]) < 1e-15, errors
    np.testing.assert_allclose(at_least(j, soft_above(j.pt, cut, 1e6), n), hard, atol=1e-9)
    hard_exact = ak.to_numpy(ak.num(arr.pt[arr.pt > cut]) == n).astype(float)
    np.testing.assert_allclose(exactly(j, soft_above(j.pt, cut, 1e6), n), hard_exact, atol=1e-9)


def test_counting_is_jittable_and_gradients_finite_with_saturated_weights():
    j = from_awkward(random_collection(12))
    f = jax.jit(lambda c: at_least(j, soft_above(j.pt, c, 1e4), 2).sum())
    assert np.isfinite(jax.grad(f)(10.0))
