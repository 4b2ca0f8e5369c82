"""HistFactory interpolation codes, written as pure JAX functions with pyhf's semantics.

A ``normsys`` modifier multiplies a sample's yields by a factor interpolated
between 1 and its ``hi``/``lo`` ratios; a ``histosys`` modifier adds a shift
interpolated between its ``lo_data``, the nominal yields and ``hi_data``.
pyhf offers these codes (its normsys accepts only code1 and code4, its
histosys only code0, code2 and code4p; so does diffhep):

* :func:`code1` (``normsys``) — piecewise exponential: ``hi**alpha`` for
  ``alpha > 0``, ``lo**(-alpha)`` otherwise;
* :func:`code4` (``normsys``, pyhf's default) — polynomial for
  ``|alpha| < 1``, exponential outside, continuous to the second derivative;
* :func:`code0` (``histosys``) — piecewise linear: ``alpha (hi - nom)`` for
  ``alpha > 0``, ``alpha (nom - lo)`` otherwise;
* :func:`code2` (``histosys``) — quadratic for ``|alpha| <= 1``, linear
  outside, as pyhf writes it: the linear pieces start from 0 at ``|alpha| = 1``,
  so the shift jumps there (pyhf issue #2729; ROOT's code 2 is continuous);
* :func:`code4p` (``histosys``, pyhf's default) — a sixth-order polynomial for
  ``|alpha| <= 1``, linear outside.

Which code a model uses is static (:class:`InterpCodes`, set by
``modifier_settings``; see :func:`~diffhep.likelihood.model.check_modifier_settings`
for pyhf's rule that a modifier type left out of the settings falls back to
code1/code0). :data:`NORMSYS_CODES` and :data:`HISTOSYS_CODES` map each code
to its function and to the function giving its first and second derivatives
in ``alpha`` (for :mod:`~diffhep.likelihood.hessian`); at a kink the
derivatives are those of the branch pyhf evaluates there.

All branches are selected with ``jnp.where`` from finite candidates (for
positive ``hi``/``lo`` ratios), so gradients are finite everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = [
    "code0",
    "code1",
    "code2",
    "code4",
    "code4p",
    "code0_derivatives",
    "code1_derivatives",
    "code2_derivatives",
    "code4_derivatives",
    "code4p_derivatives",
    "InterpCodes",
    "Interpolation",
    "DEFAULT_CODES",
    "FALLBACK_CODES",
    "NORMSYS_CODES",
    "HISTOSYS_CODES",
]

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


def _code4_coefficients(hi: Array, lo: Array, log_hi: Array, log_lo: Array) -> list[Array]:
    """``[a_1, ..., a_6]`` of :func:`code4`'s polynomial, each of the broadcast shape of ``hi`` and ``lo``.

    One product with :data:`_CODE4_A_INVERSE` (a sum of 36 products written out was 72 operations
    in every compiled likelihood, per call).
    """
    b = (hi - 1.0, lo - 1.0, log_hi * hi, -log_lo * lo, log_hi**2 * hi, log_lo**2 * lo)
    stacked = jnp.stack(jnp.broadcast_arrays(*b), axis=-1)
    coefficients = stacked @ jnp.asarray(_CODE4_A_INVERSE.T, stacked.dtype)
    return [coefficients[..., i] for i in range(6)]


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
    coefficients = _code4_coefficients(hi, lo, log_hi, log_lo)
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


def code1(alpha: Array, hi: Array, lo: Array) -> Array:
    """Multiplicative factor of a ``normsys`` modifier, pyhf interpolation code 1 (piecewise exponential).

    Elementwise: ``alpha``, ``hi`` and ``lo`` broadcast against each other.

    Args:
        alpha: nuisance parameter(s), e.g. shape ``()`` or ``(entries, modifiers)``.
        hi: relative yield at ``alpha = +1``; > 0.
        lo: relative yield at ``alpha = -1``; > 0.

    Returns:
        ``hi**alpha`` for ``alpha > 0``, ``lo**(-alpha)`` for ``alpha <= 0`` (the
        factor multiplying the nominal yield), the broadcast shape.

    Example:
        >>> [round(float(code1(jnp.asarray(a), 1.1, 0.9)), 6) for a in (2.0, -0.5)]
        [1.21, 0.948683]
    """
    positive = jnp.asarray(alpha) > 0.0
    return jnp.power(jnp.where(positive, hi, lo), jnp.where(positive, alpha, -alpha))


def code0(alpha: Array, lo: Array, nom: Array, hi: Array) -> Array:
    """Additive shift of a ``histosys`` modifier, pyhf interpolation code 0 (piecewise linear).

    Elementwise: all arguments broadcast against each other.

    Args:
        alpha: nuisance parameter(s), e.g. shape ``()`` or ``(entries, modifiers, 1)``.
        lo: yields at ``alpha = -1``, e.g. shape ``(bins,)`` (events).
        nom: nominal yields (events).
        hi: yields at ``alpha = +1`` (events).

    Returns:
        ``alpha (hi - nom)`` for ``alpha > 0``, ``alpha (nom - lo)`` for
        ``alpha <= 0``: the shift added to the nominal yields (events).
    """
    return alpha * jnp.where(alpha > 0.0, hi - nom, nom - lo)


def code2(alpha: Array, lo: Array, nom: Array, hi: Array) -> Array:
    """Additive shift of a ``histosys`` modifier, pyhf interpolation code 2 (quadratic, linear outside).

    Elementwise: all arguments broadcast against each other. With
    ``a = (hi + lo) / 2 - nom`` and ``b = (hi - lo) / 2``, the shift is
    ``a alpha**2 + b alpha`` for ``|alpha| <= 1``, ``(b + 2a)(alpha - 1)`` for
    ``alpha > 1`` and ``(b - 2a)(alpha + 1)`` for ``alpha < -1``: pyhf's formula
    (its docstring, its reference ``_slow_code2`` and its tensorised code from
    pyhf PR #2668 on; pyhf 0.7.6's tensorised code has ``(b - 2a) alpha`` below
    -1, pyhf issue #2610). Its outer pieces start from 0, so the shift jumps at
    ``|alpha| = 1`` (pyhf issue #2729).

    Args:
        alpha: nuisance parameter(s), e.g. shape ``()`` or ``(entries, modifiers, 1)``.
        lo: yields at ``alpha = -1``, e.g. shape ``(bins,)`` (events).
        nom: nominal yields (events).
        hi: yields at ``alpha = +1`` (events).

    Returns:
        The shift added to the nominal yields, the broadcast shape (events).
    """
    a = 0.5 * (hi + lo) - nom
    b = 0.5 * (hi - lo)
    inside = alpha * alpha * a + alpha * b
    return jnp.where(
        alpha > 1.0, (alpha - 1.0) * (b + 2.0 * a), jnp.where(alpha >= -1.0, inside, (alpha + 1.0) * (b - 2.0 * a))
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
    a = _code4_coefficients(hi, lo, log_hi, log_lo)  # a_1 .. a_6
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


def code1_derivatives(alpha: Array, hi: Array, lo: Array) -> tuple[Array, Array, Array]:
    """:func:`code1` and its first and second derivatives in ``alpha``, elementwise (at 0: the ``lo`` branch, as pyhf).

    Returns:
        ``(f, df/dalpha, d2f/dalpha2)``, each of the broadcast shape.
    """
    positive = jnp.asarray(alpha) > 0.0
    f = jnp.power(jnp.where(positive, hi, lo), jnp.where(positive, alpha, -alpha))
    rate = jnp.where(positive, jnp.log(hi), -jnp.log(lo))  # d log f / d alpha
    return f, rate * f, rate**2 * f


def code0_derivatives(alpha: Array, lo: Array, nom: Array, hi: Array) -> tuple[Array, Array, Array]:
    """:func:`code0` and its first and second derivatives in ``alpha``, elementwise (at 0: the ``lo`` branch, as pyhf).

    Returns:
        ``(shift, dshift/dalpha, d2shift/dalpha2)``, each of the broadcast shape (events).
    """
    slope = jnp.where(alpha > 0.0, hi - nom, nom - lo)
    return alpha * slope, slope + jnp.zeros_like(alpha), jnp.zeros_like(alpha * slope)


def code2_derivatives(alpha: Array, lo: Array, nom: Array, hi: Array) -> tuple[Array, Array, Array]:
    """:func:`code2` and its first and second derivatives in ``alpha``, elementwise (at ``|alpha| = 1``: the quadratic, as pyhf).

    Returns:
        ``(shift, dshift/dalpha, d2shift/dalpha2)``, each of the broadcast shape (events).
    """
    a = 0.5 * (hi + lo) - nom
    b = 0.5 * (hi - lo)
    above, inside = alpha > 1.0, alpha >= -1.0

    def pick(up: Array, quadratic: Array, down: Array) -> Array:
        return jnp.where(above, up, jnp.where(inside, quadratic, down))

    zero = jnp.zeros_like(alpha * a)
    shift = pick((alpha - 1.0) * (b + 2.0 * a), alpha * alpha * a + alpha * b, (alpha + 1.0) * (b - 2.0 * a))
    first = pick(b + 2.0 * a + zero, 2.0 * alpha * a + b, b - 2.0 * a + zero)
    second = pick(zero, 2.0 * a + zero, zero)
    return shift, first, second


class Interpolation(NamedTuple):
    """One interpolation code: the function and the one returning it with its two ``alpha`` derivatives.

    Attributes:
        function: ``normsys`` codes take ``(alpha, hi, lo)`` and return the factor;
            ``histosys`` codes take ``(alpha, lo, nom, hi)`` and return the shift.
        derivatives: same arguments, returns ``(value, first, second)``.
    """

    function: Callable[..., Array]
    derivatives: Callable[..., tuple[Array, Array, Array]]


#: The codes pyhf's ``normsys`` accepts (``interpcode`` -> functions).
NORMSYS_CODES: dict[str, Interpolation] = {
    "code1": Interpolation(code1, code1_derivatives),
    "code4": Interpolation(code4, code4_derivatives),
}
#: The codes pyhf's ``histosys`` accepts (``interpcode`` -> functions).
HISTOSYS_CODES: dict[str, Interpolation] = {
    "code0": Interpolation(code0, code0_derivatives),
    "code2": Interpolation(code2, code2_derivatives),
    "code4p": Interpolation(code4p, code4p_derivatives),
}


class InterpCodes(NamedTuple):
    """The interpolation codes of a model (static, hashable): keys of :data:`NORMSYS_CODES` and :data:`HISTOSYS_CODES`.

    Attributes:
        normsys: ``normsys`` code, ``"code1"`` or ``"code4"``.
        histosys: ``histosys`` code, ``"code0"``, ``"code2"`` or ``"code4p"``.
    """

    normsys: str = "code4"
    histosys: str = "code4p"


#: pyhf's defaults when a model is given no ``modifier_settings``.
DEFAULT_CODES = InterpCodes("code4", "code4p")
#: What pyhf's modifiers use when ``modifier_settings`` is given but leaves their type (or its ``interpcode``) out.
FALLBACK_CODES = InterpCodes("code1", "code0")
