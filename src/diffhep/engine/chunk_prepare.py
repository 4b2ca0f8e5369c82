"""A configured analysis chunk by chunk: each chunk's static structure, and its histograms.

Every ``(sample, variation)`` of a :class:`~diffhep.engine.configured.ConfiguredAnalysis`
(its ``variants()``: nominal samples, then ``histosys`` variations) is a
*dataset* of chunks named by its key (``"ttbar"``, ``"ttbar/jet_scale/up"``);
chunks are file ranges (:func:`diffhep.execute.plan_chunks`).

* :func:`normalisation_pass` reads only the weight branches, once, chunk by
  chunk, and returns each dataset's sum of weights over *all* its events (the
  normalisation ``xsec * lumi / sum`` of the in-memory :meth:`load`), and for
  seeded ``smear`` variations the number of values before each chunk, so that
  a chunk draws the same random numbers as the whole sample does;
* :class:`PrepareChunk` (picklable, for Dask workers) builds a chunk's
  :class:`~diffhep.engine.combine.SampleData` with the same
  :func:`~diffhep.engine.loading.load_sample` logic restricted to the
  chunk's entries, normalised with the dataset's sum, with its static
  kernels (padding to shared shapes comes after:
  :mod:`diffhep.engine.chunk_padding`);
* :class:`ChunkProgram` (hashable, picklable: the config as JSON and its
  folder) gives the per-chunk functions: soft histograms
  ``(theta, data) -> {region: Histogram}``, hard histograms, cutflow rows, and
  the objective of the summed histograms, the one the in-memory path uses.

A chunk's data carry one sample key, :data:`CHUNK_KEY`, whatever their
dataset, so that all chunks of one padded shape share one compiled program.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.config import Config
from diffhep.engine import loading
from diffhep.engine.backend import HARD, SOFT, Backend
from diffhep.engine.combine import SampleData
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.engine.expressions import names
from diffhep.engine.systematics import Variation
from diffhep.errors import InputError
from diffhep.execute.chunks import Chunk, read_chunk
from diffhep.histogram import Histogram
from diffhep.io.read import errors_within, open_file

__all__ = ["CHUNK_KEY", "SLOPE", "ChunkProgram", "PrepareChunk", "normalisation_pass", "config_text"]

#: The sample key of every chunk's data.
CHUNK_KEY = "chunk"
#: Name of the slope multiplier among the (non-differentiated) values passed with the cuts.
SLOPE = "slope scale"

#: (config JSON, base folder) -> analysis, one per process (workers rebuild it once).
_ANALYSES: dict[tuple[str, str], ConfiguredAnalysis] = {}


def config_text(config: Mapping[str, Any]) -> str:
    """The canonical JSON of a config dict (what :class:`ChunkProgram` carries)."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class ChunkProgram:
    """The per-chunk functions of a configured analysis; hashable, so compiled programs are reused.

    Attributes:
        config: the config dict as canonical JSON (:func:`config_text`).
        base: the folder relative paths start from.
    """

    config: str
    base: str

    @classmethod
    def of(cls, analysis: ConfiguredAnalysis, config: Config | Mapping[str, Any] | None = None) -> ChunkProgram:
        """The program of ``analysis`` (built from ``config``, default its own), which it reuses in this process."""
        if config is None or isinstance(config, Config):
            config = (config or analysis.config).data
        program = cls(config_text(config), str(analysis.base))
        _ANALYSES.setdefault((program.config, program.base), analysis)
        return program

    def analysis(self) -> ConfiguredAnalysis:
        """The analysis (built once per process from the config, validated again there by the loader)."""
        key = (self.config, self.base)
        if key not in _ANALYSES:
            _ANALYSES[key] = ConfiguredAnalysis.from_config(json.loads(self.config), base=Path(self.base))
        return _ANALYSES[key]

    @property
    def keys(self) -> tuple[str, ...]:
        """Dataset keys in the order of the in-memory histograms: samples, then variations."""
        return tuple(key for key, _, _ in self.analysis().variants())

    def variant(self, key: str) -> tuple[loading.SampleDef, Variation]:
        """The sample and variation of dataset ``key``."""
        for k, sample, variation in self.analysis().variants():
            if k == key:
                return sample, variation
        raise InputError(f"unknown dataset {key!r}; known: {', '.join(self.keys)}")

    # -- per chunk ------------------------------------------------------------
    def __call__(self, theta: Mapping[str, Array], data: SampleData) -> dict[str, Histogram]:
        """:meth:`soft`: the program itself is the ``histograms_fn`` of the executors, because it is
        equal (and hashes equal) after unpickling on a worker, so compiled programs are found again
        (a bound method is equal only to methods of the same object)."""
        return self.soft(theta, data)

    def soft(self, theta: Mapping[str, Array], data: SampleData) -> dict[str, Histogram]:
        """Soft histograms of one chunk, ``region -> Histogram``; ``theta`` holds the cuts and :data:`SLOPE`."""
        analysis = self.analysis()
        cuts = {p.name: theta[p.name] for p in analysis.parameters}
        hists = analysis.soft_histograms(cuts, data, theta.get(SLOPE, 1.0))
        return {region: h[CHUNK_KEY] for region, h in hists.items()}

    def hard(self, cuts: Mapping[str, float], data: SampleData) -> dict[str, Histogram]:
        """Hard-cut histograms of one chunk (NumPy), ``region -> Histogram``."""
        hists = self.analysis().histograms_at(dict(cuts), data, 1.0, HARD)
        return {r: Histogram(np.asarray(h[CHUNK_KEY].counts), np.asarray(h[CHUNK_KEY].sumw2)) for r, h in hists.items()}

    def flow(self, cuts: Mapping[str, float], data: SampleData) -> np.ndarray:
        """Cutflow yields of one chunk, ``Float[ndarray, "2 steps"]``: soft (slope scale 1), hard."""
        soft = _soft_flow(self)(dict(cuts), data)
        return np.stack([np.asarray(soft), np.asarray(self._flow(dict(cuts), data, HARD))])

    def _flow(self, cuts: Mapping[str, Any], data: SampleData, mode: Backend) -> Any:
        """As ``ConfiguredAnalysis._flow`` for data with one sample: ``all events``, then each ``and`` term."""
        analysis = self.analysis()
        xp = mode.xp
        step = analysis.selection_step(data, cuts, {p.name: p.slope for p in analysis.parameters}, mode)
        weight = xp.asarray(data.weight)
        rows = [weight.sum()]
        for name, region in analysis.region_defs.items():
            terms = region.terms()
            for k in range(len(terms)):
                passed = step.evaluator(f"region {name!r} select").conjunction(terms[: k + 1])
                rows.append(xp.sum(xp.broadcast_to(passed, weight.shape) * weight))
        return xp.stack(rows)

    # -- after the sum ----------------------------------------------------------
    def assemble(self, sums: Mapping[str, Mapping[str, Histogram]]) -> dict[str, dict[str, Histogram]]:
        """``{dataset: {region: H}}`` summed over chunks -> ``{region: {key: H}}`` as in memory."""
        keys = self.keys
        return {region: {k: sums[k][region] for k in keys} for region in self.analysis().edges}

    def objective(self, sums: Mapping[str, Mapping[str, Histogram]]) -> Array:
        """The config's figure of merit of the summed histograms (the in-memory objective)."""
        return self.analysis().figure_of_merit(self.assemble(sums))

    @property
    def objective_fn(self) -> ProgramObjective:
        """:meth:`objective` as a value equal (and hashing equal) for equal programs, the executors'
        ``objective_fn``: their compiled contraction is kept per function object, and a bound method
        is equal only to methods of the same object, so each new analysis of the same config (a
        second ``ChunkedAnalysis``, the command line's ``run`` then ``optimize``) compiled it again."""
        return ProgramObjective(self)


