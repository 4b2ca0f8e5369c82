"""Profile-likelihood test statistics from fitted points, as ``pyhf.infer.test_statistics``.

With ``t = -2 log(L(mu, theta_hat_hat) / L(mu_hat, theta_hat))`` clipped at 0:

* ``q`` and ``qtilde``: ``t``, or 0 when ``mu_hat > mu`` (the two differ only in
  the POI bounds of the fits: ``qtilde`` has ``mu >= 0``);
* ``q0``: ``t`` at ``mu = 0``, or 0 when ``mu_hat < 0``.

The ratio is computed with :func:`~diffhep.infer.ratio.log_likelihood_ratio`
(no cancellation of two large log-likelihoods), so it is accurate in float32
too, and it is differentiable in the model's numbers and the data at fixed
fitted points (the envelope theorem).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from diffhep.infer.asymptotics import check_test_stat
from diffhep.infer.ratio import log_likelihood_ratio
from diffhep.likelihood.model import Model

__all__ = ["profile_statistic"]


def profile_statistic(
    model: Model,
    data: Array,
    conditional: Array,
    unconditional: Array,
    poi_test: Array | float,
    test_stat: str,
) -> Array:
    """The test statistic ``test_stat`` from the conditional and unconditional best fits.

    Args:
        model: the likelihood (with a POI).
        data: main counts followed by auxdata, shape ``(nmaindata + nauxdata,)``.
        conditional: best fit with the POI at ``poi_test``, shape ``(npars,)``.
        unconditional: free best fit, shape ``(npars,)``.
        poi_test: the tested POI value (0 for ``q0``).
        test_stat: ``"qtilde"``, ``"q"`` or ``"q0"``.

    Returns:
        Shape ``()``, >= 0.
    """
    check_test_stat(test_stat)
    mu_hat = unconditional[model.config.poi_index]
    t = jnp.maximum(2.0 * log_likelihood_ratio(model, data, unconditional, conditional), 0.0)
    if test_stat == "q0":
        return jnp.where(mu_hat < 0, 0.0, t)
    return jnp.where(mu_hat > poi_test, 0.0, t)
