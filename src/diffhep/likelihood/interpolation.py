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

__all__ = ["code4", "code4p"]

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

    Args:
        alpha: nuisance parameter, shape ``()``.
        hi: relative yield at ``alpha = +1`` (e.g. 1.05), shape ``()`` or ``(bins,)``; > 0.
        lo: relative yield at ``alpha = -1`` (e.g. 0.95), same shape as ``hi``; > 0.

    Returns:
        The factor multiplying the nominal yield, shape of ``hi``:
        ``hi**alpha`` for ``alpha >= 1``, ``lo**(-alpha)`` for ``alpha <= -1`` and
        ``1 + sum_{i=1..6} a_i alpha**i`` in between, where the ``a_i`` make the
        factor and its first two derivatives continuous at ``|alpha| = 1``.
    """
    hi = jnp.asarray(hi)
    lo = jnp.asarray(lo)
    log_hi = jnp.log(hi)
    log_lo = jnp.log(lo)
    b = jnp.stack(
        [
            hi - 1.0,
            lo - 1.0,
            log_hi * hi,
            -log_lo * lo,
            log_hi**2 * hi,
            log_lo**2 * lo,
        ]
    )
    a_inverse = jnp.asarray(_CODE4_A_INVERSE, dtype=b.dtype)
    coefficients = jnp.tensordot(a_inverse, b, axes=1)  # (6, ...)
    powers = jnp.stack([alpha**i for i in range(1, 7)])  # (6,)
    polynomial = 1.0 + jnp.tensordot(powers, coefficients, axes=1)
    up = jnp.exp(alpha * log_hi)
    down = jnp.exp(-alpha * log_lo)
    return jnp.where(alpha >= 1.0, up, jnp.where(alpha > -1.0, polynomial, down))


def code4p(alpha: Array, lo: Array, nom: Array, hi: Array) -> Array:
    """Additive shift of a ``histosys`` modifier (pyhf interpolation code 4p).

    Args:
        alpha: nuisance parameter, shape ``()``.
        lo: yields at ``alpha = -1``, shape ``(bins,)`` (events).
        nom: nominal yields, shape ``(bins,)`` (events).
        hi: yields at ``alpha = +1``, shape ``(bins,)`` (events).

    Returns:
        The shift added to the nominal yields, shape ``(bins,)`` (events):
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