@dataclass(frozen=True)
class ProgramObjective:
    """``program.objective`` (:attr:`ChunkProgram.objective_fn`)."""

    program: ChunkProgram

    def __call__(self, sums: Mapping[str, Mapping[str, Histogram]]) -> Array:
        return self.program.objective(sums)


@functools.lru_cache(maxsize=16)
def _soft_flow(program: ChunkProgram) -> Any:
    return jax.jit(functools.partial(program._flow, mode=SOFT))


# -- reading ------------------------------------------------------------------
def _raw(events: ak.Array, branch: str) -> ak.Array:
    """A branch of events read by :func:`read_chunk` (NanoAOD collections are zipped)."""
    if branch in ak.fields(events):
        return events[branch]
    prefix, _, rest = branch.partition("_")
    return events[prefix][rest]


@dataclass(frozen=True)
class ShiftedVariation(Variation):
    """A :class:`Variation` whose smearing starts ``skip[branch]`` values into the sample's random stream.

    The in-memory path draws one normal number per value of the whole
    sample; a chunk starting after ``skip`` values draws (and drops) those first.
    """

    skip: Mapping[str, int] = field(default_factory=dict)

    def column(self, branch: str, get: Any) -> ak.Array:
        if branch not in self.smear:
            return super().column(branch, get)
        values = get(self.read_branches(branch))
        if branch in self.scale:
            values = values * self.scale[branch]
        jagged = values.ndim > 1
        flat = ak.to_numpy(ak.flatten(values, axis=1) if jagged else values)
        rng = np.random.default_rng([self.seed, zlib.crc32(branch.encode())])
        skip = int(self.skip.get(branch, 0))
        while skip > 0:  # in blocks: the stream does not depend on how draws are split
            rng.standard_normal(min(skip, 1 << 22))
            skip -= min(skip, 1 << 22)
        smeared = flat * (1.0 + self.smear[branch] * rng.standard_normal(len(flat))).astype(flat.dtype)
        return ak.unflatten(smeared, ak.num(values, axis=1)) if jagged else ak.Array(smeared)


