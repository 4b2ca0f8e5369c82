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


@pytest.mark.parametrize("bandwidth", [0.5, 2.0, 10.0])
def test_unit_weights_equal_relaxed_hist_in_values_and_gradients(sample, bandwidth):
    """Same bandwidth convention: the Gaussian kernel's standard deviation, in units of x (relaxed.hist's scale)."""
    x, _ = sample
    x = x[:400]
    edges = jnp.asarray(EDGES)
    got = kde_hist(x, jnp.ones_like(x), edges, bandwidth)
    ref = relaxed.hist(x, edges, bandwidth)
    np.testing.assert_allclose(got.counts, ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.sumw2, ref, rtol=1e-10, atol=1e-12)  # unit weights: sum w^2 = sum w
    probe = jnp.arange(1.0, len(EDGES))  # a generic linear function of the counts
    g = jax.grad(lambda v: kde_hist(v, jnp.ones_like(v), edges, bandwidth).counts @ probe)(x)
    g_relaxed = jax.grad(lambda v: relaxed.hist(v, edges, bandwidth) @ probe)(x)
    # diffhep's banded fill drops the kernel beyond 7 sigma: its density there (< 1e-11 / bandwidth) is the difference
    np.testing.assert_allclose(g, g_relaxed, rtol=1e-8, atol=1e-9)


def test_event_weights_which_relaxed_hist_does_not_take(sample):
    """Weighted: counts = sum_e w_e k_e and sumw2 = sum_e w_e^2 k_e, with k_e relaxed.hist of event e alone."""
    x, w = sample
    x, w = x[:400], w[:400]
    edges = jnp.asarray(EDGES)
    per_event = jax.vmap(lambda v: relaxed.hist(v[None], edges, 2.0))(x)  # events x bins
    got = kde_hist(x, w, edges, 2.0)
    np.testing.assert_allclose(got.counts, w @ per_event, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.sumw2, (w * w) @ per_event, rtol=1e-10, atol=1e-12)
    assert not np.allclose(got.counts, relaxed.hist(x, edges, 2.0), rtol=1e-3)  # the weights matter
    g = jax.grad(lambda ww: kde_hist(x, ww, edges, 2.0).counts.sum())(w)
    # d counts / d w_e = event e's kernel mass inside the range (up to the banded fill's < 1e-11 beyond 7 sigma)
    np.testing.assert_allclose(g, per_event.sum(axis=1), rtol=1e-10, atol=1e-11)


def test_gradients_wrt_weights_and_values(sample):
    x, w = sample
    x, w = x[:300], w[:300]
    edges = jnp.asarray(EDGES)

    def f(x, w):
        h = kde_hist(x, w, edges, 3.0)
        return jnp.sum(h.counts**2) + jnp.sum(jnp.sqrt(h.sumw2 + 1.0))

    check_grads(jax.jit(f), (x, w), order=1, modes=["fwd", "rev"])
    assert jnp.allclose(jax.jit(f)(x, w), f(x, w))


@pytest.mark.parametrize("bandwidth", [0.3, 2.0, 7.0, 40.0])
def test_banded_kernel_equals_dense_kernel(sample, bandwidth):
    """The banded fill drops only kernel mass beyond 7 sigma (< 1e-11)."""
    from diffhep.histogram import bin_fractions

    x, w = sample
    # Values far outside the range and exactly on edges too.
    x = jnp.concatenate([x, jnp.asarray([-1.0, 1e4, 60.0, 140.0, 65.0, 139.999])])
    w = jnp.concatenate([w, jnp.ones(6)])
    dense = bin_fractions(x, jnp.asarray(EDGES), bandwidth)
    got = kde_hist(x, w, EDGES, bandwidth)
    np.testing.assert_allclose(got.counts, w @ dense, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got.sumw2, (w * w) @ dense, rtol=1e-10, atol=1e-10)


def test_zero_bandwidth_is_hist():
    """Bandwidth 0 fills as ``hist`` does (edges included: see ``test_histogram_edges.py``)."""
    import hist

    from diffhep.histogram import binned_kernel, fill

    rng = np.random.default_rng(5)
    edges = np.array([0.0, 1.0, 2.5, 3.0, 10.0])
    x = np.concatenate([rng.uniform(-2, 12, 500), edges, [-0.0, 10.0 + 1e-12]])
    w = rng.uniform(0.5, 2.0, len(x))
    got = fill(binned_kernel(jnp.asarray(x), edges, 0.0), jnp.asarray(w))
    ref = hist.Hist(hist.axis.Variable(edges), storage=hist.storage.Weight()).fill(x, weight=w).view()
    np.testing.assert_allclose(got.counts, ref.value, rtol=1e-12)
    np.testing.assert_allclose(got.sumw2, ref.variance, rtol=1e-12)


def test_precomputed_kernel_fill_is_jittable_and_differentiable(sample):
    from diffhep.histogram import binned_kernel, fill

    x, w = sample
    kernel = binned_kernel(x, EDGES, 1.0)

    def f(w, kernel):
        h = fill(kernel, w)
        return jnp.sum(h.counts**2) / jnp.sum(h.sumw2)

    small = binned_kernel(x[:400], EDGES, 1.0)
    check_grads(jax.jit(lambda w: f(w, small)), (w[:400],), order=2, modes=["fwd", "rev"])
    assert jnp.allclose(jax.jit(f)(w, kernel), f(w, kernel))
    # Traced observable: gradient w.r.t. x (e.g. an energy scale) flows through the band.
    check_grads(jax.jit(lambda x: f(w[:400], binned_kernel(x, EDGES, 2.0))), (x[:400],), order=1, modes=["fwd", "rev"])


def test_fill_allocates_no_events_by_bins_matrix():
    """Compiled memory of a fill step is O(events x K), not O(events x bins)."""
    from diffhep.histogram import binned_kernel, fill

    n, edges = 200_000, np.linspace(0.0, 100.0, 201)  # 200 bins of 0.5, K = 4 at h = 0.1
    kernel = binned_kernel(jnp.linspace(-5.0, 105.0, n), edges, 0.1)
    assert kernel.width == 4

    def loss(w):
        h = fill(kernel, w)
        return jnp.sum(h.counts * h.counts + h.sumw2)

    w = jnp.ones(n)
    compiled = jax.jit(jax.value_and_grad(loss)).lower(w).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    events_by_bins = n * (len(edges) - 1) * 8
    assert temp < events_by_bins / 10, (temp, events_by_bins)
