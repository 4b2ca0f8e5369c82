"""The first passing object in a static order: "the best candidate that passes".

Analyses often take, among the objects or candidates that pass the selection,
the one that comes first in some order: the leading selected jet, the trijet
with the largest pT among those with a b-tag, the ZZ candidate whose Z1 is
closest to the Z mass. When the order comes from values the parameters do not
change (structure is static), sort the collection once (:func:`diffhep.jagged.sort`)
and the choice becomes a probability per object:

``P(i is the first to pass) = w_i * prod_{j before i in its event} (1 - w_j)``,

which sums to ``P(any passes) <= 1`` over an event and is exactly the hard
choice (one 1, the rest 0) when the weights are 0 or 1. Filling a histogram of
a per-object observable with these probabilities (times the event weight)
converges to the hard "take the best passing candidate" histogram. Objects are
treated as independent, as everywhere in the soft counting.

The exclusive product runs as a blocked scan of affine maps over the flat
objects, restarting at each event (:func:`_recurrence`: no dense ``events x
objects`` view and no logarithms, so a weight of exactly 1 or 0 keeps finite
gradients). Its derivative is written by
hand (:func:`jax.custom_jvp`) as the same recurrence on the tangents,
``dP_i = v_{i-1} dP_{i-1} + dv_{i-1} P_{i-1}``, whose transpose is one reverse
scan: differentiating through the scan's combine function instead stored every
level of it (memory and compile time of the 10^7-trijet AGC step).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from diffhep.jagged import Jagged

__all__ = ["first_pass", "exclusive_product"]


def _affine(left: tuple[Array, Array], right: tuple[Array, Array]) -> tuple[Array, Array]:
    # Composition of x -> a x + b maps, ``left`` applied first.
    a_l, b_l = left
    a_r, b_r = right
    return a_r * a_l, a_r * b_l + b_r


#: Objects per block of :func:`_recurrence`; at most this many are scanned one by one.
BLOCK = 128


def _sequential(a: Array, b: Array) -> Array:
    """``x_i = a_i x_{i-1} + b_i``, ``x_{-1} = 0``: one :func:`jax.lax.scan` (for short arrays)."""

    def step(x: Array, ab: tuple[Array, Array]) -> tuple[Array, Array]:
        x = ab[0] * x + ab[1]
        return x, x

    return jax.lax.scan(step, jnp.zeros((), b.dtype), (a, b))[1]


def _recurrence(a: Array, b: Array) -> Array:
    """``x_i = a_i x_{i-1} + b_i`` with ``x_{-1} = 0``, for all ``i`` at once.

    Blocked: a sequential :func:`jax.lax.scan` over the ``BLOCK`` positions of
    all blocks at once (vectorised over blocks), the same recurrence on the
    block totals (recursively, down to one sequential scan of at most
    ``BLOCK`` elements), then one affine fix-up per object. On XLA:CPU this is
    2.4x faster than one associative scan over all objects (whose
    ``log2(objects)`` levels of strided slices are not fused) and compiles in
    half the time; the results are the same to rounding. The base case was an
    associative scan of up to 4,096 elements: its unrolled levels were 2,800 of
    the 7,200 operations of the dimuon template's gradient (and every analysis
    with a ``leading``/best-candidate choice compiled them); a scan of at most
    ``BLOCK`` steps is one loop.
    """
    n = a.shape[0]
    if n <= BLOCK:
        return _sequential(a, b)
    m = -(-n // BLOCK)
    pad = m * BLOCK - n  # identity maps (a = 1, b = 0) at the end, dropped below
    a_blocks = jnp.pad(a, (0, pad), constant_values=1.0).reshape(m, BLOCK).T  # (BLOCK, m)
    b_blocks = jnp.pad(b, (0, pad)).reshape(m, BLOCK).T

    def step(carry: tuple[Array, Array], ab: tuple[Array, Array]) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
        carry = _affine(carry, ab)
        return carry, carry

    identity = (jnp.ones((m,), a.dtype), jnp.zeros((m,), b.dtype))
    (total_a, total_b), (prefix_a, prefix_b) = jax.lax.scan(step, identity, (a_blocks, b_blocks))
    ends = _recurrence(total_a, total_b)  # x at the last position of every block
    entering = jnp.concatenate([jnp.zeros((1,), ends.dtype), ends[:-1]])
    return (prefix_a * entering[None, :] + prefix_b).T.reshape(-1)[:n]


@jax.custom_jvp
def _exclusive(start: Array, values: Array) -> Array:
    # P_i = v_{i-1} P_{i-1}, restarting at 1 where ``start`` (a 0/1 float).
    return _recurrence((1.0 - start) * jnp.roll(values, 1), start)


@_exclusive.defjvp
def _exclusive_jvp(primals: tuple[Array, Array], tangents: tuple[Array, Array]) -> tuple[Array, Array]:
    # dP_i = v_{i-1} dP_{i-1} + dv_{i-1} P_{i-1}: the same recurrence, linear
    # in the tangents, so its transpose (the reverse-mode derivative) is one
    # reverse scan too. No division, so exact zeros in ``values`` are fine.
    start, values = primals
    product = _exclusive(start, values)
    keep = 1.0 - start
    tangent = _recurrence(keep * jnp.roll(values, 1), keep * jnp.roll(tangents[1] * product, 1))
    return product, tangent


def exclusive_product(collection: Jagged, values: Array) -> Array:
    """Product of ``values`` over the objects *before* each object in its event.

    Args:
        collection: the collection, in the order that defines "before".
        values: ``Float[Array, "objects"]``.

    Returns:
        ``Float[Array, "objects"]``; 1 for the first object of every event.

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> j = from_awkward(ak.Array([[0.5, 0.5, 0.5], [], [0.1]]))
        >>> exclusive_product(j, j.values).tolist()
        [1.0, 0.5, 0.25, 1.0]
    """
    if values.shape[0] == 0:
        return values
    start = (collection.local_index == 0).astype(values.dtype)
    return _exclusive(start, values)


def first_pass(collection: Jagged, weights: Array) -> Array:
    """Probability that each object is the first passing one in its event.

    Args:
        collection: objects or candidates sorted in the order of preference
            (static; see :func:`diffhep.jagged.sort`).
        weights: ``Float[Array, "objects"]`` pass probabilities in ``[0, 1]``.

    Returns:
        ``Float[Array, "objects"]``: ``w_i * prod_{j < i} (1 - w_j)``; per event
        these sum to ``P(at least one passes)``.

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> j = from_awkward(ak.Array([[0.0, 1.0, 1.0], [0.5, 0.5]]))
        >>> first_pass(j, j.values).tolist()
        [0.0, 1.0, 0.0, 0.5, 0.25]
    """
    return weights * exclusive_product(collection, 1.0 - weights)