def _shifted(variation: Variation, skip: Mapping[str, int] | None) -> Variation:
    if not variation.smear:
        return variation
    fields = {f.name: getattr(variation, f.name) for f in dataclasses.fields(Variation)}
    return ShiftedVariation(**fields, skip=dict(skip or {}))


def _weight_names(sample: loading.SampleDef) -> list[str]:
    return [] if sample.weight is None else names(sample.weight)


def _nominal_weight(
    events: ak.Array, n_events: int, sample: loading.SampleDef, variation: Variation, functions: Mapping[str, Any]
) -> np.ndarray:
    """The sample's event weight expression (before normalisation) for ``n_events`` events, as
    :func:`load_sample` computes it (``events`` may have no branch: a constant weight such as the default 1)."""
    cols = {n: ak.to_numpy(variation.column(n, lambda b: _raw(events, b))) for n in _weight_names(sample)}
    where = f"sample {sample.name!r} weight {sample.weight_text!r}"
    return loading.event_weight(sample.weight, cols, n_events, where, functions)


def _flat_count(chunk: Chunk, branch: str) -> int:
    """Number of values of ``branch`` in the chunk (its counter branch when it has one)."""
    if chunk.n_events == 0:
        return 0
    with open_file(chunk.file) as f:  # a path or a URL
        obj = f[chunk.tree]
        counter = getattr(obj[branch], "count_branch", None) if hasattr(obj, "keys") else None
        if counter is not None:
            return int(np.sum(counter.array(entry_start=chunk.start, entry_stop=chunk.stop, library="np")))
    values = _raw(read_chunk(chunk, [branch]), branch)
    return int(ak.sum(ak.num(values, axis=1))) if values.ndim > 1 else len(values)


