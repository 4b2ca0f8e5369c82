"""Per-event reductions (hard, smooth, soft-logical) against Awkward/NumPy, gradients, properties."""

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from jagged_factory import check_second_order, padded_structure, random_collection
from jax.test_util import check_grads

from diffhep.errors import InputError
from diffhep.jagged import Jagged, from_awkward, segment_prod


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _np(x):
    return np.asarray(x)


def _ak_mean(values, weight=None):
    """``ak.mean`` per event with 0 for empty events (Awkward gives NaN there)."""
    return np.nan_to_num(ak.to_numpy(ak.fill_none(ak.mean(values, weight=weight, axis=1), np.nan)))


@pytest.mark.parametrize("seed", [0, 1])
def test_hard_reductions_match_awkward(seed):
    arr = random_collection(seed)
    j = from_awkward(arr)
    w = np.random.default_rng(seed).uniform(0, 1, j.n_objects)
    aw = ak.unflatten(w, ak.num(arr))
    np.testing.assert_allclose(j.mean(j.pt), _ak_mean(arr.pt))
    np.testing.assert_allclose(
        j.mean(j.pt, jnp.asarray(w)),
        _ak_mean(arr.pt, aw),
        rtol=1e-12,
    )
    np.testing.assert_allclose(j.min(j.eta, fill=7.0), ak.fill_none(ak.min(arr.eta, axis=1), 7.0))
    np.testing.assert_allclose(j.max(j.eta, fill=-7.0), ak.fill_none(ak.max(arr.eta, axis=1), -7.0))
    np.testing.assert_allclose(j.min(j.eta), ak.fill_none(ak.min(arr.eta, axis=1), np.inf))
    # ``initial`` keeps NumPy's meaning: it takes part in every maximum
    np.testing.assert_allclose(j.max(j.pt, 20.0), np.maximum(ak.fill_none(ak.max(arr.pt, axis=1), 20.0), 20.0))
    np.testing.assert_allclose(j.prod(jnp.asarray(w)), ak.prod(aw, axis=1), rtol=1e-12)


def test_mean_is_zero_when_weights_vanish():
    j = from_awkward(ak.Array([[1.0, 2.0], [], [3.0]]))
    assert j.mean(j.values, jnp.array([0.0, 0.0, 1.0])).tolist() == [0.0, 0.0, 3.0]
    g = jax.grad(lambda w: j.mean(j.values, w).sum())(jnp.array([0.0, 0.0, 1.0]))
    assert np.all(np.isfinite(g))


def test_soft_logic_is_exact_on_hard_weights():
    arr = random_collection(3)
    j = from_awkward(arr)
    passed = arr.pt > 25.0
    w = jnp.asarray(ak.to_numpy(ak.flatten(passed)), dtype=float)
    np.testing.assert_array_equal(j.soft_any(w), ak.to_numpy(ak.any(passed, axis=1)))
    np.testing.assert_array_equal(j.soft_all(w), ak.to_numpy(ak.all(passed, axis=1)))


@pytest.mark.parametrize("temperature", [1e-2, 1e-4])
def test_smooth_versions_converge_to_hard(temperature):
    arr = random_collection(4)
    j = from_awkward(arr)
    count = _np(j.count())
    bound = temperature * np.log(np.maximum(count, 1))
    hard_max, hard_min = _np(j.max(j.pt, fill=0.0)), _np(j.min(j.pt, fill=0.0))
    smax = _np(j.smooth_max(j.pt, temperature, fill=0.0))
    smin = _np(j.smooth_min(j.pt, temperature, fill=0.0))
    assert np.all(smax >= hard_max - 1e-12) and np.all(smax <= hard_max + bound + 1e-12)
    assert np.all(smin <= hard_min + 1e-12) and np.all(smin >= hard_min - bound - 1e-12)
    # softmax -> one-hot on the maximum: weight <= exp(-(max - v) / T), sums to 1
    gap = _np(j.broadcast(j.max(j.pt))) - _np(j.pt)
    soft = _np(j.softmax(j.pt, temperature))
    assert np.all(soft <= np.exp(-gap / temperature) + 1e-15)
    np.testing.assert_allclose(
        soft[gap == 0], 1.0, atol=(count.max() - 1) * np.exp(-gap[gap > 0].min() / temperature) + 1e-15
    )


def test_softmax_sums_to_one_and_is_stable():
    j = from_awkward(random_collection(5))
    big = j.pt * 1e4  # exp(big) overflows without the per-event shift
    s = j.softmax(big, 1.0)
    assert np.all(np.isfinite(_np(s)))
    np.testing.assert_allclose(j.sum(s), (_np(j.count()) > 0).astype(float), rtol=1e-12)
    assert np.all(np.isfinite(_np(j.smooth_max(big, 1.0, fill=0.0))))


def test_temperature_must_be_positive():
    j = from_awkward(random_collection(6))
    with pytest.raises(InputError, match="temperature must be > 0"):
        j.softmax(j.pt, 0.0)


def test_segment_prod_of_jax_is_not_differentiable_but_ours_is():
    """``jax.ops.segment_prod`` has no gradient; ours is exact at 0 and 1."""
    j = from_awkward(ak.Array([[0.0, 0.5, 2.0], [0.0, 0.0], [], [1.0, 3.0]]))
    w = j.values

    def jax_prod(w):
        return jax.ops.segment_prod(w, j.segment_ids, num_segments=j.n_events).sum()

    with pytest.raises(NotImplementedError, match="scatter_mul gradients"):
        jax.grad(jax_prod)(w)
    g = jax.grad(lambda w: segment_prod(j, w).sum())(w)
    # d/dw_i prod = product of the others: [1.0, 0, 0 | 0, 0 | | 3, 1]
    np.testing.assert_array_equal(g, [1.0, 0.0, 0.0, 0.0, 0.0, 3.0, 1.0])


