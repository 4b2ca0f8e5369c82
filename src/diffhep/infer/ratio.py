"""Log-likelihood ratios computed without catastrophic cancellation."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.scipy.special import xlogy

from diffhep.likelihood.model import Model

__all__ = ["constraint_log_ratio", "log_likelihood_ratio", "poisson_log_ratio", "signed_residuals"]


def poisson_log_ratio(n: Array, nu_a: Array, nu_b: Array) -> Array:
    """``log Pois(n | nu_a) - log Pois(n | nu_b)`` elementwise, without cancellation.

    The difference is ``n log(nu_a / nu_b) - (nu_a - nu_b)``, written with
    ``r = (nu_a - nu_b) / nu_b`` as ``(n - nu_b) r + n (log1p(r) - r)``: every
    term is small, and on Asimov data ``n - nu_b`` vanishes. Empty bins follow
    pyhf's continuous Poisson (``0 log 0 = 0``): a bin with ``nu_b = 0`` and
    ``n = 0`` gives ``-nu_a`` (nothing when ``nu_a = 0`` too), ``nu_b = 0 < n``
    gives ``+inf`` (``nu_b`` cannot have produced ``n``), ``nu_a = 0 < n``
    gives ``-inf``; gradients stay finite wherever the value is.
    """
    same = nu_a == nu_b
    positive = nu_b > 0
    safe_b = jnp.where(positive, nu_b, 1.0)
    r = jnp.where(same | ~positive, 0.0, (nu_a - nu_b) / safe_b)
    has_n = n > 0
    safe_r = jnp.where(has_n & (r > -1.0), r, 0.0)
    log_term = jnp.where(has_n, jnp.where(r > -1.0, n * (jnp.log1p(safe_r) - safe_r), -jnp.inf), 0.0)
    regular = (n - nu_b) * r + log_term
    empty = jnp.where(has_n, jnp.where(nu_a > 0, jnp.inf, jnp.nan), -nu_a)  # nu_b = 0
    return jnp.where(same, 0.0, jnp.where(positive, regular, empty))


def log_likelihood_ratio(model: Model, data: Array, pars_a: Array, pars_b: Array) -> Array:
    """``log L(pars_a) - log L(pars_b)`` on the same data, without cancellation.

    Subtracting two full log-likelihoods loses everything in float32: each is
    of order ``-sum(n log n)`` (1e5 and more for bins of 1e4 events) while the
    difference that matters for ``q0`` is of order 1. The Poisson part is
    summed bin by bin with :func:`poisson_log_ratio`; the constraint terms are
    small already, their normalisations cancel exactly.

    Returns:
        Shape ``()``.
    """
    nmain = model.config.nmaindata
    main, aux = data[:nmain], data[nmain:]
    nu_a = model.expected_actualdata(pars_a)
    nu_b = model.expected_actualdata(pars_b)
    poisson = jnp.sum(poisson_log_ratio(main, nu_a, nu_b))
    return poisson + constraint_log_ratio(model, aux, pars_a, pars_b)


def constraint_log_ratio(model: Model, auxdata: Array, pars_a: Array, pars_b: Array) -> Array:
    """``constraint_logpdf(pars_a) - constraint_logpdf(pars_b)``, term by term without cancellation.

    A ``shapesys`` with a tiny relative uncertainty has a Poisson constraint with
    ``aux ~ 1e11`` events, whose log-density is ~1e12 with a rounding step of 1e-4:
    the plain difference of two of them is noise at the 1e-3 level, which stalled
    the Newton line search on the ATLAS 3L RJ workspace. Poisson terms use
    :func:`poisson_log_ratio`; Normal terms ``((b - x)^2 - (a - x)^2) / (2 sigma^2)``
    written as ``(b - a)(a + b - 2x) / (2 sigma^2)``.

    Returns:
        Shape ``()``.
    """
    lay, width = model.layout, model.numbers.aux_width
    a, b = pars_a[lay.aux_param], pars_b[lay.aux_param]
    total = jnp.zeros((), dtype=jnp.result_type(pars_a.dtype, width.dtype))
    if lay.normal_aux.size:
        n = lay.normal_aux
        x, sigma = auxdata[n], width[n]
        total = total + jnp.sum((b[n] - a[n]) * (a[n] + b[n] - 2.0 * x) / (2.0 * sigma**2))
    if lay.poisson_aux.size:
        k = lay.poisson_aux
        total = total + jnp.sum(poisson_log_ratio(auxdata[k], a[k] * width[k], b[k] * width[k]))
    return total


def _deviance_scale(r: Array) -> Array:
    """``sqrt(2 ((1 + r) log(1 + r) - r)) / |r|`` for ``r >= -1``: 1 at ``r = 0``, smooth (series near 0)."""
    small = jnp.abs(r) < 1e-3
    safe = jnp.where(small, 1.0, r)
    exact = 2.0 * (xlogy(1.0 + safe, 1.0 + safe) - safe) / safe**2
    series = 1.0 + r * (-1.0 / 3.0 + r * (1.0 / 6.0 + r * (-1.0 / 10.0 + r / 15.0)))
    return jnp.sqrt(jnp.where(small, series, exact))


def _poisson_residuals(n: Array, nu: Array) -> Array:
    """Signed Poisson deviance residuals ``sign(n - nu) sqrt(2 (n log(n / nu) - (n - nu)))``, smooth through ``n = nu``.

    Written as ``(n - nu) / sqrt(nu) * h(r)`` with ``r = (n - nu) / nu`` and
    ``h`` smooth (:func:`_deviance_scale`), so they are linear in ``n - nu``
    near 0 (where the square root of the deviance has no derivative).
    ``nu = 0`` gives 0 for ``n = 0`` and ``inf`` otherwise.
    """
    positive = nu > 0
    safe = jnp.where(positive, nu, 1.0)
    r = jnp.where(positive, (n - nu) / safe, 0.0)
    residual = (n - nu) / jnp.sqrt(safe) * _deviance_scale(r)
    return jnp.where(positive, residual, jnp.where(n > 0, jnp.inf, 0.0))


def signed_residuals(model: Model, data: Array, pars: Array) -> Array:
    """The vector ``w`` with ``|w|^2 = 2 [log L_sat - log L(pars)]``, smooth in the model's numbers and ``data``.

    ``L_sat`` is the likelihood at the point that reproduces ``data`` exactly
    (every Poisson mean equal to its count, every constraint at its auxdata),
    which on Asimov data is the point the data were generated from. One entry
    per main bin (signed Poisson deviance residual) and per auxiliary
    measurement (``(aux - theta) / sigma`` for Normal constraints, the Poisson
    residual of ``aux`` against ``factor * gamma`` otherwise).

    Returns:
        Shape ``(nmaindata + nauxdata,)``.
    """
    nmain = model.config.nmaindata
    main = _poisson_residuals(data[:nmain], model.expected_actualdata(pars))
    layout, width = model.layout, model.numbers.aux_width
    aux, expected = data[nmain:], model.expected_auxdata(pars)
    constraint = jnp.zeros_like(aux)
    if layout.normal_aux.size:
        n = layout.normal_aux
        constraint = constraint.at[n].set((aux[n] - expected[n]) / width[n])
    if layout.poisson_aux.size:
        p = layout.poisson_aux
        constraint = constraint.at[p].set(_poisson_residuals(aux[p], expected[p]))
    return jnp.concatenate([main, constraint])