def normalisation_pass(
    program: ChunkProgram, chunks: Sequence[Chunk]
) -> tuple[dict[str, float], dict[Chunk, dict[str, int]]]:
    """Each dataset's sum of sample weights over all its events, and each smeared chunk's skips.

    Reads only the weight branches (and the counters of smeared branches),
    chunk by chunk; weight sums of chunks shared by several datasets (the
    nominal sample and its ``scale`` variations) are computed once.

    Raises:
        InputError: a dataset has no events or a zero sum of weights (as the in-memory load does).
    """
    analysis = program.analysis()
    totals: dict[str, float] = {}
    skips: dict[Chunk, dict[str, int]] = {}
    seen: dict[tuple, float] = {}
    for key in program.keys:
        sample, variation = program.variant(key)
        mine = [c for c in chunks if c.dataset == key]
        running = {b: 0 for b in variation.smear}
        total, n_events = 0.0, 0
        for chunk in mine:
            n_events += chunk.n_events
            if variation.smear:
                skips[chunk] = dict(running)
                for b in running:
                    running[b] += _flat_count(chunk, variation.read_branches(b))
            if chunk.n_events == 0:
                continue
            if sample.weight is None or sample.normalisation == "events":  # xsec * lumi / N
                total += float(chunk.n_events)
                continue
            shifted = _shifted(variation, skips.get(chunk))
            smeared = any(n in variation.smear for n in _weight_names(sample))
            memo = (
                chunk.file,
                chunk.tree,
                chunk.start,
                chunk.stop,
                sample.weight_text,
                tuple((n, variation.read_branches(n), variation.scale.get(n)) for n in _weight_names(sample)),
            )
            if smeared or memo not in seen:
                branches = sorted({variation.read_branches(n) for n in _weight_names(sample)})
                with errors_within(f"sample {sample.name!r}"):
                    events = read_chunk(chunk, branches)
                seen[memo] = float(np.sum(_nominal_weight(events, chunk.n_events, sample, shifted, analysis.functions)))
            total += seen[memo]
        if n_events == 0 or total == 0.0:
            files = sorted({c.file for c in mine})
            raise InputError(
                f"sample {sample.name!r} has {'no events' if n_events == 0 else 'a zero sum of weights'} "
                f"in {', '.join(files)}; cannot normalise"
            )
        totals[key] = total
    return totals, skips


@dataclass(frozen=True)
class PrepareChunk:
    """``chunk -> SampleData``: one chunk of one dataset, normalised over the whole dataset (picklable).

    Attributes:
        program: the analysis.
        totals: dataset -> sum of sample weights over all its events (:func:`normalisation_pass`).
        skips: chunk -> smeared branch -> values before the chunk.
    """

    program: ChunkProgram
    totals: Mapping[str, float]
    skips: Mapping[Chunk, Mapping[str, int]] = field(default_factory=dict)

    def version(self) -> str:
        """A tag of everything the prepared data depend on (for :class:`~diffhep.execute.ChunkCache`)."""
        parts = [self.program.config, self.program.base, sorted(self.totals.items()),
                 sorted((list(c), sorted(s.items())) for c, s in self.skips.items()),
                 str(jnp.result_type(float)), self.program.analysis().discrete]  # fmt: skip
        corrections = self.program.analysis().sections.corrections
        if corrections:  # the weights depend on the correction files' contents, not only on their names
            parts.append(sorted((k, hashlib.sha256(Path(f).read_bytes()).hexdigest()) for k, f in corrections.items()))
        return "configured-" + hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]

    def __call__(self, chunk: Chunk) -> SampleData:
        analysis = self.program.analysis()
        sample, variation = self.program.variant(chunk.dataset)
        variation = _shifted(variation, self.skips.get(chunk))
        extra = {variation.read_branches(n) for n in _weight_names(sample)}
        read: dict[str, ak.Array] = {}

        def reader(files: tuple[str, ...], tree: str, wanted: list[str]) -> ak.Array:
            with errors_within(f"sample {sample.name!r}"):  # a file that went away, a network error
                read["events"] = read_chunk(chunk, sorted(set(wanted) | extra))
            return read["events"]

        options = dict(defs=analysis.object_defs, specs=analysis.expressions, parameters=analysis.parameter_map,
                       functions=analysis.functions)  # fmt: skip
        part = loading.load_sample(
            dataclasses.replace(sample, weight=None), variation, plan_=analysis.branch_plan,
            region_defs=analysis.region_defs, lumi_pb=analysis.lumi_pb, read=reader, **options,
        )  # fmt: skip
        n = int(np.shape(part.weight)[0])
        # load_sample normalised by this chunk's n events and unit weights: use the dataset's sum instead
        nominal = _nominal_weight(read["events"], chunk.n_events, sample, variation, analysis.functions)
        weight = np.asarray(part.weight, dtype=np.float64) * nominal * (n / self.totals[chunk.dataset])
        data = dataclasses.replace(
            part,
            weight=jnp.asarray(weight, dtype=jnp.result_type(float)),
            keys=(CHUNK_KEY,),
            discrete=analysis.discrete,
        )
        return jax.tree.map(np.asarray, loading.with_kernels(data, region_defs=analysis.region_defs, **options))
