"""Soft (relaxed) cuts: sigmoid weights that become hard cuts as the slope grows.

A cut never drops anything: it returns a weight in ``[0, 1]`` per object or per
event, with the same shape as its input. ``slope`` is in inverse units of the
cut variable (for a cut in GeV, 1/GeV): a slope of ``s`` takes the weight from
0.27 to 0.73 over ``2/s``.

We use :func:`jax.nn.sigmoid` rather than :func:`relaxed.cut` because the
latter computes ``1 / (1 + exp(-s (x - c)))``, whose gradient is NaN once
``exp`` overflows (steep slopes, far-away values); ``jax.nn.sigmoid`` is stable
and gives the same values where both are finite (tested).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

__all__ = ["soft_above", "soft_below", "soft_window", "hard_above", "hard_below", "hard_window"]


def soft_above(x: Array, cut: Array | float, slope: Array | float) -> Array:
    """Weight of keeping ``x > cut``: ``sigmoid(slope * (x - cut))``, shape of ``x``."""
    return jax.nn.sigmoid(slope * (x - cut))


def soft_below(x: Array, cut: Array | float, slope: Array | float) -> Array:
    """Weight of keeping ``x < cut``: ``sigmoid(slope * (cut - x))``, shape of ``x``."""
    return jax.nn.sigmoid(slope * (cut - x))


def soft_window(x: Array, low: Array | float, high: Array | float, slope: Array | float) -> Array:
    """Weight of keeping ``low < x < high`` (product of the two edges)."""
    return soft_above(x, low, slope) * soft_below(x, high, slope)


def hard_above(x: Array, cut: Array | float) -> Array:
    """1.0 where ``x > cut`` else 0.0 (the infinite-slope limit of :func:`soft_above`)."""
    return jnp.where(x > cut, 1.0, 0.0)


def hard_below(x: Array, cut: Array | float) -> Array:
    """1.0 where ``x < cut`` else 0.0."""
    return jnp.where(x < cut, 1.0, 0.0)


def hard_window(x: Array, low: Array | float, high: Array | float) -> Array:
    """1.0 where ``low < x < high`` else 0.0."""
    return hard_above(x, low) * hard_below(x, high)
