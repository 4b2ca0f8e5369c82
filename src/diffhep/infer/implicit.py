"""Fitted parameters with derivatives, by the implicit function theorem.

At a minimum ``theta_hat(phi)`` of ``NLL(theta, phi)`` over the free
parameters, ``grad_theta NLL(theta_hat, phi) = 0``; differentiating gives

    d theta_hat / d phi = -H^-1 d(grad_theta NLL) / d phi,

with ``H`` the Hessian in the free parameters that are not held at a bound.
:func:`implicit_fit` returns the fit (run on ``stop_gradient``-ed inputs, so no
derivative goes through the Newton iterations) as
``theta_hat - (s - stop_gradient(s))`` with ``s = H^-1 grad_theta NLL(theta_hat, phi)``
and ``H`` held constant: the value is ``theta_hat`` exactly and the derivative
is the one above. Parameters fixed through ``fixed_values`` take the derivative
of their (possibly traced) value, and the others respond to it through ``H``.

Use it where an objective depends on fitted parameters beyond the likelihood
value at the optimum (for which the envelope theorem suffices), e.g. the
Fisher information at a best fit to observed data. Only first derivatives are
exact (``H`` itself is not differentiated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from jax import Array

from diffhep.infer.fit import FitResult, fit
from diffhep.likelihood.hessian import nll_grad_hessian
from diffhep.likelihood.model import Model

__all__ = ["implicit_fit"]


def implicit_fit(
    model: Model,
    data: Array,
    *,
    init: Array | None = None,
    fixed: Sequence[bool] | Array | None = None,
    bounds: Array | None = None,
    fixed_values: Mapping[int, float | Array] | None = None,
    n_steps: int = 50,
) -> FitResult:
    """:func:`~diffhep.infer.fit` whose ``bestfit`` is differentiable (implicit function theorem).

    Args:
        model: the likelihood; its numbers may be traced.
        data: main counts followed by auxdata, shape ``(nmaindata + nauxdata,)``; may be traced.
        init, fixed, bounds, n_steps: as for :func:`~diffhep.infer.fit`.
        fixed_values: parameter index -> value held fixed; values may be traced
            and the result is differentiable in them.

    Returns:
        :class:`~diffhep.infer.FitResult`: ``bestfit`` (shape ``(npars,)``) with
        first derivatives with respect to the model's numbers, the data and the
        fixed values; ``nll`` at ``bestfit`` with envelope-theorem derivatives.

    Example:
        >>> from diffhep.likelihood import build_model
        >>> def fitted_norm(bkg):
        ...     spec = {"channels": [{"name": "cr", "samples": [{"name": "bkg", "data": bkg,
        ...             "modifiers": [{"name": "k", "type": "normfactor", "data": None}]}]}]}
        ...     return implicit_fit(build_model(spec, poi_name=None), jnp.array([40.0, 60.0])).bestfit[0]
        >>> value, grad = jax.jit(jax.value_and_grad(fitted_norm))(jnp.array([20.0, 30.0]))
        >>> round(float(value), 5), round(float(grad[0]), 5)  # k = 100 / 50, dk/db_0 = -100 / 50**2
        (2.0, -0.04)
    """
    frozen_model, frozen_data = jax.tree_util.tree_map(jax.lax.stop_gradient, (model, data))
    frozen_values = {k: jax.lax.stop_gradient(v) for k, v in (fixed_values or {}).items()}
    result = fit(
        frozen_model,
        frozen_data,
        init=None if init is None else jax.lax.stop_gradient(init),
        fixed=fixed,
        bounds=bounds,
        fixed_values=frozen_values,
        n_steps=n_steps,
    )
    config = model.config
    p_hat = jax.lax.stop_gradient(result.bestfit)
    held = jnp.asarray(config.suggested_fixed() if fixed is None else fixed, dtype=bool)
    pars = p_hat
    for index, value in (fixed_values or {}).items():
        held = held.at[index].set(True)
        pars = pars.at[index].set(value)  # value p_hat[index], derivative of the traced value
    bounds = config.suggested_bounds() if bounds is None else jnp.asarray(bounds, dtype=float)
    gradient = jax.grad(lambda p: -model.logpdf(p, data)[0])(pars)
    g_value = jax.lax.stop_gradient(gradient)
    at_bound = ((p_hat <= bounds[:, 0]) & (g_value > 0)) | ((p_hat >= bounds[:, 1]) & (g_value < 0))
    active = ~held & ~at_bound
    hessian = jax.lax.stop_gradient(nll_grad_hessian(frozen_model, p_hat, frozen_data)[1])
    hessian = jnp.where(active[:, None] & active[None, :], hessian, 0.0) + jnp.diag(jnp.where(active, 0.0, 1.0))
    step = jnp.linalg.solve(hessian, jnp.where(active, gradient, 0.0))
    step = jnp.where(active, step, 0.0)
    bestfit = pars - (step - jax.lax.stop_gradient(step))
    return result._replace(bestfit=bestfit, nll=-model.logpdf(pars, data)[0])
