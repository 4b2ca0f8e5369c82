"""Soft (relaxed) cuts: sigmoid weights that become hard cuts as the slope grows.

A cut never drops anything: it returns a weight in ``[0, 1]`` per object or per
event, with the same shape as its input. The sharpness is given per cut, either
as ``slope`` (in inverse units of the cut variable: for a cut in GeV, 1/GeV) or
as ``temperature = 1 / slope`` (in the units of the variable, GeV), never both.
A slope of ``s`` takes the weight from 0.27 to 0.73 over ``2/s``. Both may be
JAX values (traced under ``jit``), so an optimiser can sharpen cuts over time
(see :mod:`diffhep.select.anneal`).

We use :func:`jax.nn.sigmoid` rather than :func:`relaxed.cut` because the
latter computes ``1 / (1 + exp(-s (x - c)))``, whose gradient is NaN once
``exp`` overflows (steep slopes, far-away values); ``jax.nn.sigmoid`` is stable
and gives the same values where both are finite (tested).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from diffhep.errors import ConfigError

__all__ = [
    "resolve_slope",
    "soft_above",
    "soft_below",
    "soft_window",
    "hard_above",
    "hard_below",
    "hard_window",
]


def resolve_slope(slope: Array | float | None, temperature: Array | float | None) -> Array | float:
    """Return the slope from exactly one of ``slope`` or ``temperature`` (``1/slope``).

    Raises:
        ConfigError: if both or neither are given.

    Example:
        >>> resolve_slope(None, 0.5)
        2.0
    """
    if (slope is None) == (temperature is None):
        raise ConfigError(
            "give a soft cut exactly one of slope=... (1/unit) or temperature=... (unit), "
            f"got slope={slope!r}, temperature={temperature!r}"
        )
    return slope if slope is not None else 1.0 / temperature


def soft_above(
    x: Array,
    cut: Array | float,
    slope: Array | float | None = None,
    *,
    temperature: Array | float | None = None,
) -> Array:
    """Weight of keeping ``x > cut``: ``sigmoid(slope * (x - cut))``, shape of ``x``.

    Example:
        >>> soft_above(jnp.array([1.0, 2.0, 3.0]), 2.0, slope=1000.0).tolist()
        [0.0, 0.5, 1.0]
        >>> soft_above(jnp.array([2.0]), 2.0, temperature=1.0).tolist()
        [0.5]
    """
    return jax.nn.sigmoid(resolve_slope(slope, temperature) * (x - cut))


def soft_below(
    x: Array,
    cut: Array | float,
    slope: Array | float | None = None,
    *,
    temperature: Array | float | None = None,
) -> Array:
    """Weight of keeping ``x < cut``: ``sigmoid(slope * (cut - x))``, shape of ``x``."""
    return jax.nn.sigmoid(resolve_slope(slope, temperature) * (cut - x))


def soft_window(
    x: Array,
    low: Array | float,
    high: Array | float,
    slope: Array | float | None = None,
    *,
    temperature: Array | float | None = None,
) -> Array:
    """Weight of keeping ``low < x < high`` (product of the two edges), shape of ``x``."""
    s = resolve_slope(slope, temperature)
    return soft_above(x, low, s) * soft_below(x, high, s)


def hard_above(x: Array, cut: Array | float) -> Array:
    """1.0 where ``x > cut`` else 0.0 (the infinite-slope limit of :func:`soft_above`)."""
    return jnp.where(x > cut, 1.0, 0.0)


def hard_below(x: Array, cut: Array | float) -> Array:
    """1.0 where ``x < cut`` else 0.0."""
    return jnp.where(x < cut, 1.0, 0.0)


def hard_window(x: Array, low: Array | float, high: Array | float) -> Array:
    """1.0 where ``low < x < high`` else 0.0."""
    return hard_above(x, low) * hard_below(x, high)
