"""Straight-through cuts: hard in the forward pass, soft gradient in the backward pass.

``straight_through(soft, hard) = hard + soft - stop_gradient(soft)``: its value
is exactly ``hard`` (the hard selection, so yields and histograms are the real
ones), while its gradient is that of ``soft``. The gradient is biased (it is
the gradient of a different function), which is the usual price of the
estimator; prefer soft cuts with annealed slopes where they suffice.
"""

from __future__ import annotations

import jax
from jax import Array

from diffhep.select.cuts import (
    hard_above,
    hard_below,
    hard_window,
    resolve_slope,
    soft_above,
    soft_below,
    soft_window,
)

__all__ = ["straight_through", "st_above", "st_below", "st_window"]


def straight_through(soft: Array, hard: Array) -> Array:
    """Value of ``hard``, gradient of ``soft`` (same shapes).

    Example:
        >>> import jax
        >>> f = lambda c: straight_through(soft_above(1.0, c, 1.0), hard_above(1.0, c))
        >>> float(f(0.0)), float(jax.grad(f)(1.0))
        (1.0, -0.25)
    """
    return hard + (soft - jax.lax.stop_gradient(soft))


def st_above(
    x: Array,
    cut: Array | float,
    slope: Array | float | None = None,
    *,
    temperature: Array | float | None = None,
) -> Array:
    """``x > cut`` as 0/1 forward, gradient of :func:`soft_above`, shape of ``x``."""
    s = resolve_slope(slope, temperature)
    return straight_through(soft_above(x, cut, s), hard_above(x, cut))


def st_below(
    x: Array,
    cut: Array | float,
    slope: Array | float | None = None,
    *,
    temperature: Array | float | None = None,
) -> Array:
    """``x < cut`` as 0/1 forward, gradient of :func:`soft_below`, shape of ``x``."""
    s = resolve_slope(slope, temperature)
    return straight_through(soft_below(x, cut, s), hard_below(x, cut))


def st_window(
    x: Array,
    low: Array | float,
    high: Array | float,
    slope: Array | float | None = None,
    *,
    temperature: Array | float | None = None,
) -> Array:
    """``low < x < high`` as 0/1 forward, gradient of :func:`soft_window`, shape of ``x``."""
    s = resolve_slope(slope, temperature)
    return straight_through(soft_window(x, low, high, s), hard_window(x, low, high))
