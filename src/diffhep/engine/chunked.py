"""A configured analysis run chunk by chunk, streamed in this process or on Dask workers.

:class:`ChunkedAnalysis` wraps a :class:`~diffhep.engine.configured.ConfiguredAnalysis`
and implements the same :class:`~diffhep.engine.protocol.Analysis`
interface, so :func:`diffhep.workflow.job.run_job` runs it unchanged, but
never holds all events: its :meth:`~ChunkedAnalysis.load` plans the chunks
(:func:`diffhep.execute.plan_chunks`, ``chunk_size`` events each), reads the
weight branches once for the normalisations
(:func:`~diffhep.engine.chunk_prepare.normalisation_pass`) and returns itself
as the ``data`` handle (Dask: the workers prepare their chunks); the first soft
pass looks at every prepared chunk to choose the padded shapes they share
(:mod:`~diffhep.engine.chunk_padding`); then

* :meth:`~ChunkedAnalysis.value_and_grad` sums each chunk's soft histograms
  and their forward-mode Jacobian and applies the chain rule with the
  config's objective (:class:`diffhep.execute.ChunkedStep` for
  ``mode="streaming"``, one chunk in memory at a time;
  :class:`diffhep.execute.DaskStep` for ``mode="dask"``, prepared chunks kept
  in the workers' memory);
* :meth:`~ChunkedAnalysis.hard_histograms` and :meth:`~ChunkedAnalysis.cutflow`
  are chunked too (sums of per-chunk NumPy results), so the hard-cut
  evaluation and the scan of the job never load all events either.

In streaming mode the first pass writes every prepared chunk to disk
(:class:`diffhep.execute.ChunkCache`): into ``settings.cache`` when set (kept
for later jobs), else into a temporary folder (``$TMPDIR``) removed by
:meth:`~ChunkedAnalysis.close`; the first step keeps each chunk padded to its
program's shape there too, and later passes (steps, scan points, hard-cut
histograms) memory-map the padded chunks: they read no ROOT file, pad nothing and
copy nothing (XLA's CPU client computes on the mapped pages).
With ``settings.reuse`` false (``cache: false``) every pass reads and prepares
the chunks again (no disk used). Memory holds one chunk either way.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np
from jax import Array

from diffhep.config import Config
from diffhep.config.parameters import check_values
from diffhep.engine import loading
from diffhep.engine.chunk_padding import ShapePadder, plan_shapes, sizes_of
from diffhep.engine.chunk_prepare import SLOPE, ChunkProgram, PrepareChunk, normalisation_pass
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.engine.expressions import text
from diffhep.errors import InputError
from diffhep.execute import ChunkCache, ChunkedStep, DaskStep, StepResult, compile_cache, plan_chunks
from diffhep.execute.settings import ExecutionSettings
from diffhep.histogram import Histogram
from diffhep.io.read import errors_within

__all__ = ["ChunkedAnalysis", "CONNECT_TIMEOUT_S"]

#: Seconds to wait for a Dask scheduler before a one-line error.
CONNECT_TIMEOUT_S = 10.0


class ChunkedAnalysis:
    """A :class:`ConfiguredAnalysis` evaluated chunk by chunk (see the module docstring).

    Args:
        analysis: the analysis, built from ``config``.
        config: the config (or config dict) it was built from, default ``analysis.config``
            (workers rebuild the analysis from its data).
        settings: ``mode`` ``"streaming"`` or ``"dask"``, chunk size, scheduler, workers, cache.
        client: an open ``distributed.Client`` to use instead of ``settings.scheduler``.
        resolution: padding of each class of chunks to one shape: sizes grow by
            less than ``1 / resolution`` (a power of two) over the class's largest.

    Use as a context manager (or call :meth:`close`) to release a Dask cluster it started.
    """

    def __init__(
        self, analysis: ConfiguredAnalysis, config: Config | Mapping[str, Any] | None = None, *,
        settings: ExecutionSettings, client: Any = None, resolution: int = 8,
    ) -> None:  # fmt: skip
        if settings.mode not in ("streaming", "dask"):
            raise InputError(f"ChunkedAnalysis runs mode 'streaming' or 'dask', got {settings.mode!r}")
        if analysis.memory is not None:
            raise InputError(
                "events given in memory run in memory (analysis.load()); streaming and dask read the samples' files"
            )
        self.inner = analysis
        self.settings = settings
        self.resolution = resolution
        self.program = ChunkProgram.of(analysis, config)
        shared = ("name", "parameters", "edges", "observables", "signal", "samples", "lumi_pb", "poi", "few_mc_events",
                  "observations")  # fmt: skip
        for name in shared:
            setattr(self, name, getattr(analysis, name))
        self._client = client
        self._own: list[Any] = []
        self.executor: ChunkedStep | DaskStep | None = None
        self.chunks: list = []
        self.totals: dict[str, float] = {}
        self.scratch: str | None = None  # the temporary cache folder this object made, removed by close()
        self.padder: ShapePadder | None = None  # set by the first soft pass (_padded)

    @classmethod
    def from_config(
        cls, config: Config | Mapping[str, Any], *, base: Any = None, settings: ExecutionSettings, client: Any = None
    ) -> ChunkedAnalysis:
        """Build the configured analysis of ``config`` (a dict: relative paths start at ``base``) and wrap it."""
        analysis = ConfiguredAnalysis.from_config(config, base=base)
        return cls(analysis, analysis.config, settings=settings, client=client)

    def __repr__(self) -> str:
        return f"ChunkedAnalysis({self.name!r}, {self.settings.describe()})"

    # -- setting up -------------------------------------------------------------
    def plan(self) -> list:
        """Chunks of every dataset (sample or variation), in the order of the in-memory histograms."""
        chunks = []
        for key, sample, variation in self.inner.variants():
            with errors_within(f"sample {sample.name!r}"):  # a missing file, a URL that cannot be read
                files = loading.expand_files(list(variation.files or sample.files))
                size, limit = self.settings.chunk_size, sample.max_events
                chunks.extend(plan_chunks({key: files}, chunk_size=size, tree=sample.tree, max_events=limit))
        return chunks

    def load(self) -> ChunkedAnalysis:
        """Plan the chunks, compute the normalisations, start the executor; returns ``self`` (the data handle)."""
        if self.executor is not None:
            return self
        self.chunks = self.plan()
        self.totals, skips = normalisation_pass(self.program, self.chunks)
        prepare = PrepareChunk(self.program, self.totals, skips)
        folder = self.settings.cache
        if folder is None and self.settings.reuse and self.settings.mode == "streaming":
            folder = self.scratch = tempfile.mkdtemp(prefix="diffhep-chunks-")
        cache = ChunkCache(folder, version=prepare.version()) if folder is not None else None
        if self.settings.mode == "streaming":
            self.executor = ChunkedStep(self.program, self.chunks, prepare=prepare, cache=cache, pad=None)
        else:
            self.executor = DaskStep(self.client(), self.chunks, prepare, self.program, cache=cache, pad=None)
            self.executor.wait_prepared()
        return self

    def _padded(self) -> ChunkedStep | DaskStep:
        """The executor with every chunk padded to its class's shape (one compiled program per class).

        The first call looks at every prepared chunk's sizes (streaming: one pass,
        which fills the cache); the hard-cut path (NumPy, not compiled) does not need it.
        """
        step = self._ready()
        if self.padder is None:
            if isinstance(step, ChunkedStep):
                self.padder = self._padder([sizes_of(data) for _, data in step._prepared()])
                step.pad = self.padder
                step.signatures.clear()
            else:
                self.padder = self._padder(step.gather(sizes_of))
                step.transform(self.padder)
        return step

    def _padder(self, sizes: list) -> ShapePadder:
        """Pads each chunk to the shape of its class (:func:`~diffhep.engine.chunk_padding.plan_shapes`)."""
        inner = self.inner
        entries = {name: None if r.candidate is None else r.candidate.key for name, r in inner.region_defs.items()}
        classes = plan_shapes(sizes, resolution=self.resolution)
        return ShapePadder(tuple(classes), inner.object_defs, inner.expressions, entries, resolution=self.resolution)

    def client(self) -> Any:
        """The Dask client: the one given, one connected to ``settings.scheduler``, or a new LocalCluster's."""
        if self._client is not None:
            return self._client
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise InputError("execution mode 'dask' needs dask.distributed: pip install 'dask[distributed]'") from None
        address = self.settings.scheduler
        if address:
            try:
                self._client = Client(address, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError, ValueError, TypeError) as err:
                reason = " ".join(str(err).split())[:200] or type(err).__name__
                raise InputError(
                    f"scheduler {address!r}: cannot connect to a Dask scheduler within {CONNECT_TIMEOUT_S:g} s "
                    f"({reason}); start one with `dask scheduler`, or leave the scheduler out for a local cluster"
                ) from None
        else:
            if not self.settings.processes:  # worker threads of this process compile: no persistent cache here
                compile_cache.suspend()
            cluster = LocalCluster(
                n_workers=self.settings.workers, threads_per_worker=1, processes=self.settings.processes,
                dashboard_address=":0", silence_logs=logging.CRITICAL,
            )  # fmt: skip
            self._own.append(cluster)
            self._client = Client(cluster)
            if self.settings.processes:  # its worker processes, one share of the cores each (XLA's threads)
                from diffhep.execute.pinning import CoreShare  # deferred: it imports distributed (optional)

                self._client.register_plugin(CoreShare(self.settings.workers))
        self._own.insert(0, self._client)
        return self._client

    def close(self) -> None:
        """Release the prepared chunks and any client or cluster this object started."""
        if isinstance(self.executor, DaskStep):
            self.executor.close()
        self.executor, self.padder = None, None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None
        if self._own:  # the client is ours (then closed first), and maybe a LocalCluster
            for thing in self._own:
                thing.close()
            self._own, self._client = [], None

    def __enter__(self) -> ChunkedAnalysis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ready(self) -> ChunkedStep | DaskStep:
        return self.load().executor  # type: ignore[return-value]

    # -- the soft step --------------------------------------------------------------
    def value_and_grad(self, cuts: Mapping[str, Any], slope_scale: float = 1.0) -> StepResult:
        """Objective and its gradient w.r.t. the cuts (physical units), and the summed histograms."""
        theta = {p.name: float(cuts[p.name]) for p in self.parameters}
        return self._padded().value_and_grad(self.program.objective_fn, theta, fixed={SLOPE: float(slope_scale)})

    def soft_histograms(self, cuts: Mapping[str, Any], data: Any = None, slope_scale: float = 1.0) -> dict:
        """Soft histograms ``region -> key -> Histogram`` summed over chunks (not traceable)."""
        return self.program.assemble(self.value_and_grad(cuts, slope_scale).histograms)

    def objective(self, cuts: Mapping[str, Any], data: Any = None, slope_scale: float = 1.0) -> Array:
        """The objective at ``cuts`` (a number; derivatives come from :meth:`value_and_grad`)."""
        return self.value_and_grad(cuts, slope_scale).value

    # -- hard cuts and cutflow ------------------------------------------------------
    def hard_histograms(self, cuts: Mapping[str, float]) -> dict[str, dict[str, Histogram]]:
        """Hard-cut histograms ``region -> key -> Histogram`` (NumPy), summed over chunks."""
        values = check_values(self.parameters, cuts)
        sums = self._ready().reduce(self.program.hard, values)
        return {r: {k: Histogram(np.asarray(h.counts), np.asarray(h.sumw2)) for k, h in hs.items()}
                for r, hs in self.program.assemble(sums).items()}  # fmt: skip

    def cutflow(self, cuts: Mapping[str, float], data: Any = None) -> dict[str, list[dict[str, float]]]:
        """Sample -> ``[{"step", "soft", "hard"}, ...]`` as :meth:`ConfiguredAnalysis.cutflow`, summed over chunks."""
        values = check_values(self.parameters, cuts)
        rows = self._padded().reduce(self.program.flow, values)
        regions = self.inner.region_defs
        steps = ["all events"] + [f"{n}: {text(t)}" for n, r in regions.items() for t in r.terms()]
        return {
            sample: [{"step": s, "soft": float(rows[sample][0, i]), "hard": float(rows[sample][1, i])}
                     for i, s in enumerate(steps)]
            for sample in self.samples
        }  # fmt: skip

    # -- likelihood (the wrapped analysis's) -------------------------------------------
    def spec(self, histograms: Mapping[str, Mapping[str, Histogram]]) -> dict[str, Any]:
        """The pyhf-like spec of ``histograms``."""
        return self.inner.spec(histograms)

    def model(self, histograms: Mapping[str, Mapping[str, Histogram]]) -> Any:
        """The HistFactory model of ``histograms``."""
        return self.inner.model(histograms)

    def figure_of_merit(self, histograms: Mapping[str, Mapping[str, Histogram]]) -> Array:
        """The config's objective of ``histograms``."""
        return self.inner.figure_of_merit(histograms)

    def workspace(
        self, histograms: Mapping[str, Mapping[str, Histogram]], *, observations: Mapping[str, Any] | None = None
    ) -> dict:
        """A pyhf workspace of ``histograms`` (``observations`` where given, else Asimov)."""
        return self.inner.workspace(histograms, observations=observations)

    def observed(
        self, cuts: Mapping[str, float], hard: Mapping[str, Mapping[str, Histogram]]
    ) -> dict[str, np.ndarray] | None:
        """The observed counts (:meth:`ConfiguredAnalysis.observed`; data samples are read whole, in memory)."""
        return self.inner.observed(cuts, hard)
