"""HistFactory interpolation codes, written as pure JAX functions.

These reproduce pyhf's defaults exactly:

* :func:`code4` — multiplicative interpolation used by ``normsys``
  (polynomial for ``|alpha| < 1``, exponential outside);
* :func:`code4p` — additive interpolation used by ``histosys``
  (polynomial for ``|alpha| <= 1``, linear outside).

All branches are evaluated and selected with ``jnp.where``; every branch is
finite for positive ``hi``/``lo`` ratios, so gradients are finite everywhere.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = ["code4", "code4p", "code4_derivatives", "code4p_derivatives"]

# Inverse of the 6x6 boundary-condition matrix of pyhf's code 4 for alpha0 = 1
# (see pyhf.interpolators.code4). Rows give the polynomial coefficients a_1..a_6
# from b = [d+ - 1, d- - 1, ln d+ d+, -ln d- d-, ln^2 d+ d+, ln^2 d- d-].
_CODE4_A_INVERSE = np.array(
    [
        [15.0 / 16, -15.0 / 16, -7.0 / 16, -7.0 / 16, 1.0 / 16, -1.0 / 16],
        [3.0 / 2, 3.0 / 2, -9.0 / 16, 9.0 / 16, 1.0 / 16, 1.0 / 16],
        [-5.0 / 8, 5.0 / 8, 5.0 / 8, 5.0 / 8, -1.0 / 8, 1.0 / 8],
        [-3.0 / 2, -3.0 / 2, 7.0 / 8, -7.0 / 8, -1.0 / 8, -1.0 / 8],
        [3.0 / 16, -3.0 / 16, -3.0 / 16, -3.0 / 16, 1.0 / 16, -1.0 / 16],
        [1.0 / 2, 1.0 / 2, -5.0 / 16, 5.0 / 16, 1.0 / 16, 1.0 / 16],
    ]
)


def code4(alpha: Array, hi: Array, lo: Array) -> Array:
    """Multiplicative factor of a ``normsys`` modifier (pyhf interpolation code 4).

    Elementwise: ``alpha``, ``hi`` and ``lo`` broadcast against each other.

    Args:
        alpha: nuisance parameter(s), e.g. shape ``()`` or ``(entries, modifiers)``.
        hi: relative yield at ``alpha = +1`` (e.g. 1.05); > 0.
        lo: relative yield at ``alpha = -1`` (e.g. 0.95); > 0.

    Returns:
        The factor multiplying the nominal yield, the broadcast shape:
        ``hi**alpha`` for ``alpha >= 1``, ``lo**(-alpha)`` for ``alpha <= -1`` and
        ``1 + sum_{i=1..6} a_i alpha**i`` in between, where the ``a_i`` make the
        factor and its first two derivatives continuous at ``|alpha| = 1``.

    Example:
        >>> round(float(code4(jnp.asarray(2.0), 1.1, 0.9)), 6)
        1.21
    """
    alpha = jnp.asarray(alpha)
    hi = jnp.asarray(hi)
    lo = jnp.asarray(lo)
    log_hi = jnp.log(hi)
    log_lo = jnp.log(lo)
    b = (hi - 1.0, lo - 1.0, log_hi * hi, -log_lo * lo, log_hi**2 * hi, log_lo**2 * lo)
    coefficients = [sum(float(m) * bj for m, bj in zip(row, b)) for row in _CODE4_A_INVERSE]
    polynomial = coefficients[5]
    for a_i in coefficients[4::-1]:  # Horner: a1 x + a2 x^2 + ... + a6 x^6
        polynomial = a_i + alpha * polynomial
    polynomial = 1.0 + alpha * polynomial
    up = jnp.exp(alpha * log_hi)
    down = jnp.exp(-alpha * log_lo)
    return jnp.where(alpha >= 1.0, up, jnp.where(alpha > -1.0, polynomial, down))


def code4p(alpha: Array, lo: Array, nom: Array, hi: Array) -> Array:
    """Additive shift of a ``histosys`` modifier (pyhf interpolation code 4p).

    Elementwise: all arguments broadcast against each other.

    Args:
        alpha: nuisance parameter(s), e.g. shape ``()`` or ``(entries, modifiers, 1)``.
        lo: yields at ``alpha = -1``, e.g. shape ``(bins,)`` (events).
        nom: nominal yields (events).
        hi: yields at ``alpha = +1`` (events).

    Returns:
        The shift added to the nominal yields, the broadcast shape (events):
        linear outside ``|alpha| <= 1``, a sixth-order polynomial inside.
    """
    delta_up = hi - nom
    delta_down = nom - lo
    s = 0.5 * (delta_up + delta_down)
    a = 0.0625 * (delta_up - delta_down)
    alpha2 = alpha**2
    inside = alpha * s + alpha2 * (alpha2 * (alpha2 * 3.0 - 10.0) + 15.0) * a
    return jnp.where(
        alpha > 1.0,
        alpha * delta_up,
        jnp.where(alpha < -1.0, alpha * delta_down, inside),
    )


def code4_derivatives(alpha: Array, hi: Array, lo: Array) -> tuple[Array, Array, Array]:
    """:func:`code4` and its first and second derivatives in ``alpha``, elementwise.

    Returns:
        ``(f, df/dalpha, d2f/dalpha2)``, each of the broadcast shape.
    """
    alpha = jnp.asarray(alpha)
    hi = jnp.asarray(hi)
    lo = jnp.asarray(lo)
    log_hi = jnp.log(hi)
    log_lo = jnp.log(lo)
    b = (hi - 1.0, lo - 1.0, log_hi * hi, -log_lo * lo, log_hi**2 * hi, log_lo**2 * lo)
    a = [sum(float(m) * bj for m, bj in zip(row, b)) for row in _CODE4_A_INVERSE]  # a_1 .. a_6
    f = 1.0 + alpha * (a[0] + alpha * (a[1] + alpha * (a[2] + alpha * (a[3] + alpha * (a[4] + alpha * a[5])))))
    f1 = a[0] + alpha * (2 * a[1] + alpha * (3 * a[2] + alpha * (4 * a[3] + alpha * (5 * a[4] + alpha * 6 * a[5]))))
    f2 = 2 * a[1] + alpha * (6 * a[2] + alpha * (12 * a[3] + alpha * (20 * a[4] + alpha * 30 * a[5])))
    up = jnp.exp(alpha * log_hi)
    down = jnp.exp(-alpha * log_lo)
    upper, inside = alpha >= 1.0, alpha > -1.0

    def pick(u: Array, poly: Array, d: Array) -> Array:
        return jnp.where(upper, u, jnp.where(inside, poly, d))

    return pick(up, f, down), pick(log_hi * up, f1, -log_lo * down), pick(log_hi**2 * up, f2, log_lo**2 * down)


def code4p_derivatives(alpha: Array, lo: Array, nom: Array, hi: Array) -> tuple[Array, Array, Array]:
    """:func:`code4p` and its first and second derivatives in ``alpha``, elementwise.

    Returns:
        ``(shift, dshift/dalpha, d2shift/dalpha2)``, each of the broadcast shape (events).
    """
    delta_up = hi - nom
    delta_down = nom - lo
    s = 0.5 * (delta_up + delta_down)
    a = 0.0625 * (delta_up - delta_down)
    alpha2 = alpha**2
    inside = alpha * s + alpha2 * (alpha2 * (alpha2 * 3.0 - 10.0) + 15.0) * a
    inside1 = s + alpha * (alpha2 * (alpha2 * 18.0 - 40.0) + 30.0) * a
    inside2 = (alpha2 * (alpha2 * 90.0 - 120.0) + 30.0) * a
    above, below = alpha > 1.0, alpha < -1.0
    zero = jnp.zeros_like(inside2)
    shift = jnp.where(above, alpha * delta_up, jnp.where(below, alpha * delta_down, inside))
    first = jnp.where(above, delta_up + zero, jnp.where(below, delta_down + zero, inside1))
    second = jnp.where(above | below, zero, inside2)
    return shift, first, second
