"""Soft counts: the expected number of passing objects, cut with a sigmoid.

An alternative to the exact Poisson-binomial of :mod:`diffhep.select.counts`:
``soft_count = sum(w)`` per event, then a soft cut on it at a half-integer,
``n - 1/2``, so that with hard weights (integer counts) and a steep slope the
result is exactly the hard requirement. It is cheaper (one segment sum), but
not a probability: with soft weights, ``sum(w) >= n`` can "pass" on many
objects with small weights. Slopes are in 1/objects (temperature in objects).
"""

from __future__ import annotations

from jax import Array

from diffhep.jagged import Jagged
from diffhep.select.cuts import resolve_slope, soft_above, soft_below, soft_window

__all__ = ["soft_count", "soft_count_at_least", "soft_count_at_most", "soft_count_exactly"]


def soft_count(collection: Jagged, weights: Array) -> Array:
    """Expected number of passing objects, ``sum(w)`` per event, shape ``(events,)``.

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> j = from_awkward(ak.Array([[0.5, 0.5, 1.0], []]))
        >>> soft_count(j, j.values).tolist()
        [2.0, 0.0]
    """
    return collection.sum(weights)


def soft_count_at_least(
    count: Array,
    n: int,
    slope: Array | float | None = None,
    *,
    temperature: Array | float | None = None,
) -> Array:
    """Soft ``count >= n``: ``sigmoid(slope * (count - (n - 1/2)))``, shape of ``count``.

    Example:
        >>> import jax.numpy as jnp
        >>> soft_count_at_least(jnp.array([1.0, 2.0, 3.0]), 2, slope=1000.0).tolist()
        [0.0, 1.0, 1.0]
    """
    return soft_above(count, n - 0.5, resolve_slope(slope, temperature))


def soft_count_at_most(
    count: Array,
    n: int,
    slope: Array | float | None = None,
    *,
    temperature: Array | float | None = None,
) -> Array:
    """Soft ``count <= n``: ``sigmoid(slope * ((n + 1/2) - count))``, shape of ``count``."""
    return soft_below(count, n + 0.5, resolve_slope(slope, temperature))


def soft_count_exactly(
    count: Array,
    n: int,
    slope: Array | float | None = None,
    *,
    temperature: Array | float | None = None,
) -> Array:
    """Soft ``count == n``: a soft window ``(n - 1/2, n + 1/2)``, shape of ``count``."""
    return soft_window(count, n - 0.5, n + 0.5, resolve_slope(slope, temperature))
