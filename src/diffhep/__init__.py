"""diffhep: differentiable high-energy-physics analyses.

Structure is static, values flow: ragged events are read once with uproot and
Awkward, their structure (counts, orderings, pairs) is fixed, and the stages
that depend on cut values run on flat JAX buffers, jit-compiled and
differentiable.

Package map, in pipeline order:

* :mod:`diffhep.io`: synthetic NanoAOD generator, uproot reader with NanoAOD
  zipping, samples and their normalisation.
* :mod:`diffhep.jagged`: the ``Jagged`` pytree, where Awkward meets JAX.
* :mod:`diffhep.select`: soft cuts and differentiable object counting.
* :mod:`diffhep.histogram`: weighted KDE histograms; hard ``hist`` histograms.
* :mod:`diffhep.likelihood`: HistFactory (pyhf-format) models in JAX.
* :mod:`diffhep.infer`: fits, ``q0``, expected discovery significance.
* :mod:`diffhep.optimize`: Optax optimisation of cut values.
* :mod:`diffhep.analysis`: the default dimuon analysis, hard-cut evaluation,
  the end-to-end job.
* :mod:`diffhep.cli`: the ``diffhep`` command.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
