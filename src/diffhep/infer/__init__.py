"""Fits and test statistics on :class:`diffhep.likelihood.Model`.

- :func:`fit`, :func:`fixed_poi_fit` — jit-compatible projected-Newton MLE fits;
- :func:`asimov_data`, :func:`discovery_q0` — Asimov data and the discovery ``q0``;
- :func:`expected_discovery_significance` — differentiable median ``Z`` (envelope theorem);
- :func:`pyhf_discovery_significance` — the pyhf reference value.
"""

from diffhep.infer.fit import FitResult, fit, fixed_poi_fit
from diffhep.infer.ratio import log_likelihood_ratio
from diffhep.infer.significance import (
    asimov_data,
    discovery_q0,
    expected_discovery_significance,
    pyhf_discovery_significance,
)

__all__ = [
    "FitResult",
    "fit",
    "fixed_poi_fit",
    "asimov_data",
    "discovery_q0",
    "log_likelihood_ratio",
    "expected_discovery_significance",
    "pyhf_discovery_significance",
]
