"""The config engine: a validated config -> a differentiable analysis and its hard-cut twin.

Structure is static, values flow: :meth:`ConfiguredAnalysis.load` reads every
sample once and computes everything the cut values cannot change; the step
computes only weights and histograms on flat JAX buffers.

Modules, in the order a config flows through them:

* :mod:`~diffhep.engine.definitions`: the config's sections -> parameters, samples, plugin functions;
* :mod:`~diffhep.engine.expressions`: an expression tree evaluated soft (sigmoids) or hard (steps);
* :mod:`~diffhep.engine.backend`: :class:`Backend`, ``SOFT`` (JAX, sigmoids, KDE) and ``HARD`` (NumPy, steps): the
  operations that differ between the two paths, so the rest of the engine is written once;
* :mod:`~diffhep.engine.objects`: object collections (static ``require``/``order``/``union``, soft ``cuts``/``flags``);
* :mod:`~diffhep.engine.builtins`: candidate observables (``pair_mass``, ``trijet_mass``, ``m4l``, ``max``/``min``);
* :mod:`~diffhep.engine.counting`: ``count(c) <op> N`` as exact count probabilities;
* :mod:`~diffhep.engine.regions`: event selections, observables, histograms per cutflow step;
* :mod:`~diffhep.engine.network`: network observables (an equinox MLP of per-event inputs, YAML
  ``observable: {network: mlp, ...}``);
* :mod:`~diffhep.engine.split`: honest training: the even/odd training and evaluation halves, the
  networks' standardised inputs (computed once in ``load()``);
* :mod:`~diffhep.engine.systematics`: variations when reading; the HistFactory spec and pyhf workspace;
* :mod:`~diffhep.engine.mc_stats`: Monte Carlo statistics: samples' mean event weights (the floors of
  empty bins), effective MC events, the ``objective.min_background`` penalty;
* :mod:`~diffhep.engine.branches`: which branches a config reads;
* :mod:`~diffhep.engine.loading`: reading samples into the static structure;
* :mod:`~diffhep.engine.discrete`: which fields are integer or boolean in the files (their comparisons with a
  parameter are hard forward, straight-through backward);
* :mod:`~diffhep.engine.combine`: one structure for all samples and variations;
* :mod:`~diffhep.engine.configured`: :class:`ConfiguredAnalysis`, the in-memory analysis; it reads the
  samples' files, or events already in memory (``ConfiguredAnalysis.from_config(config, events={"ttbar":
  array, ...})``: uproot's flat branches or coffea's NanoEvents, :mod:`diffhep.io.memory`);
* :mod:`~diffhep.engine.chunk_prepare`, :mod:`~diffhep.engine.chunk_padding`,
  :mod:`~diffhep.engine.chunked`: the same analysis chunk by chunk (streaming, Dask)
  on :mod:`diffhep.execute`;
* :mod:`~diffhep.engine.protocol`: :class:`Analysis`, what the optimiser and the
  workflow need from any analysis (configured or written by hand).
"""

from diffhep.engine.protocol import Analysis, Histograms

__all__ = ["Analysis", "Histograms"]
