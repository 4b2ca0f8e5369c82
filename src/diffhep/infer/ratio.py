"""Log-likelihood ratios computed without catastrophic cancellation."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from diffhep.likelihood.model import Model

__all__ = ["log_likelihood_ratio"]


def log_likelihood_ratio(model: Model, data: Array, pars_a: Array, pars_b: Array) -> Array:
    """``log L(pars_a) - log L(pars_b)`` on the same data, without cancellation.

    Subtracting two full log-likelihoods loses everything in float32: each is
    of order ``-sum(n log n)`` (1e5 and more for bins of 1e4 events) while the
    difference that matters for ``q0`` is of order 1. Per bin of the Poisson
    part the difference is ``n log(nu_a / nu_b) - (nu_a - nu_b)``, which we write
    with ``r = (nu_a - nu_b) / nu_b`` as ``(n - nu_b) r + n (log1p(r) - r)``:
    every term is small, and on Asimov data ``n - nu_b`` vanishes. The
    constraint terms are small already; their normalisations cancel exactly.

    Returns:
        Shape ``()``.
    """
    nmain = model.config.nmaindata
    main, aux = data[:nmain], data[nmain:]
    nu_a = model.expected_actualdata(pars_a)
    nu_b = model.expected_actualdata(pars_b)
    r = (nu_a - nu_b) / nu_b
    poisson = jnp.sum((main - nu_b) * r + main * (jnp.log1p(r) - r))
    constraint = model.constraint_logpdf(aux, pars_a) - model.constraint_logpdf(aux, pars_b)
    return poisson + jnp.sum(constraint)
