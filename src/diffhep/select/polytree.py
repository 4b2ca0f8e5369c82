"""Per-event products of truncated polynomials, as a pairwise tree on the flat layout.

Every object contributes a polynomial in one or more counting variables (for
one count, ``(1 - w) + w x``); the per-event product of these polynomials is
the generating function of the counts. A polynomial is a dict from exponent
tuples (one exponent per variable) to coefficient planes; exponents are
truncated at ``limits``, so the last exponent of each variable collects "that
many or more". Absent keys are structural zeros and cost nothing: an object's
trinomial has 3 planes, a pair of them 6, and only then does the number of
planes reach its cap (12 for ``limits=(4, 2)``).

The product is a pairwise tree over the objects of each event, stored flat:
level ``l`` holds, for every event with more than one node at level ``l - 1``,
the products of its objects ``[2^l b, 2^l (b + 1))``, one node per ``b``, the
events one after the other. A level is built by one scatter of the previous
level into adjacent (left, right) slots and an elementwise product of the two
halves; an event whose level has a single node is finished and its product is
added to the result. Events that finish early drop out of the next levels, so
the static length of level ``l`` is at most ``2 * objects / (2^l + 1)``
(:func:`level_sizes`): memory is ``O(objects x planes)`` plus ``O(events x
planes)`` for the result, whatever ``max_count`` is (a long event costs its own
objects, not padding in every event), and the levels sum to a bounded multiple
of the objects. All index arrays come from ``segment_ids`` and ``local_index``
on the device (a segment sum, one cumulative sum over events, a few gathers
and integer scatters per level), so nothing is synchronised with the host and
no large constant is folded into the compiled program.

Each level is written as a scatter (not a gather) of the previous one, so that
its derivative is a gather: the backward pass reads the cotangents of the next
level instead of accumulating into zero-filled buffers. Only products and sums
of coefficients appear, never divisions or logarithms, so values and gradients
stay finite when a weight is exactly 0 or 1.
"""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
from jax import Array

from diffhep.jagged import Jagged

__all__ = ["Polynomial", "tree_product", "dense_coefficients", "level_sizes"]

Polynomial = dict[tuple[int, ...], Array]