def _grad_inputs():
    j = from_awkward(random_collection(7, n_events=12, long_event=9))
    w = jnp.asarray(np.random.default_rng(7).uniform(0, 1, j.n_objects))
    w_edges = w.at[::3].set(0.0).at[1::5].set(1.0)  # exact 0 and 1 weights
    return j, j.pt / 10.0, w, w_edges


GRADIENT_CASES = {
    # name: (function of (j, x, w) and the argument, which argument, order)
    "mean_values": (lambda j, x, w, a: j.mean(a, w), "x", 1),
    "mean_weights": (lambda j, x, w, a: j.mean(x, a), "w", 2),
    "max": (lambda j, x, w, a: j.max(a, fill=0.0), "x", 1),
    "min": (lambda j, x, w, a: j.min(a, fill=0.0), "x", 1),
    "smooth_max": (lambda j, x, w, a: j.smooth_max(a, 0.7, fill=0.0), "x", 2),
    "smooth_min_temperature": (lambda j, x, w, a: j.smooth_min(x, a, fill=0.0), 0.7, 1),
    "softmax": (lambda j, x, w, a: j.sum(j.softmax(a, 0.5) * j.eta), "x", 1),
    "soft_any_at_0_and_1": (lambda j, x, w, a: j.soft_any(a), "w_edges", 2),
    "soft_all_at_0_and_1": (lambda j, x, w, a: j.soft_all(a), "w_edges", 2),
}


@pytest.mark.parametrize("name", GRADIENT_CASES)
def test_gradients_against_finite_differences(name):
    f, which, order = GRADIENT_CASES[name]
    j, x, w, w_edges = _grad_inputs()
    arg = {"x": x, "w": w, "w_edges": w_edges}.get(which, which)
    g = jax.jit(lambda a: f(j, x, w, a))
    check_grads(g, (arg,), order=1, modes=("fwd", "rev"))
    if order == 2:
        check_second_order(g, jnp.asarray(arg))


# -- properties over random jagged inputs (one compiled shape) ---------------

N_EVENTS, N_OBJECTS, LONG = 14, 96, 40


@st.composite
def jagged_inputs(draw):
    counts = draw(st.lists(st.integers(0, 4), min_size=1, max_size=N_EVENTS - 2))
    counts.insert(draw(st.integers(0, len(counts))), draw(st.sampled_from([0, 1, LONG])))
    values = draw(hnp.arrays(np.float64, N_OBJECTS, elements=st.floats(-100, 100, width=32)))
    weights = draw(hnp.arrays(np.float64, N_OBJECTS, elements=st.sampled_from([0.0, 0.25, 0.9, 1.0])))
    segment_ids, local_index = padded_structure(counts, N_EVENTS, N_OBJECTS)
    j = Jagged(
        fields={"x": jnp.asarray(values), "w": jnp.asarray(weights)},
        segment_ids=jnp.asarray(segment_ids),
        local_index=jnp.asarray(local_index),
        n_events=N_EVENTS,
        max_count=N_OBJECTS,
    )
    ref = ak.unflatten(ak.zip({"x": values, "w": weights}), np.bincount(segment_ids, minlength=N_EVENTS))
    return j, ref[: len(counts)]


@jax.jit
def _reductions(j, temperature):
    return {
        "mean": j.mean(j.x),
        "min": j.min(j.x, fill=0.0),
        "max": j.max(j.x, fill=0.0),
        "smooth_max": j.smooth_max(j.x, temperature, fill=0.0),
        "smooth_min": j.smooth_min(j.x, temperature, fill=0.0),
        "softmax_sum": j.sum(j.softmax(j.x, temperature)),
        "any": j.soft_any(j.w),
        "all": j.soft_all(j.w),
        "count": j.count(),
    }


@settings(max_examples=25, deadline=None, database=None)
@given(jagged_inputs(), st.sampled_from([0.01, 1.0, 30.0]))
def test_reduction_properties(inputs, temperature):
    j, ref = inputs
    k = len(ref)
    out = {name: _np(v)[:k] for name, v in _reductions(j, temperature).items()}
    count = ak.to_numpy(ak.num(ref))
    nonempty = count > 0
    np.testing.assert_array_equal(out["count"], count)
    np.testing.assert_allclose(out["mean"], _ak_mean(ref.x), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(out["max"], ak.fill_none(ak.max(ref.x, axis=1), 0.0))
    np.testing.assert_array_equal(out["min"], ak.fill_none(ak.min(ref.x, axis=1), 0.0))
    bound = temperature * np.log(np.maximum(count, 1)) + 1e-9
    assert np.all(out["max"] <= out["smooth_max"] + 1e-9)
    assert np.all(out["smooth_max"] <= out["max"] + bound)
    assert np.all(out["smooth_min"] <= out["min"] + 1e-9)
    assert np.all(out["min"] - bound <= out["smooth_min"])
    np.testing.assert_allclose(out["softmax_sum"], nonempty.astype(float), rtol=1e-12)
    np.testing.assert_allclose(out["all"], ak.prod(ref.w, axis=1), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(out["any"], 1 - ak.prod(1 - ref.w, axis=1), rtol=1e-12, atol=1e-15)
    assert np.all((out["any"] >= 0) & (out["any"] <= 1) & (out["all"] >= 0) & (out["all"] <= 1))
