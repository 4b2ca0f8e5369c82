"""Differentiable analysis objectives: expected CLs, POI uncertainty, the Asimov significance formula.

Each objective is a scalar (or small array) function of a :class:`~diffhep.likelihood.Model`
(or of yields) that ``jax.grad`` differentiates with respect to every number
the model was built from, typically histogram contents from a soft selection:

* :func:`~diffhep.infer.expected_discovery_significance` (in
  :mod:`diffhep.infer.significance`) — median discovery ``Z`` on Asimov data;
* :func:`expected_cls` — expected CLs at a signal strength (``qtilde``, Asimov,
  background-only), the median or any point of the band; minimise it to
  maximise the expected exclusion power;
* :func:`poi_uncertainty` — the Cramér–Rao bound on the POI, ``sqrt([H^-1]_poi,poi)``
  with ``H = jax.hessian(-logpdf)`` at the Asimov point (INFERNO), or at the
  best fit to given data;
* :func:`asimov_significance` — the closed-form median significance with a
  background uncertainty, per bin, combined in quadrature (no fit).

Profiled nuisance parameters enter by the envelope theorem: the fits run on
``stop_gradient``-ed inputs and the likelihood is re-evaluated at the fitted
point, which is the exact derivative of the profiled likelihood. Where second
derivatives at a fitted point are needed (:func:`poi_uncertainty` with data),
the fitted point carries implicit-function-theorem derivatives
(:func:`~diffhep.infer.implicit.implicit_fit`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from diffhep.errors import ConfigError
from diffhep.infer.asymptotics import EXPECTED_NSIGMA, cls_at, safe_sqrt
from diffhep.infer.fit import fixed_poi_fit
from diffhep.infer.implicit import implicit_fit
from diffhep.infer.ratio import log_likelihood_ratio
from diffhep.likelihood.hessian import nll_hessian
from diffhep.likelihood.model import Model

__all__ = ["expected_cls", "expected_cls_band", "poi_uncertainty", "asimov_significance", "asimov_q_mu"]


def _poi(model: Model) -> int:
    poi = model.config.poi_index
    if poi is None:
        raise ConfigError("this objective needs a model with a parameter of interest; build it with poi_name=...")
    return poi


def asimov_q_mu(model: Model, poi_test: float | Array = 1.0, *, n_steps: int = 50) -> Array:
    """``q_mu`` on background-only Asimov data (POI 0, nominal nuisances), shape ``()``.

    ``q_A = -2 log(L(mu, theta_hat_hat) / L(0, theta_0))``: the unconditional
    maximum is the generating point itself; the conditional fit at ``poi_test``
    enters by the envelope theorem. Differentiable in the model's numbers and in
    ``poi_test``. NaN when the conditional fit did not converge.
    """
    poi = _poi(model)
    background = model.config.suggested_init().at[poi].set(0.0)
    data = model.expected_data(background)
    frozen = jax.tree_util.tree_map(jax.lax.stop_gradient, (model, data))
    result = fixed_poi_fit(*frozen, jax.lax.stop_gradient(poi_test), n_steps=n_steps)
    conditional = jax.lax.stop_gradient(result.bestfit).at[poi].set(poi_test)
    q = jnp.maximum(2.0 * log_likelihood_ratio(model, data, background, conditional), 0.0)
    return jnp.where(result.converged, q, jnp.nan)  # an unconverged fit: NaN, never a plausible q


def expected_cls(
    model: Model, poi_test: float | Array = 1.0, *, nsigma: float | Array = 0.0, n_steps: int = 50
) -> Array:
    """Expected CLs at ``poi_test`` for background-only data (``qtilde``, asymptotic).

    ``CLs(n) = Phi(-(n + sqrt(q_A))) / Phi(-n)`` with ``q_A`` from
    :func:`asimov_q_mu`; ``n = 0`` is the median, ``n`` in ``(2, 1, -1, -2)``
    the band edges (pyhf's convention, see :func:`expected_cls_band`). Equal to
    ``pyhf.infer.hypotest(poi_test, asimov_b, model, return_expected_set=True)``
    on the background-only Asimov data ``asimov_b``.

    Args:
        model: the likelihood; its numbers may be traced.
        poi_test: the signal strength tested, shape ``()``.
        nsigma: where in the band, shape ``()`` or ``(k,)``.
        n_steps: most Newton steps of the conditional fit.

    Returns:
        CLs, shape of ``nsigma``; differentiable (a finite gradient also where
        ``q_A = 0``).
    """
    return cls_at(nsigma, asimov_q_mu(model, poi_test, n_steps=n_steps))


def expected_cls_band(model: Model, poi_test: float | Array = 1.0, *, n_steps: int = 50) -> Array:
    """Expected CLs at ``nsigma = (2, 1, 0, -1, -2)`` (pyhf's order, -2 sigma edge first), shape ``(5,)``."""
    return expected_cls(model, poi_test, nsigma=jnp.asarray(EXPECTED_NSIGMA), n_steps=n_steps)


def poi_uncertainty(
    model: Model,
    poi_value: float | Array = 1.0,
    *,
    data: Array | None = None,
    n_steps: int = 50,
) -> Array:
    """Expected uncertainty on the POI from the Fisher information (Cramér–Rao bound, INFERNO).

    ``sigma_mu = sqrt([H^-1]_{poi,poi})`` with ``H`` the Hessian of ``-logpdf`` in the free
    parameters (``suggested_fixed`` ones excluded), written out by
    :func:`~diffhep.likelihood.hessian.nll_hessian` (``jax.hessian`` to rounding; its gradient is a
    smaller program than ``jax.hessian``'s, a third derivative of the whole model).

    Args:
        model: the likelihood; its numbers may be traced.
        poi_value: the POI of the Asimov point (nominal nuisances); ignored with ``data``.
        data: if given, ``H`` is taken at the best fit to these data (main counts
            then auxdata), whose derivatives come from the implicit function theorem.
        n_steps: most Newton steps of that fit.

    Returns:
        ``sigma_mu`` in POI units, shape ``()``; differentiable.
    """
    poi = _poi(model)
    config = model.config
    if data is None:
        pars = config.suggested_init().at[poi].set(poi_value)
        data = model.expected_data(pars)
    else:
        fitted = implicit_fit(model, jnp.asarray(data), n_steps=n_steps)
        pars = jnp.where(fitted.converged, fitted.bestfit, jnp.nan)  # NaN, never an unconverged point's sigma
    hessian = nll_hessian(model, pars, data)  # jax.hessian to rounding, a fraction of its program
    free = ~jnp.asarray(config.suggested_fixed(), dtype=bool)
    free = free.at[poi].set(True)
    hessian = jnp.where(free[:, None] & free[None, :], hessian, 0.0) + jnp.diag(jnp.where(free, 0.0, 1.0))
    unit = jnp.zeros(config.npars, dtype=hessian.dtype).at[poi].set(1.0)
    return jnp.sqrt(jnp.linalg.solve(hessian, unit)[poi])


def _log1p_over(x: Array) -> Array:
    """``log1p(x) / x`` with the limit 1 at ``x = 0`` (finite gradient)."""
    small = jnp.abs(x) < 1e-4
    safe = jnp.where(small, 1.0, x)
    return jnp.where(small, 1.0 - x / 2.0 + x**2 / 3.0, jnp.log1p(safe) / safe)


def asimov_significance(s: Array, b: Array, sigma: Array | float | None = None) -> Array:
    """Median discovery significance with a background uncertainty (Cowan's Asimov formula), bins in quadrature.

    Per bin, with ``s`` signal, ``b`` background and ``sigma`` the absolute
    background uncertainty (events),

        Z^2 = 2 ((s + b) ln((s + b)(b + sigma^2) / (b^2 + (s + b) sigma^2))
                 - b^2 / sigma^2 ln(1 + sigma^2 s / (b (b + sigma^2)))),

    which tends to ``2 ((s + b) ln(1 + s / b) - s)`` as ``sigma -> 0``; the result is
    ``sqrt(sum_bins Z^2)``. Written with ``log1p`` so that small ``s`` and small
    ``sigma`` (including 0) are accurate.

    Args:
        s: signal yields, shape ``(bins,)`` (events), >= 0.
        b: background yields, shape ``(bins,)`` (events), > 0.
        sigma: background uncertainties, shape ``(bins,)`` or scalar (events);
            ``None`` for none.

    Returns:
        ``Z``, shape ``()``; differentiable, finite gradient at ``s = 0``.

    Example:
        >>> round(float(asimov_significance(jnp.array([10.0]), jnp.array([100.0]))), 3)
        0.984
        >>> round(float(asimov_significance(jnp.array([10.0]), jnp.array([100.0]), 10.0)), 3)
        0.69
    """
    s = jnp.asarray(s)
    b = jnp.asarray(b)
    var = jnp.zeros_like(b) if sigma is None else jnp.broadcast_to(jnp.asarray(sigma, dtype=b.dtype) ** 2, b.shape)
    first = (s + b) * jnp.log1p(s * b / (b**2 + (s + b) * var))
    # b^2 / sigma^2 * log1p(x) with x = sigma^2 s / (b (b + sigma^2)), written to be finite at sigma = 0
    x = var * s / (b * (b + var))
    second = b * s / (b + var) * _log1p_over(x)
    return safe_sqrt(jnp.sum(jnp.maximum(2.0 * (first - second), 0.0)))
