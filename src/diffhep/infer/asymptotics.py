"""Asymptotic distributions of profile-likelihood test statistics (arXiv:1007.1727), as pyhf's.

These reproduce ``pyhf.infer.calculators.AsymptoticCalculator`` with its
default ``calc_base_dist="normal"``: with ``q`` the observed test statistic and
``q_A`` the one on Asimov data,

* the test statistic in standard deviations is ``sqrt(q) - sqrt(q_A)`` for
  ``q`` and ``q0``, and for ``qtilde`` the same when ``sqrt(q) <= sqrt(q_A)``,
  else ``(q - q_A) / (2 sqrt(q_A))``;
* ``CLsb = Phi(-(t + sqrt(q_A)))``, ``CLb = Phi(-t)``, ``CLs = CLsb / CLb``;
* the expected values use ``t = n`` for ``n`` in ``EXPECTED_NSIGMA`` = (2, 1, 0, -1, -2),
  pyhf's order (smallest CLs first: the -2 sigma edge of the band first).

All functions are elementwise, differentiable, and safe at ``q_A = 0``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.scipy.special import log_ndtr

from diffhep.errors import ConfigError

__all__ = ["EXPECTED_NSIGMA", "TEST_STATS", "safe_sqrt", "teststat_sigma", "pvalues", "expected_pvalues", "cls_at"]

#: Test-statistic values (in sigma, under the background-only hypothesis) of the expected band, pyhf's order.
EXPECTED_NSIGMA = (2.0, 1.0, 0.0, -1.0, -2.0)
#: Test statistics supported by :func:`diffhep.infer.hypotest`.
TEST_STATS = ("qtilde", "q", "q0")


def safe_sqrt(x: Array) -> Array:
    """``sqrt(x)`` for ``x > 0``, 0 for ``x <= 0``, NaN for NaN; a finite (zero) gradient at ``x <= 0``.

    A NaN stays NaN (a failed fit must not turn into ``q = 0``, a plausible CLs).
    """
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), jnp.where(jnp.isnan(x), jnp.nan, 0.0))


def check_test_stat(test_stat: str) -> None:
    """Raise :class:`ConfigError` unless ``test_stat`` is one of :data:`TEST_STATS`."""
    if test_stat not in TEST_STATS:
        raise ConfigError(f"test_stat {test_stat!r} is not supported; use one of {', '.join(TEST_STATS)}")


def teststat_sigma(q: Array, q_asimov: Array, test_stat: str) -> Array:
    """pyhf's ``AsymptoticCalculator.teststatistic``: the observed statistic in sigma.

    Args:
        q: observed test statistic (``q_mu``, ``qtilde_mu`` or ``q0``), shape ``()`` or batch.
        q_asimov: the same statistic on the Asimov data, same shape.
        test_stat: ``"qtilde"``, ``"q"`` or ``"q0"``.
    """
    check_test_stat(test_stat)
    sqrt_q, sqrt_qa = safe_sqrt(q), safe_sqrt(q_asimov)
    plain = sqrt_q - sqrt_qa
    if test_stat in ("q", "q0"):
        return plain
    denominator = jnp.where(sqrt_qa > 0, 2.0 * sqrt_qa, 1.0)
    # pyhf uses '<=' here (its issue #1992)
    return jnp.where(sqrt_q <= sqrt_qa, plain, (q - q_asimov) / denominator)


def pvalues(teststat: Array, q_asimov: Array) -> tuple[Array, Array, Array]:
    """``(CLsb, CLb, CLs)`` for a test statistic in sigma; shapes broadcast.

    Computed as ``exp(log Phi(...))`` so that small p-values and their
    gradients stay accurate.
    """
    sqrt_qa = safe_sqrt(q_asimov)
    log_clsb = log_ndtr(-(teststat + sqrt_qa))
    log_clb = log_ndtr(-teststat)
    return jnp.exp(log_clsb), jnp.exp(log_clb), jnp.exp(log_clsb - log_clb)


def expected_pvalues(q_asimov: Array) -> tuple[Array, Array, Array]:
    """Expected ``(CLsb, CLb, CLs)``, each shape ``(5,) + q_asimov.shape``, at :data:`EXPECTED_NSIGMA`."""
    nsigma = jnp.asarray(EXPECTED_NSIGMA, dtype=jnp.result_type(q_asimov, float))
    nsigma = nsigma.reshape((5,) + (1,) * jnp.ndim(q_asimov))
    return pvalues(nsigma, q_asimov)


def cls_at(nsigma: Array | float, q_asimov: Array) -> Array:
    """Expected ``CLs = Phi(-(n + sqrt(q_A))) / Phi(-n)`` at ``n`` sigma; shapes broadcast."""
    return pvalues(jnp.asarray(nsigma, dtype=jnp.result_type(q_asimov, float)), q_asimov)[2]
