"""JAX transformations on the Jagged pytree, and compiled memory that scales with objects.

The memory test compiles (never runs, never times) on abstract shapes and reads
XLA's buffer assignment from ``jax.jit(f).lower(...).compile().memory_analysis()``
(available on CPU): ``temp_size_in_bytes`` is the scratch memory of the program.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jagged_factory import random_collection

from diffhep.jagged import Combinations, Jagged, from_awkward


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def jagged():
    with jax.enable_x64(True):
        return from_awkward(random_collection(0, n_events=20, long_event=10))


def _objective(j: Jagged, cut, temperature):
    """A small analysis-like chain: soft cut, best-object choice, soft any, smooth max."""
    w = jax.nn.sigmoid(j.pt - cut)
    choice = j.softmax(j.eta, temperature)
    return jnp.sum(j.soft_any(w) * j.smooth_max(j.pt * w, temperature, fill=0.0) + j.sum(choice * w) + j.mean(j.pt, w))


def test_jit_and_vmap_over_parameters(jagged):
    cuts, temperatures = jnp.array([10.0, 20.0, 30.0]), jnp.array([0.5, 1.0, 2.0])
    f = jax.jit(_objective)
    expected = np.array([float(f(jagged, c, t)) for c, t in zip(cuts, temperatures)])
    batched = jax.jit(jax.vmap(_objective, in_axes=(None, 0, 0)))(jagged, cuts, temperatures)
    np.testing.assert_allclose(batched, expected, rtol=1e-12)
    grads = jax.jit(jax.vmap(jax.grad(_objective, argnums=(1, 2)), in_axes=(None, 0, 0)))(jagged, cuts, temperatures)
    assert grads[0].shape == (3,) and np.all(np.isfinite(grads[0])) and np.all(np.isfinite(grads[1]))


def test_jvp_vjp_jacfwd_on_the_pytree(jagged):
    """Tangents and cotangents flow through the Jagged itself (its fields), not only parameters."""

    @eqx.filter_jit
    def transforms(j):
        # equinox's filtered transforms leave the integer structure alone
        tangent = jax.tree.map(jnp.ones_like, eqx.filter(j, eqx.is_inexact_array))
        out, dout = eqx.filter_jvp(lambda j: _objective(j, 20.0, 1.0), (j,), (tangent,))
        grad_j = eqx.filter_grad(lambda j: _objective(j, 20.0, 1.0))(j)
        smooth, pullback = eqx.filter_vjp(lambda j: j.smooth_max(j.pt, 1.0, fill=0.0), j)
        (cotangent,) = pullback(jnp.ones_like(smooth))

        def by_values(pt):
            return j.with_field("pt", pt).soft_all(jax.nn.sigmoid(0.2 * (pt - 15.0)))

        jac = jax.jacfwd(by_values)(j.pt)  # (events, objects): small here on purpose
        return out, dout, grad_j, cotangent, jac, jax.jacrev(by_values)(j.pt)

    out, dout, grad_j, cotangent, jac, jac_rev = transforms(jagged)
    np.testing.assert_allclose(out, jax.jit(_objective)(jagged, 20.0, 1.0), rtol=1e-12)
    assert isinstance(grad_j, Jagged) and isinstance(cotangent, Jagged)
    np.testing.assert_allclose(dout, sum(jnp.sum(g) for g in grad_j.fields.values()), rtol=1e-10)
    np.testing.assert_allclose(cotangent.fields["pt"], jagged.softmax(jagged.pt, 1.0), rtol=1e-12)
    np.testing.assert_allclose(jac, jac_rev, rtol=1e-10, atol=1e-14)
    # each event depends on its own objects only
    own = np.zeros(jac.shape, bool)
    own[np.asarray(jagged.segment_ids), np.arange(jagged.n_objects)] = True
    assert np.all(np.asarray(jac)[own] > 0) and np.all(np.asarray(jac)[~own] == 0)


# -- memory: O(objects), never events x objects --------------------------------

N_EVENTS, N_OBJECTS, MAX_COUNT, N_PAIRS = 200_000, 1_000_000, 1_000, 2_000_000


def _abstract():
    """Abstract Jagged / pair Combinations of a large sample (shapes only, nothing allocated)."""

    def arr(shape, dtype):
        return jax.ShapeDtypeStruct(shape, dtype)

    j = Jagged(
        fields={"pt": arr((N_OBJECTS,), jnp.float64)},
        segment_ids=arr((N_OBJECTS,), jnp.int32),
        local_index=arr((N_OBJECTS,), jnp.int32),
        n_events=N_EVENTS,
        max_count=MAX_COUNT,
    )
    combos = Jagged({}, arr((N_PAIRS,), jnp.int32), arr((N_PAIRS,), jnp.int32), N_EVENTS, MAX_COUNT)
    pairs = Combinations(arr((N_PAIRS, 2), jnp.int32), arr((N_PAIRS, 2), jnp.int32), combos)
    return j, pairs, arr((), jnp.float64)


MEMORY_CASES = {
    "softmax": lambda j, p, t: j.softmax(j.pt, t),
    "smooth_max": lambda j, p, t: j.smooth_max(j.pt, t, fill=0.0),
    "grad_soft_any": jax.grad(lambda j, p, t: j.soft_any(jax.nn.sigmoid(j.pt - t)).sum(), argnums=2),
    "grad_pair_softmax_weight": jax.grad(
        lambda j, p, t: p.combos.sum(
            p.combos.softmax(p.sum_members(j.pt), t) * p.weight(jax.nn.sigmoid(j.pt - t))
        ).sum(),
        argnums=2,
    ),
}


def test_compiled_memory_scales_with_objects_not_events_times_objects():
    j, pairs, t = _abstract()
    dense_bytes = 8 * N_EVENTS * MAX_COUNT  # one float64 events x max_count array: 1.6 GB
    flat_bytes = 8 * (N_OBJECTS + N_PAIRS)
    report = {}
    for name, f in MEMORY_CASES.items():
        stats = jax.jit(f).lower(j, pairs, t).compile().memory_analysis()
        report[name] = stats.temp_size_in_bytes
    print({k: f"{v / 1e6:.1f} MB" for k, v in report.items()})
    # products use log2(max_count) = 10 scan steps: still O(objects), far below dense
    for name, temp in report.items():
        assert temp < 12 * flat_bytes, name
        assert temp < dense_bytes / 5, name
    # the padded view that these avoid is events x max_count
    padded = jax.jit(lambda j, p, t: j.pad(j.pt * t)).lower(j, pairs, t).compile().memory_analysis()
    assert padded.output_size_in_bytes == dense_bytes
