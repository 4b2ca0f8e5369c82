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

The exclusive product runs as one :func:`jax.lax.associative_scan` over the flat
objects, restarting at each event (``log2(objects)`` vectorised levels, no
dense ``events x objects`` view and no logarithms, so a weight of exactly 1 or 0
keeps finite gradients).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from diffhep.jagged import Jagged

__all__ = ["first_pass", "exclusive_product"]


def _segmented_product(left: tuple[Array, Array], right: tuple[Array, Array]) -> tuple[Array, Array]:
    # Each element is (starts_a_segment, running product); a segment start
    # discards whatever came before it.
    start_l, prod_l = left
    start_r, prod_r = right
    return start_l | start_r, jnp.where(start_r, prod_r, prod_l * prod_r)


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
    start = collection.local_index == 0
    # Shift by one within each event: the first object of an event gets 1.
    shifted = jnp.where(start, 1.0, jnp.roll(values, 1)).astype(values.dtype)
    _, product = jax.lax.associative_scan(_segmented_product, (start, shifted))
    return product


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
