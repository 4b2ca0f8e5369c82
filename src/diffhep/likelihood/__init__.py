"""HistFactory likelihoods in JAX, from pyhf workspaces and from histograms.

- :func:`from_workspace` — a pyhf workspace dict (as published on HEPData) and
  a measurement → :class:`Model`, validated with pyhf's schema; :func:`observed_data`
  gives its data like ``pyhf.Workspace.data``;
- :func:`build_model` — a model spec (numbers may be JAX tracers) → :class:`Model`
  with pyhf's parameter order, ``expected_data`` and ``logpdf``;
- :func:`make_spec` — the skeleton analysis's one-channel spec from yields;
- :func:`to_pyhf` — a spec with arrays → plain JSON for ``pyhf.Model``.
"""

from diffhep.likelihood.model import Model, ModelConfig, build_model
from diffhep.likelihood.spec import BKG_SUMW2_FLOOR, BKG_YIELD_FLOOR, make_spec, to_pyhf
from diffhep.likelihood.workspace import from_workspace, observed_data, validate_workspace

__all__ = [
    "Model",
    "ModelConfig",
    "build_model",
    "from_workspace",
    "observed_data",
    "validate_workspace",
    "make_spec",
    "to_pyhf",
    "BKG_YIELD_FLOOR",
    "BKG_SUMW2_FLOOR",
]
