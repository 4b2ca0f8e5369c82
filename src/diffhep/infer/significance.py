"""Discovery test statistic and the differentiable expected discovery significance.

``expected_discovery_significance`` is the analysis objective: the median
discovery significance ``Z = sqrt(q0)`` on Asimov data with ``mu = 1``,
differentiable with respect to every number in the model (typically yields
from a soft selection). Gradients use the envelope theorem: fits run on
``stop_gradient``-ed inputs, and the log-likelihoods are then re-evaluated at
the (constant) fitted parameters with gradients flowing through the model and
the Asimov data. At a minimum the NLL is stationary in the free parameters, so
this is the total derivative of the profiled likelihood ratio.

``pyhf_discovery_significance`` computes the same number with pyhf (numpy
backend, scipy fits) as the reference for tests and hard-cut evaluation.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from diffhep.errors import ConfigError
from diffhep.infer.asymptotics import safe_sqrt
from diffhep.infer.fit import fit, fixed_poi_fit
from diffhep.infer.ratio import log_likelihood_ratio, signed_residuals
from diffhep.likelihood.model import Model
from diffhep.likelihood.spec import to_pyhf

__all__ = [
    "asimov_data",
    "discovery_q0",
    "expected_discovery_significance",
    "pyhf_discovery_significance",
    "safe_sqrt",
]


def _poi_index(model: Model) -> int:
    poi = model.config.poi_index
    if poi is None:
        raise ConfigError("this needs a model with a parameter of interest; build it with poi_name=...")
    return poi


def asimov_data(model: Model, poi_value: float | Array = 1.0) -> Array:
    """Expected data (main counts and auxdata) at nominal nuisances and ``poi = poi_value``.

    Returns:
        Shape ``(nmaindata + nauxdata,)``.
    """
    pars = model.config.suggested_init().at[_poi_index(model)].set(poi_value)
    return model.expected_data(pars)


def _q0_at(model: Model, data: Array, unconditional: Array, conditional: Array) -> Array:
    """``q0`` from fixed best-fit points; gradients flow through ``model`` and ``data`` only."""
    unconditional = jax.lax.stop_gradient(unconditional)
    conditional = jax.lax.stop_gradient(conditional)
    q0 = jnp.maximum(2.0 * log_likelihood_ratio(model, data, unconditional, conditional), 0.0)
    return jnp.where(unconditional[_poi_index(model)] < 0, 0.0, q0)


def discovery_q0(model: Model, data: Array, *, n_steps: int = 50) -> Array:
    """Discovery test statistic ``q0 = -2 [log L(0, theta_hat_hat) - log L(mu_hat, theta_hat)]``.

    As pyhf's ``q0``: clipped at 0, and 0 when ``mu_hat < 0`` (with the default
    POI bounds ``[0, 10]`` this cannot happen). Both fits use the model's
    suggested init, bounds and fixed parameters.

    Args:
        model: the likelihood.
        data: main counts followed by auxdata, shape ``(nmaindata + nauxdata,)``.
        n_steps: Newton steps per fit.

    Returns:
        ``q0``, shape ``()``; differentiable in ``data`` and the model's numbers
        (envelope theorem). NaN when a fit did not converge.
    """
    frozen = jax.tree_util.tree_map(jax.lax.stop_gradient, (model, data))
    unconditional = fit(*frozen, n_steps=n_steps)
    conditional = fixed_poi_fit(*frozen, 0.0, n_steps=n_steps)
    q0 = _q0_at(model, data, unconditional.bestfit, conditional.bestfit)
    return jnp.where(unconditional.converged & conditional.converged, q0, jnp.nan)


def expected_discovery_significance(model: Model, *, fit_unconditional: bool = False, n_steps: int = 50) -> Array:
    """Median expected discovery significance ``Z = sqrt(q0)`` on Asimov data with ``mu = 1``.

    Args:
        model: the likelihood (float32 is fine: ``q0`` is computed with
            :func:`log_likelihood_ratio`, which avoids the cancellation of two
            large log-likelihoods).
        fit_unconditional: fit the unconditional maximum instead of using its
            exact Asimov value (``mu = 1``, nominal nuisances); the two agree.
        n_steps: Newton steps per fit.

    Returns:
        ``Z`` (standard deviations), shape ``()``. Differentiable with respect to
        everything the model's numbers depend on, ``jax.jit``-compatible. ``Z``
        is computed as the length of the vector of signed deviance residuals,
        smooth in the signal, so its gradient keeps its one-sided limit as the
        signal goes to 0 (``sqrt(q0)`` would give 0 there: no optimiser could
        leave a selection where the signal is invisible); at exactly zero
        signal see :func:`_norm`. NaN when the background-only fit did not
        converge (the optimiser stops there and says so).
    """
    data = asimov_data(model, 1.0)
    frozen = jax.tree_util.tree_map(jax.lax.stop_gradient, (model, data))
    conditional = fixed_poi_fit(*frozen, 0.0, n_steps=n_steps)
    if fit_unconditional:
        unconditional = fit(*frozen, n_steps=n_steps)
        z = safe_sqrt(_q0_at(model, data, unconditional.bestfit, conditional.bestfit))
        converged = conditional.converged & unconditional.converged
    else:
        # q0 = |w|^2 exactly (the unconditional maximum is the Asimov point), with w smooth:
        # Z = |w| keeps the one-sided slope of sqrt(q0) where q0 -> 0 (see _norm)
        w = signed_residuals(model, data, jax.lax.stop_gradient(conditional.bestfit))
        nmain = model.config.nmaindata
        background = jax.lax.stop_gradient(model.expected_actualdata(conditional.bestfit))
        z = _norm(w, jnp.concatenate([jnp.sqrt(jnp.maximum(background, 0.0)), jnp.zeros_like(w[nmain:])]))
        converged = conditional.converged
    return jnp.where(converged, z, jnp.nan)


@jax.custom_jvp
def _norm(w: Array, direction: Array) -> Array:
    """``|w|`` (overflow- and underflow-safe), whose derivative at ``w = 0`` is taken along ``direction``.

    At ``w = 0`` the norm has a one-sided slope in every direction but no
    gradient. There, for :func:`expected_discovery_significance`, the slope is
    the one of a signal shaped like the background (``direction`` = sqrt of the
    background per bin): the merged-bin counting experiment ``sum(ds) / sqrt(B)``,
    a positive lower bound of the slope along any other signal shape. Wherever
    ``w != 0``, however small, the derivative is the exact ``w . dw / |w|``.
    """
    scale = jnp.max(jnp.abs(w))
    safe = jnp.where(scale > 0, scale, 1.0)
    return jnp.where(scale > 0, safe * jnp.sqrt(jnp.sum((w / safe) ** 2)), 0.0)


@_norm.defjvp
def _norm_jvp(primals: tuple[Array, Array], tangents: tuple[Array, Array]) -> tuple[Array, Array]:
    w, direction = primals
    dw, _ = tangents
    value = _norm(w, direction)
    unit_dir = direction / jnp.maximum(jnp.sqrt(jnp.sum(direction**2)), jnp.finfo(w.dtype).tiny)
    unit = jnp.where(value > 0, w / jnp.where(value > 0, value, 1.0), unit_dir)
    return value, jnp.sum(unit * dw)


def pyhf_discovery_significance(spec: Mapping[str, Any], *, poi_name: str = "mu") -> float:
    """Reference expected discovery significance computed by pyhf (numpy backend, float64).

    Builds ``pyhf.Model(to_pyhf(spec))``, Asimov data at ``mu = 1`` from
    ``model.expected_data`` at the suggested init, runs
    ``pyhf.infer.hypotest(0.0, data, model, test_stat="q0")`` and returns
    ``Z = norm.isf(p0)``. pyhf's global backend is switched to numpy only for the
    call if needed and restored afterwards.
    """
    import pyhf
    import scipy.stats

    plain = to_pyhf(spec)
    previous = pyhf.get_backend()
    tensorlib = previous[0]
    switch = tensorlib.name != "numpy" or tensorlib.precision != "64b"
    try:
        if switch:
            pyhf.set_backend("numpy", precision="64b")
        with warnings.catch_warnings():
            # pyhf's schema validation uses jsonschema's deprecated RefResolver
            warnings.filterwarnings("ignore", message="jsonschema.RefResolver", category=DeprecationWarning)
            model = pyhf.Model(plain, poi_name=poi_name)
        init = model.config.suggested_init()
        init[model.config.poi_index] = 1.0
        data = model.expected_data(init)
        p0 = pyhf.infer.hypotest(0.0, data, model, test_stat="q0")
    finally:
        if switch:
            pyhf.set_backend(*previous)
    return float(scipy.stats.norm.isf(float(p0)))
