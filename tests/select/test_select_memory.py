"""Memory of the selection step: XLA's buffer assignment, measured without running anything.

``jax.jit(f).lower(*shapes).compile().memory_analysis()`` reports the
temporaries a compiled program needs; the inputs are ``ShapeDtypeStruct``s, so
no event is allocated. Issue 3 asks that a step stays within a few times its
input buffers and that nothing allocates ``events x objects`` (padding to the
longest event) or ``events x bins``. The full AGC step at 10^6 events is
printed by ``benchmarks/bench_agc.py``; here the pieces are checked at
sizes that compile in seconds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffhep.histogram import BinnedKernel, fill
from diffhep.jagged import Jagged
from diffhep.select import first_pass, joint_count_distribution

S = jax.ShapeDtypeStruct
F64 = 8  # bytes


def _collection(n_objects: int, n_events: int, max_count: int) -> Jagged:
    return Jagged(
        fields={"pt": S((n_objects,), jnp.float64)},
        segment_ids=S((n_objects,), jnp.int32),
        local_index=S((n_objects,), jnp.int32),
        n_events=n_events,
        max_count=max_count,
    )


def _temp_bytes(f, *args) -> int:
    return jax.jit(f).lower(*args).compile().memory_analysis().temp_size_in_bytes


def _joint_temp(n_objects: int, n_events: int, max_count: int) -> int:
    def value_and_grad(w, jets):
        return jax.value_and_grad(lambda w: jnp.sum(joint_count_distribution(jets, w, 0.5 * w, 4, 2)))(w)

    return _temp_bytes(value_and_grad, S((n_objects,), jnp.float64), _collection(n_objects, n_events, max_count))


def test_joint_count_memory_is_linear_in_objects_not_padded_events():
    """Value and gradient of the (selected, tagged) jet count: O(objects x planes).

    A dense (events x longest event) view would need 10^5 x 1000 x 12 planes x
    8 bytes = 9.6 GB for the long-event case; the flat tree needs the same as
    for short events.
    """
    objects, events = 500_000, 100_000
    short = _joint_temp(objects, events, 16)
    long = _joint_temp(objects, events, 1000)
    # 12 coefficient planes (limits 4, 2), their cotangents, the levels of the tree
    assert short < 40 * objects * F64, short / (objects * F64)
    assert long < 1.2 * short, (long, short)
    # linear: twice the objects, twice the memory (within 10%)
    double = _joint_temp(2 * objects, 2 * events, 16)
    assert double == pytest.approx(2 * short, rel=0.1)


def test_first_pass_and_kde_fill_memory_is_a_few_arrays_of_candidates():
    """The trijet choice and its histogram: a few candidate-sized arrays, no candidates x bins."""
    n, k, bins = 2_000_000, 5, 25
    candidates = _collection(n, 200_000, 120)
    kernel = BinnedKernel(
        first_bin=S((n,), jnp.int32),
        fractions=S((n, k), jnp.float64),
        edges=tuple(float(x) for x in np.linspace(50.0, 550.0, bins + 1)),
        bandwidth=5.0,
    )

    def step(w, c, kern):
        def loss(w):
            h = fill(kern, first_pass(c, w) * c.fields["pt"])
            return jnp.sum(h.counts * jnp.arange(bins)) + jnp.sum(h.sumw2)

        return jax.value_and_grad(loss)(w)

    temp = _temp_bytes(step, S((n,), jnp.float64), candidates, kernel)
    inputs = n * F64 * (1 + 1 + k) + 3 * n * 4  # w, pt, fractions; ids and first_bin
    assert temp < 2.5 * inputs, temp / inputs
    assert temp < 20 * n * F64, temp / (n * F64)
