"""An analysis configured from a YAML config: the :class:`~diffhep.engine.protocol.Analysis` of ``configs/``.

:meth:`ConfiguredAnalysis.from_config` takes a loaded
:class:`~diffhep.config.Config` (:func:`diffhep.config.load_config`) and reads
its typed sections (:attr:`Config.sections <diffhep.config.Config.sections>`);
a plain dict is validated into one first. Structure is static, values flow:

* :meth:`~ConfiguredAnalysis.load` reads every sample and every ``histosys``
  variation once and computes everything the parameters cannot change
  (objects after ``require``, orderings, unions, candidates, kernels of static
  observables), all concatenated into one
  :class:`~diffhep.engine.combine.SampleData` (a pytree: pass it to
  ``jax.jit``) whose ``keys`` are the sample names and
  ``"<sample>/<systematic>/<up|down>"``;
* :meth:`~ConfiguredAnalysis.soft_histograms` and
  :meth:`~ConfiguredAnalysis.objective` compute only weights and histograms
  from flat JAX arrays (``jit``- and ``grad``-able in the cut values);
* :meth:`~ConfiguredAnalysis.hard_histograms` and the ``hard`` column of
  :meth:`~ConfiguredAnalysis.cutflow` evaluate the same config with steps
  (weights exactly 0 or 1) and bandwidth-0 histograms.

Histograms are ``region -> key -> Histogram`` with the same keys as the data:
the nominal samples and their variations (used by :meth:`spec` for ``histosys``).

Events already in memory replace the files: ``ConfiguredAnalysis.from_config(config,
events={"ttbar": array, ...})`` reads each sample from its Awkward Array (flat
NanoAOD branches ``Jet_pt``, ``MET_pt`` or coffea-style records ``events.Jet.pt``,
``events.MET.pt``: :mod:`diffhep.io.memory`) and opens no file.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.config import Config, load_config_dict
from diffhep.config.parameters import check_values
from diffhep.engine import (
    branches,
    combine,
    counting,
    definitions,
    loading,
    mc_stats,
    network,
    regions,
    split,
    systematics,
)
from diffhep.engine.backend import HARD, SOFT, Backend
from diffhep.engine.combine import SampleData
from diffhep.engine.discrete import comparisons as discrete_comparisons
from diffhep.engine.discrete import find as find_discrete
from diffhep.engine.expressions import text
from diffhep.engine.objects import ObjectWeights, parse_objects
from diffhep.errors import InputError, closest
from diffhep.histogram import Histogram
from diffhep.infer import asimov_significance, expected_cls, expected_discovery_significance, poi_uncertainty
from diffhep.io.memory import MemoryEvents
from diffhep.io.read import errors_within, open_file, read_events
from diffhep.likelihood import Model, build_model, mc_floor

__all__ = ["ConfiguredAnalysis", "OBJECTIVES"]

#: Objective names -> what is maximised (the schema's ``objective.name``; checked when the config is loaded).
OBJECTIVES = ("discovery_significance", "cls", "poi_uncertainty", "asimov_significance")
#: An RNTuple's estimated uncompressed size per byte on disk (:meth:`ConfiguredAnalysis.input_bytes`).
RNTUPLE_EXPANSION = 10


def _as_config(config: Config | Mapping[str, Any], base: str | Path | None) -> Config:
    """``config`` itself, or a dict validated into a :class:`Config` (relative paths start at ``base``)."""
    if isinstance(config, Config):
        if base is not None and Path(base).resolve() != config.base_dir:
            raise InputError(
                f"base {str(base)!r} differs from the config's folder {str(config.base_dir)!r}; "
                "leave base out for a loaded config"
            )
        return config
    return load_config_dict(config, base_dir=base)


class ConfiguredAnalysis:
    """An analysis built from a loaded config; implements :class:`~diffhep.engine.protocol.Analysis`.

    It reads the config only through its typed sections (:attr:`Config.sections
    <diffhep.config.Config.sections>`), and relies on what loading checked
    (signal samples, roles, bounds, the objective name) without checking again.

    Attributes:
        config: the loaded config (``config.error(field, message)`` locates later errors).
        sections: its typed sections.
        base: the folder relative paths of the config start from.
        name: analysis name.
        parameters: the optimisable cuts (config order).
        edges: region -> bin edges of its observable.
        observables: region -> axis label.
        signal: signal sample names.
        samples: Monte Carlo sample name -> role (``"signal"`` or ``"background"``).
        data_samples: name -> definition of the ``role: data`` samples (read only by :meth:`observed`).
        observations: ``"data"``, ``"pseudodata"`` or ``"asimov"``: what :meth:`observed` returns.
        lumi_pb: integrated luminosity, pb^-1.
        poi: parameter of interest (normfactor on the signal samples).
        min_background: ``objective.min_background`` (``None``: no per-bin minimum).
        few_mc_events: the report lists bins with fewer effective background MC events.
        parameter_map: parameter name -> its definition.
        object_defs: object name -> parsed ``objects:`` entry.
        region_defs: region name -> parsed ``regions:`` entry.
        expressions: checked expressions (event, candidate and weight definitions).
        branch_plan: which branches each object and event quantity reads.
        memory: variant key (:meth:`variants`) -> its events in memory, or ``None``
            (the samples' files are read).
        networks: region -> the network of its network observable (:mod:`~diffhep.engine.network`) at
            its current weights: initialised with ``optimizer.seed``; the optimisation job sets the
            trained ones; every histogram method takes other ones as ``networks=``.
        network_seed: the seed of the networks' starting weights (``optimizer.seed``).
        standardisation: region -> ``(mean, std)`` of its network's inputs (from the training half
            in :meth:`load`, unless set before, e.g. from saved results).

    Events in memory (``events``): sample name -> an Awkward Array of its events
    (:class:`~diffhep.io.memory.MemoryEvents` lists the forms accepted), and
    ``"<sample>/<systematic>/<up|down>"`` -> the events of each variation that
    reads its own ``files``. They replace every file: the samples' ``files`` are
    not opened, a sample is normalised over the array's events, and discreteness
    comes from the arrays' types. Loading, histograms, the spec and the workspace
    are then the same as from files holding these events; the chunked execution
    reads files and refuses them.

    The chunked execution (:mod:`diffhep.engine.chunk_prepare`) builds each
    chunk's data from these, the same way :meth:`load` builds all events.
    """

    def __init__(
        self,
        config: Config | Mapping[str, Any],
        *,
        base: str | Path | None = None,
        events: Mapping[str, Any] | None = None,
    ):
        config = _as_config(config, base)
        sections = config.sections
        self.config = config
        self.sections = sections
        self.base = config.base_dir
        self.name = sections.name
        self.lumi_pb = sections.lumi_pb
        self.functions = definitions.plugin_functions(sections)
        self.parameters = definitions.parse_parameters(sections)
        self.parameter_map = {p.name: p for p in self.parameters}
        every = definitions.parse_samples(sections)
        self._samples = {k: s for k, s in every.items() if s.role != "data"}  # Monte Carlo
        self.data_samples = {k: s for k, s in every.items() if s.role == "data"}
        self.observations = sections.observations
        self.samples = {k: s.role for k, s in self._samples.items()}
        self.signal = list(sections.signal)
        self.object_defs = parse_objects(sections.objects, self.parameter_map)
        self.region_defs = regions.parse_regions(sections.regions, self.object_defs, self.parameter_map)
        self.edges = {k: r.edges for k, r in self.region_defs.items()}
        self.observables = {k: r.label for k, r in self.region_defs.items()}
        limit = (config.data.get("inputs") or {}).get("max_files_per_sample")
        self._systematics = systematics.parse_systematics(
            sections.systematics, list(self._samples), self.base, max_files=limit
        )
        self.poi = sections.measurement.poi
        self._fixed = sections.measurement.fixed
        self._settings = {k: dict(v) for k, v in sections.measurement.parameters.items()}
        self.objective_name = sections.objective.name
        self.objective_mu = sections.objective.mu
        self.min_background = sections.objective.min_background
        self.few_mc_events = sections.objective.few_mc_events
        self.expressions = definitions.check_expressions(
            self.object_defs,
            self.region_defs,
            self._samples,
            self._systematics,
            self.parameter_map,
            self.functions,
            sections,
        )
        event = {
            f"region {k!r} {part} {r.sources[part]!r}": node
            for k, r in self.region_defs.items()
            for part, node in (("select", r.select), ("observable", r.observable))
            if node is not None
        }
        seed = self.network_seed = int((config.data.get("optimizer") or {}).get("seed", 1))
        self.networks = {name: network.build_network(n, seed=seed) for name, n in sections.networks.items()}
        self.standardisation: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if sections.training.event_number is not None:  # read like any event branch
            event["training.event_number"] = ast.Name(sections.training.event_number, ast.Load())
        self._limits = counting.count_limits(
            [r.select for r in self.region_defs.values() if r.select is not None], self.object_defs
        )
        self.branch_plan = branches.plan(
            self.object_defs, self.region_defs, self.expressions, event, self.parameter_map
        )
        self._data: SampleData | None = None
        self._observed_data: SampleData | None = None
        self._soft_flow: Callable[..., Any] | None = None
        self.memory = None if events is None else self._in_memory(events)

    @classmethod
    def from_config(
        cls,
        config: Config | Mapping[str, Any],
        *,
        base: str | Path | None = None,
        events: Mapping[str, Any] | None = None,
    ) -> ConfiguredAnalysis:
        """Build the analysis from a loaded :class:`~diffhep.config.Config`.

        A plain dict (tests, programmatic use) is first validated by
        :func:`~diffhep.config.load_config_dict` with relative paths starting at
        ``base`` (default: the working directory), so both take one path.
        ``events``: the samples' events in memory, read instead of their files
        (see the class docstring).
        """
        return cls(config, base=base, events=events)

    def _in_memory(self, events: Mapping[str, Any]) -> dict[str, MemoryEvents]:
        """Variant key -> its events; a one-line :class:`InputError` for a wrong type, an unknown or a missing key."""
        own = [key for key, _, variation in self.variants() if variation.files]  # variations reading other files
        expected = [*self._samples, *own]
        if not isinstance(events, Mapping):
            example = f"events={{{expected[0]!r}: array, ...}}"
            got = "an Awkward Array" if isinstance(events, ak.Array) else f"a {type(events).__name__}"
            raise InputError(f"events: expected a mapping of sample name -> its events ({example}); got {got}")
        for key in events:
            sample = next((s.name for k, s, _ in self.variants() if k == key), None)
            if sample is not None and key not in expected:
                raise InputError(
                    f"events[{key!r}]: variation {key!r} reads no files of its own, it varies the events of "
                    f"sample {sample!r}: give only events[{sample!r}]"
                )
            if key not in expected:
                raise InputError(
                    f"events[{key!r}]: no sample or variation reading its own files has that name"
                    f"{closest(str(key), expected)}"
                )
        given = {key: MemoryEvents(array, f"events[{key!r}]") for key, array in events.items()}
        for key in expected:
            if key in given:
                continue
            if key in own:
                name, direction = key.rsplit("/", 2)[1:]
                raise InputError(
                    f"variation {key!r} reads other files (systematics.{name}.{direction}.files): "
                    f"give its events as events[{key!r}]"
                )
            raise InputError(f"sample {key!r} has no events in memory: give them as events[{key!r}]")
        return {key: given[key if variation.files else sample.name] for key, sample, variation in self.variants()}

    # -- loading ------------------------------------------------------------
    def variants(self) -> list[tuple[str, loading.SampleDef, systematics.Variation]]:
        """``(key, sample, variation)`` of everything :meth:`load` reads: nominal samples, then variations."""
        out = [(k, s, loading.NOMINAL) for k, s in self._samples.items()]
        for syst in self._systematics:
            if syst.type != "histosys":
                continue
            for s in syst.samples:
                for direction, variation in (("up", syst.up), ("down", syst.down)):
                    if variation is not None:
                        out.append((systematics.variation_key(s, syst.name, direction), self._samples[s], variation))
        return out

    def _memory(self, key: str) -> MemoryEvents | None:
        """The events in memory of variant ``key``, or ``None`` (read from files)."""
        return None if self.memory is None else self.memory[key]

    def _wanted(self) -> dict[tuple[tuple[str, ...], str], set[str]]:
        """``(files, tree) -> branches`` that :meth:`load` reads (``files``: ``(where,)`` of events in memory)."""
        wanted: dict[tuple[tuple[str, ...], str], set[str]] = {}
        for key, sample, variation in self.variants():
            memory = self._memory(key)
            with errors_within(f"sample {sample.name!r}"):  # the first file of each: a URL that cannot be read
                files, _, _ = loading.sample_input(sample, variation, memory)
                needed, _ = loading.required_branches(self.branch_plan, self.object_defs, sample, variation, memory)
            wanted.setdefault((files, sample.tree), set()).update(needed)
        return wanted

    def input_bytes(self) -> int:
        """Uncompressed bytes of the branches :meth:`load` reads (from the files' metadata; nothing is read).

        A TTree records each branch's uncompressed size. An RNTuple's fields do not
        (uproot gives no per-field size), so a file holding one counts as
        :data:`RNTUPLE_EXPANSION` times its size on disk: an upper estimate (ROOT's
        compression rarely exceeds it) that errs towards streaming. Events given in
        memory read nothing: 0.
        """
        if self.memory is not None:
            return 0
        total = 0
        for (files, tree), names in self._wanted().items():
            for path in files:
                with open_file(path) as f:  # a path or a URL
                    t = f[tree]
                    present = [b for b in names if b in t]
                    if present and not hasattr(t[present[0]], "uncompressed_bytes"):  # an RNTuple
                        total += RNTUPLE_EXPANSION * f.file.source.num_bytes
                    else:
                        total += sum(int(t[b].uncompressed_bytes) for b in present)
        return total

    @functools.cached_property
    def discrete(self) -> tuple[str, ...]:
        """Names read from integer or boolean branches in every file (``"muons.charge"``, ``"nTag"``; sorted).

        A comparison of only these with a parameter is the hard step with the sigmoid's
        gradient (straight-through), so a value exactly on the cut gets the hard weight at
        every slope (:mod:`diffhep.engine.discrete`). Read from the branches' types, once;
        :meth:`load` and every streamed chunk carry it in :attr:`SampleData.discrete`.
        """
        return find_discrete(self.variants(), plan_=self.branch_plan, defs=self.object_defs, memory=self.memory)

    def discrete_comparisons(self) -> list[str]:
        """The comparisons with a parameter evaluated straight-through (:func:`diffhep.engine.discrete.comparisons`)."""
        return discrete_comparisons(self.discrete, self.object_defs, self.region_defs, self.parameter_map)

    def load(self) -> SampleData:
        """Read every sample and variation once; the static structure, a pytree (also kept for the hard path)."""
        wanted = self._wanted()
        stop = (self.config.data.get("inputs") or {}).get("max_events_per_sample")  # None: every event
        cache: dict[tuple[tuple[str, ...], str], ak.Array] = {}
        memory = {(m.where,): m for m in (self.memory or {}).values()}

        def read(files: tuple[str, ...], tree: str, _: list[str]) -> ak.Array:
            if (files, tree) not in cache:
                names = sorted(wanted[(files, tree)])
                in_memory = memory.get(files)
                cache[(files, tree)] = (
                    in_memory.read(names)
                    if in_memory is not None
                    else read_events(list(files), tree=tree, branches=names, entry_stop=stop)
                )
            return cache[(files, tree)]

        variants = self.variants()
        options = dict(defs=self.object_defs, specs=self.expressions, parameters=self.parameter_map,
                       functions=self.functions)  # fmt: skip
        # a weight-only variation shares its sample's events: only its weights are kept
        shared = {k: v for k, _, v in variants if v is not loading.NOMINAL and v.weight_only}
        keys: list[str] = []
        parts: list[SampleData] = []
        varied: dict[str, tuple[int, np.ndarray]] = {}
        for key, sample, variation in variants:
            if key in shared:
                continue
            own = [k for k, s, _ in variants if k in shared and s is sample] if variation is loading.NOMINAL else []
            part, weights = loading.load_sample_weights(
                sample,
                variation,
                [shared[k] for k in own],
                plan_=self.branch_plan,
                region_defs=self.region_defs,
                lumi_pb=self.lumi_pb,
                read=read,
                memory=self._memory(key),
                **options,
            )
            varied.update({k: (len(parts), w) for k, w in zip(own, weights, strict=True)})
            keys.append(key)
            parts.append(part)
        order = [key for key, _, _ in variants]
        data = combine.concatenate(parts, keys, self.object_defs, self.expressions, varied=varied, order=order)
        data = dataclasses.replace(data, discrete=self.discrete)
        self._data = loading.with_kernels(data, region_defs=self.region_defs, **options)
        # honest training (diffhep.engine.split): the hard path keeps the evaluation half, the step gets the other
        self._data, training = split.prepare(
            self._data, sections=self.sections, region_defs=self.region_defs, nominal=list(self._samples),
            standardisation=self.standardisation, step_options=options,
        )  # fmt: skip
        return training

    # -- the step -------------------------------------------------------------
    def selection_step(
        self, data: SampleData, cuts: Mapping[str, Any], slopes: Mapping[str, Any], mode: Backend
    ) -> regions.Step:
        """The object and event weights of ``data`` at ``cuts`` (``mode`` soft: JAX; hard: NumPy 0/1)."""
        options = dict(parameters=self.parameter_map, cuts=cuts, slopes=slopes, backend=mode,
                       functions=self.functions)  # fmt: skip
        weights = ObjectWeights(self.object_defs, data.objects, data.union_index, discrete=data.discrete, **options)
        return regions.Step(data, self.object_defs, self.expressions, weights, options, self._limits)

    def histograms_at(
        self, cuts: Mapping[str, Any], data: SampleData, slope_scale: Any, mode: Backend, networks: Any = None
    ) -> dict[str, dict[str, Histogram]]:
        """Histograms ``region -> key -> Histogram`` of ``data`` at ``cuts``, soft or hard (``mode``);
        network observables with ``networks`` (default :attr:`networks`)."""
        slopes = {p.name: p.slope * slope_scale for p in self.parameters}
        step = self.selection_step(data, cuts, slopes, mode)
        step.networks = self.networks if networks is None else networks
        return {name: regions.histogram(region, step) for name, region in self.region_defs.items()}

    def soft_histograms(
        self, cuts: Mapping[str, Array], data: SampleData, slope_scale: Array | float = 1.0, networks: Any = None
    ) -> dict[str, dict[str, Histogram]]:
        """Soft histograms ``region -> key -> Histogram`` (events); jit- and grad-able in cuts, slope scale
        and the weights of ``networks`` (default :attr:`networks`)."""
        return self.histograms_at(cuts, data, slope_scale, SOFT, networks)

    def hard_histograms(self, cuts: Mapping[str, float], networks: Any = None) -> dict[str, dict[str, Histogram]]:
        """Hard-cut histograms (NumPy), from the data of the last :meth:`load` (loading first if needed): its
        evaluation half with ``training.split``."""
        values = check_values(self.parameters, cuts)
        if self._data is None:
            self.load()
        hists = self.histograms_at(values, self._data, 1.0, HARD, networks)
        return {
            r: {k: Histogram(np.asarray(h.counts), np.asarray(h.sumw2)) for k, h in hs.items()}
            for r, hs in hists.items()
        }

    def evaluation_data(self) -> SampleData:
        """The data of the hard path (loading first if needed): the evaluation half with ``training.split``."""
        if self._data is None:
            self.load()
        return self._data

    # -- likelihood -------------------------------------------------------------
    @functools.cached_property
    def mean_weights(self) -> dict[str, float]:
        """Sample -> its mean MC event weight ``sum(w) / N`` before any cut (events), the floor of its empty
        bins (:func:`diffhep.engine.mc_stats.mean_weights`: from the files' entries, read once)."""
        entries = None if self.memory is None else {k: self.memory[k].num_entries for k in self._samples}
        return mc_stats.mean_weights(self._samples, self.lumi_pb, entries)

    def spec(self, histograms: Mapping[str, Mapping[str, Histogram]]) -> dict[str, Any]:
        """The pyhf-like spec of ``histograms`` (numbers may be traced); empty background bins hold one
        MC event of the sample's mean weight (:func:`~diffhep.engine.systematics.build_spec`)."""
        return systematics.build_spec(
            histograms,
            roles=self.samples,
            systematics=self._systematics,
            poi=self.poi,
            mean_weights={k: w for k, w in self.mean_weights.items() if self.samples[k] != "signal"},
            parameters=self._settings,
            fixed=self._fixed,
        )

    def model(self, histograms: Mapping[str, Mapping[str, Histogram]]) -> Model:
        """The HistFactory model of ``histograms``."""
        return build_model(self.spec(histograms), poi_name=self.poi)

    def objective(
        self, cuts: Mapping[str, Array], data: SampleData, slope_scale: Array | float = 1.0, networks: Any = None
    ) -> Array:
        """The figure of merit to maximise at ``cuts`` (:meth:`figure_of_merit` of the soft histograms)."""
        return self.figure_of_merit(self.soft_histograms(cuts, data, slope_scale, networks))

    def figure_of_merit(self, histograms: Mapping[str, Mapping[str, Histogram]]) -> Array:
        """The config's objective of ``histograms``, to maximise, shape ``()``.

        ``discovery_significance``: expected Z0 (Asimov, profiled nuisances);
        ``cls``: minus the expected CLs at ``objective.mu``; ``poi_uncertainty``:
        minus the expected uncertainty on the POI (Cramer-Rao); ``asimov_significance``:
        the closed-form Z with the backgrounds' MC statistical uncertainty, bins
        of all regions in quadrature (no likelihood, no systematics). Every one
        sees each background's empty bins as one MC event of its mean weight
        (:func:`diffhep.likelihood.mc_floor`), as the workspace does. With
        ``objective.min_background``, minus its penalty
        (:func:`diffhep.engine.mc_stats.background_penalty`).
        """
        value = self._merit(histograms)
        if self.min_background is not None:
            weights = {k: w for k, w in self.mean_weights.items() if self.samples[k] != "signal"}
            value = value - mc_stats.background_penalty(histograms, weights, self.min_background)
        return value

    def _merit(self, histograms: Mapping[str, Mapping[str, Histogram]]) -> Array:
        """:meth:`figure_of_merit` without the ``min_background`` penalty."""
        if self.objective_name == "asimov_significance":
            weights = self.mean_weights
            s, b, var = [], [], []
            for r in self.region_defs:
                s.append(sum(jnp.maximum(jnp.asarray(histograms[r][k].counts), 0.0) for k in self.signal))
                floored = [
                    mc_floor(histograms[r][k].counts, histograms[r][k].sumw2, weights[k])
                    for k, role in self.samples.items()
                    if role != "signal"
                ]
                b.append(sum(c for c, _ in floored))
                var.append(sum(v for _, v in floored))
            return asimov_significance(jnp.concatenate(s), jnp.concatenate(b), jnp.sqrt(jnp.concatenate(var)))
        model = self.model(histograms)
        if self.objective_name == "cls":
            return -expected_cls(model, self.objective_mu)
        if self.objective_name == "poi_uncertainty":
            return -poi_uncertainty(model)
        return expected_discovery_significance(model)

    def workspace(
        self,
        histograms: Mapping[str, Mapping[str, Histogram]],
        *,
        observations: Mapping[str, Any] | None = None,
    ) -> dict:
        """A valid plain-JSON pyhf workspace of ``histograms``: ``observations`` (region -> counts) where
        given, else Asimov (mu = 1) observations."""
        return systematics.workspace(self.spec(histograms), poi=self.poi, name=self.name, observations=observations)

    # -- observations -------------------------------------------------------------
    def load_observed(self) -> SampleData | None:
        """Read the ``role: data`` samples once (weight 1 per event), apart from the Monte Carlo of :meth:`load`:
        the objective never sees them. ``None`` without data samples or unless :attr:`observations` is data."""
        if self.observations != "data" or not self.data_samples:
            return None
        if self._observed_data is None:
            options = dict(defs=self.object_defs, specs=self.expressions, parameters=self.parameter_map,
                           functions=self.functions)  # fmt: skip
            parts = [
                loading.load_sample(
                    sample,
                    loading.NOMINAL,
                    plan_=self.branch_plan,
                    region_defs=self.region_defs,
                    lumi_pb=self.lumi_pb,
                    **options,
                )
                for sample in self.data_samples.values()
            ]
            data = combine.concatenate(parts, list(self.data_samples), self.object_defs, self.expressions)
            data = dataclasses.replace(data, discrete=self.discrete)
            self._observed_data = loading.with_kernels(data, region_defs=self.region_defs, **options)
            if self.networks:  # the networks' inputs, standardised as the Monte Carlo's (all data events are observed)
                if self._data is None:
                    self.load()
                self._observed_data = split.with_features(
                    self._observed_data, sections=self.sections, region_defs=self.region_defs,
                    standardisation=self.standardisation, step_options=options,
                )  # fmt: skip
        return self._observed_data

    def observed(
        self, cuts: Mapping[str, float], hard: Mapping[str, Mapping[str, Histogram]]
    ) -> dict[str, np.ndarray] | None:
        """Region -> observed counts per bin at ``cuts`` (NumPy), or ``None`` (``observations: asimov``).

        ``data``: the hard-cut histograms of the data samples, summed; ``pseudodata``: the sum of the
        nominal Monte Carlo samples' hard-cut histograms ``hard`` (as the AGC's pseudodata) as the
        model has them, with the floor of an empty background bin (one MC event of the sample's mean
        weight, :meth:`spec`): the raw sum would observe 0 where the model cannot predict less than
        that floor, and a fit to it would not return the nominal parameters (mu 0.58-0.77 instead of
        1 on the ttbar template at the test's size, where W+jets bins are empty).
        """
        if self.observations == "pseudodata":
            spec = self.spec(hard)
            return {c["name"]: sum(np.asarray(s["data"], dtype=float) for s in c["samples"]) for c in spec["channels"]}
        data = self.load_observed()
        if data is None:
            return None
        hists = self.histograms_at(check_values(self.parameters, cuts), data, 1.0, HARD)
        return {r: sum(np.asarray(hs[k].counts, dtype=float) for k in self.data_samples) for r, hs in hists.items()}

    # -- cutflow ------------------------------------------------------------------
    def _flow(self, cuts: Mapping[str, Any], data: SampleData, mode: Backend) -> Any:
        """Yields ``(steps, samples)`` of :meth:`cutflow` (NumPy if hard)."""
        xp = mode.xp
        step = self.selection_step(data, cuts, {p.name: p.slope for p in self.parameters}, mode)
        weight, sample = xp.asarray(data.weight), xp.asarray(data.sample)
        index = xp.asarray([data.keys.index(s) for s in self._samples])
        onehot = (sample[None, :] == index[:, None]) * weight[None, :]  # (samples, events)
        rows = [onehot.sum(axis=1)]
        for name, region in self.region_defs.items():
            terms = region.terms()
            for k in range(len(terms)):
                passed = step.evaluator(f"region {name!r} select").conjunction(terms[: k + 1])
                rows.append(onehot @ xp.broadcast_to(passed, weight.shape))
        return xp.stack(rows)

    def cutflow(self, cuts: Mapping[str, float], data: SampleData) -> dict[str, list[dict[str, float]]]:
        """Sample -> ``[{"step", "soft", "hard"}, ...]`` (events).

        Steps: ``all events``, then the ``and`` terms of each region's select, cumulative.

        The soft yields use the parameters' slopes (slope scale 1) and are
        computed by one compiled function (kept for later calls).
        """
        values = check_values(self.parameters, cuts)
        if self._soft_flow is None:
            self._soft_flow = jax.jit(functools.partial(self._flow, mode=SOFT))
        soft = np.asarray(self._soft_flow(values, data))
        hard = self._flow(values, data, HARD)
        names = ["all events"] + [f"{n}: {text(t)}" for n, r in self.region_defs.items() for t in r.terms()]
        return {
            sample: [
                {"step": name, "soft": float(soft[k, i]), "hard": float(hard[k, i])} for k, name in enumerate(names)
            ]
            for i, sample in enumerate(self._samples)
        }
