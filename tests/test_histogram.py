import jax
import jax.numpy as jnp
import numpy as np
import pytest
import relaxed
from jax.test_util import check_grads

from diffhep.histogram import hard_hist, kde_hist


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture
def sample():
    rng = np.random.default_rng(3)
    x = rng.normal(100.0, 15.0, size=5000)
    w = rng.lognormal(0.0, 0.3, size=5000)
    return jnp.asarray(x), jnp.asarray(w)


EDGES = np.linspace(60.0, 140.0, 17)


def test_kde_converges_to_hist_as_bandwidth_shrinks(sample):
    x, w = sample
    _, ref = hard_hist(np.asarray(x), np.asarray(w), EDGES)
    errors = []
    for bandwidth in [2.0, 0.5, 0.05, 1e-4]:
        got = kde_hist(x, w, jnp.asarray(EDGES), bandwidth)
        l1 = np.abs(np.asarray(got.counts) - ref.counts).sum() / ref.counts.sum()
        l1_w2 = np.abs(np.asarray(got.sumw2) - ref.sumw2).sum() / ref.sumw2.sum()
        errors.append(max(l1, l1_w2))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-4
    np.testing.assert_allclose(kde_hist(x, w, jnp.asarray(EDGES), 1e-6).counts, ref.counts, rtol=1e-6)


def test_unit_weights_equal_relaxed_hist(sample):
    x, _ = sample
    got = kde_hist(x, jnp.ones_like(x), jnp.asarray(EDGES), 2.0)
    np.testing.assert_allclose(got.counts, relaxed.hist(x, jnp.asarray(EDGES), 2.0), rtol=1e-10)


def test_gradients_wrt_weights_and_values(sample):
    x, w = sample
    x, w = x[:300], w[:300]
    edges = jnp.asarray(EDGES)

    def f(x, w):
        h = kde_hist(x, w, edges, 3.0)
        return jnp.sum(h.counts ** 2) + jnp.sum(jnp.sqrt(h.sumw2 + 1.0))

    check_grads(f, (x, w), order=1, modes=["fwd", "rev"])
    assert jnp.allclose(jax.jit(f)(x, w), f(x, w))