def _truncate(key: tuple[int, ...], limits: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(min(k, n) for k, n in zip(key, limits, strict=True))


def _multiply(a: Polynomial, b: Polynomial, limits: tuple[int, ...]) -> Polynomial:
    """Product of two truncated polynomials, planes multiplied elementwise."""
    out: Polynomial = {}
    for (ka, va), (kb, vb) in itertools.product(a.items(), b.items()):
        key = _truncate(tuple(i + j for i, j in zip(ka, kb, strict=True)), limits)
        term = va * vb
        out[key] = out[key] + term if key in out else term
    return out


def level_sizes(n_objects: int, n_events: int, max_count: int) -> tuple[int, ...]:
    """Static lengths of the tree levels ``1, 2, ...`` (level 0 is the objects).

    Level ``l`` holds ``ceil(c / 2^l)`` nodes for each event whose ``c`` objects
    make more than one node at level ``l - 1`` (``c > 2^(l-1)``). Over those
    events ``ceil(c / 2^l) / c <= 2 / (2^l + 1)`` (the worst case is
    ``c = 2^l + 1``), so a level never needs more than ``2 * n_objects / (2^l +
    1)`` slots, nor more than ``ceil(max_count / 2^l)`` for each event that can
    reach it. The sum over levels is below ``1.3 * n_objects`` for any
    ``max_count``.

    Example:
        >>> level_sizes(5_000, 1_000, 16)
        (3333, 2000, 1111, 555)
    """
    sizes = []
    level = 1
    while 2 ** (level - 1) < max_count:
        events = min(n_events, n_objects // (2 ** (level - 1) + 1))
        by_objects = 2 * n_objects // (2**level + 1)
        sizes.append(max(1, min(by_objects, events * math.ceil(max_count / 2**level))))
        level += 1
    return tuple(sizes)


def _zeros_after(anchor: Array, width: int) -> Array:
    # Zeros that XLA can only allocate once ``anchor`` exists: a constant fill
    # would be scheduled at the very start and hold its memory all along.
    return jnp.zeros((width,), anchor.dtype) + 0 * jax.lax.stop_gradient(anchor[0])


@functools.partial(jax.jit, static_argnames="limits")
def tree_product(collection: Jagged, factors: Polynomial, limits: tuple[int, ...]) -> Polynomial:
    """Per-event product over objects of the polynomials ``factors``.

    Args:
        collection: the jagged collection the coefficients belong to; its
            ``max_count`` must bound the number of objects of every event.
        factors: exponent tuple -> ``Float[Array, "objects"]`` coefficient of
            that monomial in each object's polynomial. Keys are truncated at
            ``limits`` (coefficients of keys that collide are added).
        limits: largest exponent kept for each variable; the coefficient at
            the limit collects all higher powers.

    Returns:
        exponent tuple -> ``Float[Array, "events"]`` coefficients of the
        product; keys that are structurally zero may be missing. Empty events
        give the identity polynomial ``1``.

    Jitted (with ``limits`` static) even when called eagerly: the levels have
    different shapes, so op-by-op execution compiled hundreds of small
    programs on first use (8 s for 2,000 events instead of 1.7 s).
    """
    zero = (0,) * len(limits)
    poly: Polynomial = {}
    for key, value in factors.items():
        key = _truncate(key, limits)
        poly[key] = poly[key] + value if key in poly else value
    if zero not in poly:
        poly[zero] = 0.0
    n_objects, n_events = collection.n_objects, collection.n_events
    dtype = jnp.result_type(*poly.values())
    planes = {k: jnp.broadcast_to(jnp.asarray(v, dtype), (n_objects,)) for k, v in poly.items()}
    if n_objects == 0 or n_events == 0:
        return {zero: jnp.ones((n_events,), dtype)}

    segment_ids = collection.segment_ids
    sizes = level_sizes(n_objects, n_events, max(collection.max_count, 1))
    counts = jax.ops.segment_sum(jnp.ones_like(segment_ids), segment_ids, n_events, indices_are_sorted=True)
    # nodes[l][e]: nodes of event e at level l; offsets[l][e]: first slot of
    # event e at level l + 1 (events with a single node at level l have none).
    nodes = [(counts + 2**level - 1) >> level for level in range(len(sizes) + 1)]
    if sizes:
        grown = jnp.stack([jnp.where(nodes[lv] >= 2, nodes[lv + 1], 0) for lv in range(len(sizes))])
        offsets = jnp.cumsum(grown, axis=1, dtype=jnp.int32) - grown

    out: Polynomial = {}
    event, index = segment_ids, collection.local_index  # of every node of the level
    alone = None  # nodes of the level whose right partner is missing
    for level in range(len(sizes) + 1):
        size = sizes[level] if level < len(sizes) else 0
        known = event < n_events  # later levels end with unused slots
        event_c = jnp.minimum(event, n_events - 1)
        n_nodes = nodes[level][event_c]
        grows = known & (n_nodes >= 2)
        if level < len(sizes):
            parent = offsets[level][event_c] + (index >> 1)
        else:
            parent = index
        # One index per node: its slot in the pairs of the next level, or
        # 2 * size + its event when it is the event's product.
        target = jnp.where(grows, 2 * parent + (index & 1), 2 * size + jnp.where(known, event, n_events))
        finished = jnp.where(target >= 2 * size, target - 2 * size, n_events)
        anchor = next(iter(planes.values()))
        for k, v in planes.items():
            base = out[k] if k in out else _zeros_after(anchor, n_events)
            out[k] = base.at[finished].add(v, mode="drop")
        if level == len(sizes):
            break

        # structure of the next level, from the left child of every pair
        first = jnp.where(grows & (index % 2 == 0), parent, size)
        event = jnp.full((size,), n_events, jnp.int32).at[first].set(event, mode="drop")
        event_c = jnp.minimum(event, n_events - 1)
        index = jnp.arange(size, dtype=jnp.int32) - offsets[level][event_c]
        # a last node without a partner is multiplied by the identity polynomial
        alone = (event < n_events) & (2 * index + 1 >= nodes[level][event_c])
        fill = {k: _zeros_after(anchor, 2 * size) for k in planes}
        fill[zero] = fill[zero] + jnp.stack([jnp.zeros_like(alone), alone], axis=1).reshape(-1).astype(dtype)
        pairs = {k: fill[k].at[target].add(v, mode="drop") for k, v in planes.items()}
        planes = _multiply({k: v[0::2] for k, v in pairs.items()}, {k: v[1::2] for k, v in pairs.items()}, limits)
    out[zero] = out[zero] + (counts == 0).astype(dtype)
    return out


def dense_coefficients(poly: Polynomial, limits: tuple[int, ...], n_events: int, dtype: jnp.dtype) -> Array:
    """Stack coefficients into ``Float[Array, "events *limits+1"]``, zeros where absent."""
    zeros = jnp.zeros((n_events,), dtype=dtype)
    shape = tuple(n + 1 for n in limits)
    flat = [poly.get(key, zeros) for key in itertools.product(*(range(s) for s in shape))]
    return jnp.stack(flat, axis=1).reshape((n_events, *shape))
