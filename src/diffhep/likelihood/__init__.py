"""HistFactory likelihoods in JAX, from pyhf workspaces and from histograms.

Entry points:

- :mod:`~diffhep.likelihood.workspace`: :func:`from_workspace` — a pyhf workspace
  dict (as published on HEPData) and a measurement → :class:`Model`, validated
  with pyhf's schema; :func:`observed_data` gives its data like ``pyhf.Workspace.data``;
- :mod:`~diffhep.likelihood.model`: :func:`build_model` — a model spec (numbers may
  be JAX tracers) → :class:`Model` with pyhf's parameter order, ``expected_data``
  and ``logpdf``;
- :mod:`~diffhep.likelihood.spec`: :func:`make_spec` — a one-channel spec from
  sample yields; :func:`to_pyhf` — a spec with arrays → plain JSON for ``pyhf.Model``;
  :func:`mc_floor` — empty Monte Carlo bins as one MC event of the sample's mean weight.

Inside a model, in the order a spec is turned into a likelihood:

- :mod:`~diffhep.likelihood.model_parse`: the spec → static structure and numeric
  leaves, in pyhf's parameter order;
- :mod:`~diffhep.likelihood.modifiers`: the HistFactory modifiers (``histosys``,
  ``lumi``, ``normfactor``, ``normsys``, ``shapefactor``, ``shapesys``,
  ``staterror``): their parameter sets and how they change a sample's yields;
- :mod:`~diffhep.likelihood.interpolation`: pyhf's interpolation codes (normsys code1/code4, histosys code0/code2/code4p);
- :mod:`~diffhep.likelihood.parameters`: parameter sets (:class:`ParamSet`) and
  their constraint data;
- :mod:`~diffhep.likelihood.layout`: padded index tables that evaluate every sample
  and modifier in a few array operations;
- :mod:`~diffhep.likelihood.config`: :class:`ModelConfig`, the pyhf-like
  ``model.config`` view of parameters and bins;
- :mod:`~diffhep.likelihood.hessian`: gradient and exact Hessian of ``-logpdf``
  written out per sample, for the fits of :mod:`diffhep.infer`.
"""

from diffhep.likelihood.model import Model, ModelConfig, build_model
from diffhep.likelihood.spec import SUMW2_EPSILON, check_mean_weights, make_spec, mc_floor, to_pyhf
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
    "mc_floor",
    "check_mean_weights",
    "SUMW2_EPSILON",
]
