import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jagged_factory import random_collection
from jax.test_util import check_grads

from diffhep.jagged import from_awkward
from diffhep.select.ordered import exclusive_product, first_pass


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hard_weights_pick_the_first_passing_object(seed):
    arr = random_collection(seed)
    j = from_awkward(arr)
    passed = arr.pt > 20.0
    got = first_pass(j, jnp.asarray(ak.to_numpy(ak.flatten(passed)), dtype=float))
    # Plain Awkward: index of the first True per event.
    first = ak.argmax(passed, axis=1, keepdims=True)
    ref = ak.local_index(passed) == first
    ref = ref & ak.any(passed, axis=1)
    np.testing.assert_array_equal(np.asarray(got), ak.to_numpy(ak.flatten(ref)).astype(float))


@pytest.mark.parametrize("seed", [3, 4])
def test_soft_probabilities_sum_to_any_pass(seed):
    arr = random_collection(seed)
    j = from_awkward(arr)
    w = jax.nn.sigmoid((j.pt - 20.0) / 5.0)
    p = first_pass(j, w)
    any_pass = 1.0 - ak.prod(1.0 - ak.unflatten(np.asarray(w), j.counts()), axis=1)
    np.testing.assert_allclose(j.sum(p), ak.to_numpy(any_pass), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_less(-1e-15, np.asarray(p))


def test_exclusive_product_matches_awkward_loop():
    arr = random_collection(5, n_events=30)
    j = from_awkward(arr)
    got = np.asarray(exclusive_product(j, j.pt / 10.0))
    ref = []
    for event in ak.to_list(arr.pt):
        running = 1.0
        for v in event:
            ref.append(running)
            running *= v / 10.0
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_gradients_finite_also_at_hard_weights():
    arr = random_collection(6, n_events=25)
    j = from_awkward(arr)
    f = jax.jit(lambda w: jnp.sum(first_pass(j, w) * j.pt))
    w = jax.nn.sigmoid((j.pt - 15.0) / 4.0)
    check_grads(f, (w,), order=1, modes=["fwd", "rev"])
    hard = jnp.where(j.pt > 15.0, 1.0, 0.0)
    assert np.all(np.isfinite(np.asarray(jax.grad(f)(hard))))
    # The gradient at hard weights is the analytic one: d/dw_i of w_i * prod_{j<i}(1 - w_j).
    check_grads(f, (hard,), order=1, modes=["rev"], eps=1e-6)


@pytest.mark.parametrize("block", [8, 128, 100_000])
def test_blocked_recurrence_equals_the_sequential_one(monkeypatch, block):
    """The blocked scan (with padding and recursion over blocks; at 8 it recurses four times, at 100,000 it
    is one sequential scan) against a plain loop, values and gradients."""
    from diffhep.select import ordered

    monkeypatch.setattr(ordered, "BLOCK", block)
    rng = np.random.default_rng(5)
    counts = rng.poisson(3.0, 3000)
    counts[:3] = [0, 1, 40]
    j = from_awkward(ak.unflatten(rng.uniform(size=int(counts.sum())), counts))
    assert 8**4 < j.n_objects < 8**5
    v = jnp.asarray(np.where(rng.uniform(size=j.n_objects) < 0.05, 0.0, rng.uniform(size=j.n_objects)))
    ref, offsets = np.ones(j.n_objects), np.concatenate([[0], np.cumsum(counts)])
    for start, stop in zip(offsets[:-1], offsets[1:], strict=True):  # the definition, event by event
        if stop - start > 1:
            ref[start + 1 : stop] = np.cumprod(np.asarray(v)[start : stop - 1])
    np.testing.assert_allclose(exclusive_product(j, v), ref, rtol=1e-12, atol=1e-300)
    weights = jnp.asarray(rng.uniform(size=j.n_objects))
    f = jax.jit(lambda v: jnp.sum(weights * exclusive_product(j, v)))
    check_grads(f, (v,), order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)
