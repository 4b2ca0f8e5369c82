"""Object -> event counting: closed forms, at_most, soft counts, against Awkward and FD."""

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jagged_factory import random_collection
from jax.test_util import check_grads

from diffhep.errors import InputError
from diffhep.jagged import from_awkward
from diffhep.select import (
    any_pass,
    at_least,
    at_most,
    count_distribution,
    event_product,
    exactly,
    hard_above,
    none_pass,
    soft_above,
    soft_count,
    soft_count_at_least,
    soft_count_at_most,
    soft_count_exactly,
)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def saturated_weights(j, seed):
    """Soft weights with some exactly 0 and exactly 1."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(size=j.n_objects)
    w[rng.uniform(size=j.n_objects) < 0.2] = 0.0
    w[rng.uniform(size=j.n_objects) < 0.2] = 1.0
    return jnp.asarray(w)


def test_closed_forms_and_at_most_match_count_distribution():
    # two random samples in one collection: one shape, one compiled program per function
    j = from_awkward(ak.concatenate([random_collection(seed, long_event=30) for seed in (0, 1)]))
    w = saturated_weights(j, 0)
    dist = np.asarray(count_distribution(j, w, 4))
    np.testing.assert_allclose(none_pass(j, w), dist[:, 0], atol=1e-14)
    np.testing.assert_allclose(any_pass(j, w), 1 - dist[:, 0], atol=1e-14)
    np.testing.assert_allclose(at_least(j, w, 1), dist[:, 1:].sum(axis=1), atol=1e-14)
    np.testing.assert_allclose(exactly(j, w, 0), dist[:, 0], atol=1e-14)
    for n in range(4):
        np.testing.assert_allclose(at_most(j, w, n), dist[:, : n + 1].sum(axis=1), atol=1e-14)
    w_ev = ak.unflatten(np.asarray(w), j.counts())
    np.testing.assert_allclose(event_product(j, w), ak.to_numpy(ak.prod(w_ev, axis=1)), rtol=1e-13)


def test_hard_weights_give_awkward_counts():
    # two random samples in one collection: one shape, one compiled program per function and n
    arr = ak.concatenate([random_collection(seed, n_events=60, long_event=33) for seed in (2, 3)])
    j = from_awkward(arr)
    cut = 21.7
    w = hard_above(j.pt, cut)
    n_pass = ak.to_numpy(ak.sum(arr.pt > cut, axis=1))
    for n in range(5):
        np.testing.assert_array_equal(at_least(j, w, n), n_pass >= n)
        np.testing.assert_array_equal(at_most(j, w, n), n_pass <= n)
        np.testing.assert_array_equal(exactly(j, w, n), n_pass == n)
    np.testing.assert_array_equal(none_pass(j, w), n_pass == 0)
    np.testing.assert_array_equal(any_pass(j, w), n_pass > 0)
    np.testing.assert_array_equal(soft_count(j, w), n_pass)
    big = 1e6
    np.testing.assert_array_equal(soft_count_at_least(soft_count(j, w), 2, big), n_pass >= 2)
    np.testing.assert_array_equal(soft_count_at_most(soft_count(j, w), 2, big), n_pass <= 2)
    np.testing.assert_array_equal(soft_count_exactly(soft_count(j, w), 2, temperature=1 / big), n_pass == 2)


def test_closed_form_gradients_are_finite_at_0_and_1_and_match_finite_differences():
    j = from_awkward(random_collection(4, n_events=20, long_event=8))
    w = saturated_weights(j, 4)
    assert np.any(np.asarray(w) == 1.0) and np.any(np.asarray(w) == 0.0)
    scale = jnp.arange(1.0, j.n_events + 1)

    @jax.jit
    def f(w):
        return jnp.sum(scale * (none_pass(j, w) + 2 * at_most(j, w, 2) + 3 * any_pass(j, w)))

    check_grads(f, (w,), order=1, modes=["rev"])  # reverse mode against central finite differences
    assert np.all(np.isfinite(jax.grad(f)(w)))
    # d prod(1 - w) / d w_i = -prod_{j != i}(1 - w_j), also where w_i == 1
    grad = np.asarray(jax.grad(lambda w: none_pass(j, w).sum())(w))
    w_np, seg = np.asarray(w), np.asarray(j.segment_ids)
    for i in range(j.n_objects):
        others = (seg == seg[i]) & (np.arange(j.n_objects) != i)
        np.testing.assert_allclose(grad[i], -np.prod(1 - w_np[others]), atol=1e-14)


def test_soft_count_gradients_match_finite_differences():
    j = from_awkward(random_collection(5, n_events=20))

    @jax.jit
    def f(cut, slope):
        n = soft_count(j, soft_above(j.pt, cut, 0.3))
        return jnp.sum(
            soft_count_at_least(n, 2, slope) + soft_count_at_most(n, 1, slope) + soft_count_exactly(n, 3, slope)
        )

    check_grads(f, (17.0, 2.0), order=1, modes=["rev"])  # reverse mode against central finite differences


def test_counts_vmap_over_cuts_and_slopes_under_jit():
    arr = random_collection(6, n_events=30)
    j = from_awkward(arr)
    cuts = jnp.array([10.0, 20.0, 30.0])
    slopes = jnp.array([0.1, 1.0, 1e6])
    f = jax.jit(jax.vmap(lambda c, s: at_most(j, soft_above(j.pt, c, s), 2)))
    got = f(cuts, slopes)
    for k in range(3):
        np.testing.assert_allclose(got[k], at_most(j, soft_above(j.pt, cuts[k], slopes[k]), 2), rtol=1e-13)
    n_pass = ak.to_numpy(ak.sum(arr.pt > 30.0, axis=1))
    np.testing.assert_allclose(got[2], n_pass <= 2, atol=1e-9)


@pytest.mark.parametrize("n", [-1, 1.5])
def test_invalid_counts_are_input_errors(n):
    j = from_awkward(random_collection(0, n_events=5))
    with pytest.raises(InputError, match="integer >= 0"):
        at_least(j, j.pt, n)


# A few fixed layouts (counts per event: no object at all, one event, empty first and last
# events, a long one) and count limits: examples differ in their weights, and XLA's
# compilations per shape and limit are reused.
LAYOUTS = [(0,), (4,), (0, 1, 4, 2, 7, 2, 2, 0, 5, 1, 0)]
#: n_max: the single column, the closed form's, a middle one, beyond most events' counts.
N_MAX = [0, 1, 2, 4]


@st.composite
def weighted_events(draw):
    counts = draw(st.sampled_from(LAYOUTS))
    values = draw(
        st.lists(
            st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0, allow_nan=False)),
            min_size=sum(counts),
            max_size=sum(counts),
        )
    )
    return ak.unflatten(np.asarray(values, dtype=np.float64), counts)


@settings(max_examples=20, deadline=None)
@given(weighted_events(), st.sampled_from(N_MAX))
def test_count_distributions_are_distributions(arr, n_max):
    j = from_awkward(arr)
    dist = np.asarray(count_distribution(j, j.values, n_max))
    assert dist.shape == (len(arr), n_max + 1)
    assert np.all((dist >= -1e-15) & (dist <= 1 + 1e-15))
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, atol=1e-13)
    if n_max >= 1:  # with n_max = 0 the only column is P(N >= 0) = 1
        np.testing.assert_allclose(dist[:, 0], none_pass(j, j.values), atol=1e-14)
    np.testing.assert_allclose(soft_count(j, j.values), ak.to_numpy(ak.sum(arr, axis=1)), atol=1e-13)
