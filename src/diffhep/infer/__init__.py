"""Fits, test statistics, hypothesis tests and differentiable objectives on :class:`diffhep.likelihood.Model`.

- :mod:`~diffhep.infer.fit`: :func:`fit`, :func:`fixed_poi_fit` — jit/vmap-compatible
  projected-Newton MLE fits honouring bounds and fixed parameters;
- :mod:`~diffhep.infer.implicit`: :func:`implicit_fit` — the same with derivatives
  of the fitted parameters (implicit function theorem);
- :mod:`~diffhep.infer.ratio`: :func:`log_likelihood_ratio` without catastrophic
  cancellation;
- :mod:`~diffhep.infer.teststats`: the profile-likelihood test statistics ``q``,
  ``qtilde`` and ``q0`` from fitted points;
- :mod:`~diffhep.infer.asymptotics`: their asymptotic distributions (p-values,
  CLs, expected bands), as pyhf's ``AsymptoticCalculator``;
- :mod:`~diffhep.infer.hypotest`: :func:`hypotest` — asymptotic CLs (``qtilde``,
  ``q``) and discovery p-value (``q0``) with expected bands, as
  ``pyhf.infer.hypotest``, returning a :class:`HypotestResult`;
- :mod:`~diffhep.infer.toys`: ``hypotest(..., calctype="toybased")`` — pyhf's
  ``ToyCalculator`` with the toys fitted in ``vmap``-ed batches, returning a
  :class:`ToyHypotestResult` (the toys' test statistics in :class:`ToyDistribution`);
  :func:`sample_toys` draws them;
- :mod:`~diffhep.infer.significance`: :func:`asimov_data`, :func:`discovery_q0`,
  the objective :func:`expected_discovery_significance` and
  :func:`pyhf_discovery_significance`, the pyhf reference value;
- :mod:`~diffhep.infer.objectives`: the other objectives, differentiable in the
  model's numbers: :func:`expected_cls`, :func:`expected_cls_band`,
  :func:`poi_uncertainty`, :func:`asimov_significance`.
"""

from diffhep.infer.asymptotics import EXPECTED_NSIGMA
from diffhep.infer.fit import FitResult, fit, fixed_poi_fit
from diffhep.infer.hypotest import HypotestFits, HypotestResult, hypotest
from diffhep.infer.implicit import implicit_fit
from diffhep.infer.objectives import (
    asimov_q_mu,
    asimov_significance,
    expected_cls,
    expected_cls_band,
    poi_uncertainty,
)
from diffhep.infer.ratio import log_likelihood_ratio
from diffhep.infer.significance import (
    asimov_data,
    discovery_q0,
    expected_discovery_significance,
    pyhf_discovery_significance,
)
from diffhep.infer.toys import ToyDistribution, ToyHypotestResult, sample_toys

__all__ = [
    "FitResult",
    "fit",
    "fixed_poi_fit",
    "implicit_fit",
    "HypotestFits",
    "HypotestResult",
    "hypotest",
    "ToyHypotestResult",
    "ToyDistribution",
    "sample_toys",
    "EXPECTED_NSIGMA",
    "asimov_data",
    "discovery_q0",
    "log_likelihood_ratio",
    "expected_discovery_significance",
    "expected_cls",
    "expected_cls_band",
    "poi_uncertainty",
    "asimov_q_mu",
    "asimov_significance",
    "pyhf_discovery_significance",
]
