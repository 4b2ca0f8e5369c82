"""Straight-through cuts: forward pass is hard, gradient is the soft one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jagged_factory import random_collection

from diffhep.jagged import from_awkward
from diffhep.select import (
    at_least,
    hard_above,
    hard_below,
    hard_window,
    soft_above,
    soft_below,
    soft_window,
    st_above,
    st_below,
    st_window,
    straight_through,
)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


X = jnp.asarray(np.random.default_rng(1).normal(size=40))
CASES = [
    (lambda c, s: st_above(X, c, s), lambda c, s: soft_above(X, c, s), lambda c: hard_above(X, c)),
    (lambda c, s: st_below(X, c, temperature=1 / s), lambda c, s: soft_below(X, c, s), lambda c: hard_below(X, c)),
    (
        lambda c, s: st_window(X, c, c + 1.0, s),
        lambda c, s: soft_window(X, c, c + 1.0, s),
        lambda c: hard_window(X, c, c + 1.0),
    ),
]


@pytest.mark.parametrize(("st", "soft", "hard"), CASES)
def test_forward_is_hard_and_gradient_is_soft(st, soft, hard):
    np.testing.assert_array_equal(st(0.2, 3.0), hard(0.2))
    weights = jnp.arange(X.shape[0], dtype=X.dtype)
    for argnums in (0, 1):
        g_st = jax.grad(lambda c, s: jnp.dot(weights, st(c, s)), argnums=argnums)(0.2, 3.0)
        g_soft = jax.grad(lambda c, s: jnp.dot(weights, soft(c, s)), argnums=argnums)(0.2, 3.0)
        np.testing.assert_allclose(g_st, g_soft, rtol=1e-13)
    # vmap over cuts and slopes, under jit
    cuts, slopes = jnp.array([-0.5, 0.0, 0.5]), jnp.array([1.0, 2.0, 4.0])
    batch = jax.jit(jax.vmap(st))(cuts, slopes)
    for k in range(3):
        np.testing.assert_array_equal(batch[k], hard(cuts[k]))


def test_straight_through_counts_are_hard_counts_with_soft_gradients():
    j = from_awkward(random_collection(3, n_events=20, long_event=8))
    hard = at_least(j, hard_above(j.pt, 20.0), 2)
    w = straight_through(soft_above(j.pt, 20.0, 0.5), hard_above(j.pt, 20.0))
    np.testing.assert_array_equal(w, hard_above(j.pt, 20.0))
    np.testing.assert_array_equal(at_least(j, st_above(j.pt, 20.0, 0.5), 2), hard)
    # gradient: chain rule through the count at the hard weights, times the soft cut's slope
    g_st = jax.jit(jax.grad(lambda c: at_least(j, st_above(j.pt, c, 0.5), 2).sum()))(20.0)
    d_count = jax.grad(lambda w: at_least(j, w, 2).sum())(hard_above(j.pt, 20.0))
    d_soft = jax.grad(lambda c: soft_above(j.pt, c, 0.5) @ d_count)(20.0)
    assert np.isfinite(g_st) and g_st < 0
    np.testing.assert_allclose(g_st, d_soft, rtol=1e-13)
