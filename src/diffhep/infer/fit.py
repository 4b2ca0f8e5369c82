"""Maximum-likelihood fits with a fixed number of projected-Newton steps.

The minimiser is pure JAX with a static iteration count, so it runs under
``jax.jit`` and inside ``jax.grad``-traced code (differentiate *through* the
fit result only via the envelope theorem — see
:mod:`diffhep.infer.significance`). It is meant for small models (< ~100
parameters): every step builds the full Hessian.

Each step: gradient ``g`` and Hessian ``H`` of the NLL; parameters that are
fixed, or sit on a bound with ``g`` pushing outwards, are frozen for the step;
the Newton direction uses ``H`` with eigenvalues replaced by their absolute
values (floored), so it always descends; a backtracking search over step
lengths ``1, 1/2, ..., 2**-(n_halvings-1)`` (clipped to the bounds) keeps the
best point, never increasing the NLL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from diffhep.errors import ConfigError
from diffhep.infer.ratio import log_likelihood_ratio
from diffhep.likelihood.model import Model

__all__ = ["FitResult", "fit", "fixed_poi_fit"]


class FitResult(NamedTuple):
    """Result of :func:`fit`.

    Attributes:
        bestfit: fitted parameters, shape ``(npars,)``, in ``model.config`` order.
        nll: negative log-likelihood at ``bestfit``, shape ``()``
            (pyhf's ``twice_nll`` is ``2 * nll``).
    """

    bestfit: Array
    nll: Array


def _nll(model: Model, data: Array, pars: Array) -> Array:
    return -model.logpdf(pars, data)[0]


@partial(jax.jit, static_argnames=("n_steps", "n_halvings"))
def _minimize(
    model: Model,
    data: Array,
    init: Array,
    lower: Array,
    upper: Array,
    free: Array,
    n_steps: int,
    n_halvings: int,
) -> FitResult:
    """Projected damped-Newton minimisation of the model NLL (see module docstring)."""

    def nll(p: Array) -> Array:
        return _nll(model, data, p)

    ts = 0.5 ** jnp.arange(n_halvings, dtype=init.dtype)

    def step(p: Array, _: None) -> tuple[Array, None]:
        g = jax.grad(nll)(p)
        h = jax.hessian(nll)(p)
        at_lower = (p <= lower) & (g > 0)
        at_upper = (p >= upper) & (g < 0)
        active = free & ~at_lower & ~at_upper
        both = active[:, None] & active[None, :]
        h = jnp.where(both, h, 0.0) + jnp.diag(jnp.where(active, 0.0, 1.0))
        h = 0.5 * (h + h.T)
        w, v = jnp.linalg.eigh(h)
        scale = jnp.max(jnp.abs(w))
        w = jnp.maximum(jnp.abs(w), 1e-12 * scale + jnp.finfo(p.dtype).tiny)
        direction = -(v @ ((v.T @ jnp.where(active, g, 0.0)) / w))
        direction = jnp.where(active, direction, 0.0)
        candidates = jnp.clip(p[None, :] + ts[:, None] * direction[None, :], lower, upper)
        candidates = jnp.where(free[None, :], candidates, p[None, :])
        # Compare candidates by their NLL *difference* to ``p``: absolute NLLs
        # are large, and in float32 their rounding noise would decide.
        values = -jax.vmap(lambda c: log_likelihood_ratio(model, data, c, p))(candidates)
        values = jnp.where(jnp.isfinite(values), values, jnp.inf)
        best = jnp.argmin(values)
        better = values[best] < 0.0
        return jnp.where(better, candidates[best], p), None

    p, _ = jax.lax.scan(step, init, None, length=n_steps)
    return FitResult(bestfit=p, nll=nll(p))


def fit(
    model: Model,
    data: Array,
    *,
    init: Array | None = None,
    fixed: Sequence[bool] | Array | None = None,
    bounds: Array | None = None,
    fixed_values: Mapping[int, float | Array] | None = None,
    n_steps: int = 30,
    n_halvings: int = 12,
) -> FitResult:
    """Minimise ``-model.logpdf(pars, data)`` over the free parameters.

    Args:
        model: the likelihood.
        data: main counts followed by auxdata, shape ``(nmaindata + nauxdata,)``.
        init: starting parameters, shape ``(npars,)``; default ``suggested_init()``.
        fixed: boolean mask, shape ``(npars,)``, of parameters held at their
            initial value; default ``suggested_fixed()``.
        bounds: ``(npars, 2)`` lower/upper bounds; default ``suggested_bounds()``.
        fixed_values: parameter index -> value; these parameters are set to the
            value and held fixed (values may be traced).
        n_steps: number of Newton steps (static; the loop always runs them all).
        n_halvings: number of step lengths tried per step (static).

    Returns:
        :class:`FitResult` with the best-fit parameters and the NLL there.
        Works under ``jax.jit``. Gradients of the result with respect to the
        data or model numbers are not meaningful; use the envelope theorem
        (``stop_gradient`` on ``bestfit`` and re-evaluate the likelihood).
    """
    config = model.config
    npars = config.npars
    init = config.suggested_init() if init is None else jnp.asarray(init, dtype=float)
    bounds = config.suggested_bounds() if bounds is None else jnp.asarray(bounds, dtype=float)
    fixed_mask = jnp.asarray(config.suggested_fixed() if fixed is None else fixed, dtype=bool)
    if init.shape != (npars,) or bounds.shape != (npars, 2) or fixed_mask.shape != (npars,):
        raise ConfigError(
            f"fit got init {tuple(init.shape)}, bounds {tuple(bounds.shape)}, fixed {tuple(fixed_mask.shape)}; "
            f"expected ({npars},), ({npars}, 2), ({npars},) for this model"
        )
    for index, value in (fixed_values or {}).items():
        if not 0 <= index < npars:
            raise ConfigError(f"fixed_values index {index} is out of range for a model with {npars} parameters")
        init = init.at[index].set(value)
        fixed_mask = fixed_mask.at[index].set(True)
    free = ~fixed_mask
    lower, upper = bounds[:, 0], bounds[:, 1]
    init = jnp.where(free, jnp.clip(init, lower, upper), init)
    return _minimize(model, jnp.asarray(data), init, lower, upper, free, n_steps, n_halvings)


def fixed_poi_fit(
    model: Model,
    data: Array,
    poi_value: float | Array,
    *,
    init: Array | None = None,
    fixed: Sequence[bool] | Array | None = None,
    bounds: Array | None = None,
    n_steps: int = 30,
    n_halvings: int = 12,
) -> FitResult:
    """:func:`fit` with the parameter of interest held at ``poi_value``."""
    poi = model.config.poi_index
    if poi is None:
        raise ConfigError("fixed_poi_fit needs a model with a parameter of interest; build it with poi_name=...")
    return fit(
        model,
        data,
        init=init,
        fixed=fixed,
        bounds=bounds,
        fixed_values={poi: poi_value},
        n_steps=n_steps,
        n_halvings=n_halvings,
    )
