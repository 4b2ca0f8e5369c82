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
from diffhep.infer.ratio import log_likelihood_ratio
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
        (envelope theorem).
    """
    frozen = jax.tree_util.tree_map(jax.lax.stop_gradient, (model, data))
    unconditional = fit(*frozen, n_steps=n_steps).bestfit
    conditional = fixed_poi_fit(*frozen, 0.0, n_steps=n_steps).bestfit
    return _q0_at(model, data, unconditional, conditional)


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
        everything the model's numbers depend on, ``jax.jit``-compatible, with a
        finite gradient where ``q0 = 0``.
    """
    data = asimov_data(model, 1.0)
    frozen = jax.tree_util.tree_map(jax.lax.stop_gradient, (model, data))
    if fit_unconditional:
        unconditional = fit(*frozen, n_steps=n_steps).bestfit
    else:
        unconditional = model.config.suggested_init().at[_poi_index(model)].set(1.0)
    conditional = fixed_poi_fit(*frozen, 0.0, n_steps=n_steps).bestfit
    return safe_sqrt(_q0_at(model, data, unconditional, conditional))


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
