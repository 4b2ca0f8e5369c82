"""diffhep: differentiable high-energy-physics analyses.

Structure is static, values flow: ragged events are read once with uproot and
Awkward, their structure (counts, orderings, pairs) is fixed, and the stages
that depend on cut values run on flat JAX buffers, jit-compiled and
differentiable.

Package map, in pipeline order (each package imports only those above it;
``tests/test_architecture.py`` checks it):

* :mod:`diffhep.errors`, :mod:`diffhep.outputs`: error types; atomic writers.
* :mod:`diffhep.io`: synthetic NanoAOD generators, the uproot reader with NanoAOD
  zipping, samples and their normalisation.
* :mod:`diffhep.jagged`: the ``Jagged`` pytree, where Awkward meets JAX; candidates
  (pairs, trijets, ZZ) built once on the host.
* :mod:`diffhep.select`: soft cuts and differentiable object counting.
* :mod:`diffhep.histogram`: weighted KDE histograms; hard ``hist`` histograms.
* :mod:`diffhep.likelihood`: HistFactory (pyhf-format) models in JAX.
* :mod:`diffhep.infer`: fits, test statistics, hypotests, differentiable objectives.
* :mod:`diffhep.config`: YAML -> schema -> meaning checks -> expressions, parameters, plugins.
* :mod:`diffhep.execute`: chunked (streaming) and Dask execution of a step.
* :mod:`diffhep.engine`: a config -> a differentiable analysis and its hard-cut twin,
  in memory or chunk by chunk.
* :mod:`diffhep.optimize`: bounds as a transform, the Optax loop, checkpoints, scan.
* :mod:`diffhep.report`: plots, ``histograms.root``, ``report.md``.
* :mod:`diffhep.workflow`: the job: load -> optimise -> evaluate -> scan -> write.
* :mod:`diffhep.examples`: hand-written analyses on the core (no config), to read and adapt.
* :mod:`diffhep.bench`: ``diffhep bench agc``.
* :mod:`diffhep.cli`: the ``diffhep`` command.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
