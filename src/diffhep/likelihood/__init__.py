"""HistFactory likelihoods in JAX, built from pyhf specs.

- :func:`build_model` — spec (numbers may be JAX tracers) → :class:`Model` with
  pyhf's parameter order, ``expected_data`` and ``logpdf``;
- :func:`make_spec` — the skeleton analysis's one-channel spec from yields;
- :func:`to_pyhf` — a spec with arrays → plain JSON for ``pyhf.Model``.
"""

from diffhep.likelihood.model import Model, ModelConfig, build_model
from diffhep.likelihood.spec import make_spec, to_pyhf

__all__ = ["Model", "ModelConfig", "build_model", "make_spec", "to_pyhf"]
