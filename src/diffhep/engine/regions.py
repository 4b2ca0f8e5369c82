"""Regions of a config: event selection from ``select``, observables, histograms per step.

Event-level expressions (``select``, ``observable``, sample ``weight``) read
event branches (``MET_pt``), parameters, numbers and reductions over objects
weighted by their soft weights: ``count(c) = sum w``, ``sum(c.f) = sum w f``,
``any(c) = 1 - prod(1 - w)``, and the candidate observables of
:mod:`diffhep.engine.builtins` (their expected value where they are used in
arithmetic).

``count(c) <op> N`` with an integer ``N`` is the exact probability of the
count (Poisson-binomial). Inside one ``and``, all such comparisons on one
collection and one of its flags are computed jointly
(:func:`~diffhep.select.joint_count_distribution`); different collections,
and further flags, are multiplied (treated as independent). A comparison of a
candidate observable (``pair_mass(muons) > 60``) is the probability that the
chosen candidate exists and passes. With the hard backend
(:data:`~diffhep.engine.backend.HARD`) counts are plain sums of 0/1 weights
and every comparison is a step; the code is the same, the backend differs.

The observable of a region is histogrammed per event (an event-level value),
or per candidate (a candidate observable, weighted by the probability that it
is the chosen one). Its kernel is computed once in ``load()`` when the values
are static (no parameter and no soft weight reaches them), else in the step.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.config.functions import BUILTINS as FUNCTIONS
from diffhep.engine import builtins, counting
from diffhep.engine import network as networks_
from diffhep.engine.backend import Backend
from diffhep.engine.builtins import Candidates, CandidateSpec, candidate_spec
from diffhep.engine.combine import SampleData
from diffhep.engine.expressions import (
    Evaluator,
    discrete_scope,
    is_condition,
    parameters_in,
    parse,
    split_compare,
    text,
)
from diffhep.engine.objects import ObjectDef, ObjectWeights, Ref, is_soft, parse_ref
from diffhep.errors import ConfigError, closest
from diffhep.histogram import BinnedKernel, Histogram, binned_kernel
from diffhep.jagged import Jagged

__all__ = [
    "RegionDef",
    "parse_regions",
    "refs_in",
    "depends_on_cuts",
    "Step",
    "EventEvaluator",
    "histogram",
    "static_kernels",
]


@dataclass(frozen=True)
class RegionDef:
    """One entry of ``regions:``.

    Attributes:
        name: region (pyhf channel) name.
        select: parsed selection or ``None`` (all events).
        observable: parsed observable.
        edges: ``Float[ndarray, "bins+1"]`` bin edges, units of the observable.
        bandwidth: KDE width of the soft histogram, units of the observable.
        label: axis label.
        candidate: the observable as a candidate observable, or ``None``.
        static: whether the observable's values are fixed (kernel precomputed).
        sources: ``"select"``, ``"observable"`` -> text.
    """

    name: str
    select: ast.expr | None
    observable: ast.expr
    edges: np.ndarray
    bandwidth: float
    label: str
    candidate: CandidateSpec | None
    static: bool
    sources: Mapping[str, str]

    def terms(self) -> list[ast.expr]:
        """The top-level ``and`` terms of ``select`` (cutflow steps)."""
        if self.select is None:
            return []
        if isinstance(self.select, ast.BoolOp) and isinstance(self.select.op, ast.And):
            return list(self.select.values)
        return [self.select]


def refs_in(node: ast.AST, defs: Mapping[str, ObjectDef]) -> list[Ref]:
    """Every object reference in ``node``."""
    out = []
    for n in ast.walk(node):
        ref = parse_ref(n, defs) if isinstance(n, (ast.Name, ast.Attribute)) else None
        if ref is not None and ref not in out:
            out.append(ref)
    return out


def depends_on_cuts(node: ast.AST, defs: Mapping[str, ObjectDef], parameters: Mapping[str, Any]) -> bool:
    """Whether ``node``'s value depends on parameter values (directly or through soft weights)."""
    return bool(parameters_in(node, parameters)) or any(is_soft(r.key, defs, parameters) for r in refs_in(node, defs))


def _edges(binning: Mapping[str, Any], where: str) -> np.ndarray:
    if "edges" in binning:
        edges = np.asarray(binning["edges"], dtype=np.float64)
    elif "bins" in binning and "range" in binning:
        lo, hi = binning["range"]
        edges = np.linspace(float(lo), float(hi), int(binning["bins"]) + 1)
    else:
        raise ConfigError(f"{where}: binning needs 'edges' or 'bins' and 'range', got {dict(binning)!r}")
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
        raise ConfigError(f"{where}: bin edges must be increasing, got {edges.tolist()}")
    return edges


def parse_regions(
    config: Mapping[str, Mapping[str, Any]], defs: Mapping[str, ObjectDef], parameters: Mapping[str, Any]
) -> dict[str, RegionDef]:
    """Parse ``regions:``."""
    out = {}
    for name, spec in config.items():
        where = f"region {name!r}"
        if "observable" not in spec or "binning" not in spec:
            raise ConfigError(f"{where} needs 'observable' and 'binning'")
        select = parse(spec["select"], f"{where} select") if spec.get("select") is not None else None
        network = isinstance(spec["observable"], Mapping)
        if network:  # a network of per-event inputs (diffhep.engine.network)
            inputs = [parse(x, f"{where} observable input") for x in spec["observable"]["inputs"]]
            dynamic = tuple(depends_on_cuts(x, defs, parameters) for x in inputs)
            observable: ast.expr = networks_.observable_node(name, inputs, dynamic)
        else:
            observable = parse(spec["observable"], f"{where} observable")
        cand = candidate_spec(observable, defs, f"{where} observable")
        unit = FUNCTIONS[cand.kind].unit if cand is not None and cand.kind in FUNCTIONS else ""
        unit = f" [{unit}]" if unit else ""
        out[name] = RegionDef(
            name=name,
            select=select,
            observable=observable,
            edges=_edges(spec["binning"], where),
            bandwidth=float(spec.get("bandwidth", 0.0)),
            label=str(spec.get("label", "network output" if network else text(observable) + unit)),
            candidate=cand,
            static=not network and not depends_on_cuts(observable, defs, parameters),
            sources={"select": str(spec.get("select", "")), "observable": str(spec["observable"])},
        )
    return out


@dataclass
class Step:
    """Everything one sample's evaluation needs in one step (or in ``load()``).

    Attributes:
        data: the sample's static structure.
        defs: object definitions.
        specs: candidate key -> spec (every candidate observable of the config).
        weights: lazy object weights.
        options: keyword arguments of :class:`~diffhep.engine.expressions.Evaluator`
            (its ``backend``: soft or hard).
        limits: weight key -> counts tracked by its distribution (:func:`~diffhep.engine.counting.count_limits`).
        cache: count distributions and products computed in this step, shared by regions.
        networks: region -> the network of its network observable (:mod:`~diffhep.engine.network`).
    """

    data: SampleData
    defs: Mapping[str, ObjectDef]
    specs: Mapping[str, CandidateSpec]
    weights: ObjectWeights
    options: dict[str, Any]
    limits: Mapping[str, int] = field(default_factory=dict)
    cache: dict[tuple, Array] = field(default_factory=dict)
    networks: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._probs: dict[str, Array] = {}

    @property
    def backend(self) -> Backend:
        """The backend of this step's evaluation (:data:`~diffhep.engine.backend.SOFT` or ``HARD``)."""
        return self.options["backend"]

    def cached(self, key: tuple, compute: Callable[[], Array]) -> Array:
        """``cache[key]``, computed first if missing."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def candidate(self, spec: CandidateSpec) -> tuple[Candidates, Array]:
        """Static candidates of ``spec`` and the probability each is chosen ``(candidates,)``."""
        cands = self.data.candidates[spec.key]
        if spec.key not in self._probs:
            self._probs[spec.key] = builtins.probabilities(
                spec, cands, self.weights, self.weights.raw, lambda name: self.data.objects[name], self.backend
            )
        return cands, self._probs[spec.key]

    def evaluator(self, where: str) -> EventEvaluator:
        """An event-level evaluator for this sample."""
        return EventEvaluator(self, where=where, discrete=discrete_scope(self.data.discrete), **self.options)


class EventEvaluator(Evaluator):
    """Event-level expressions of one sample: branches, parameters, reductions, counts, candidates."""

    def __init__(self, step: Step, **kwargs: Any):
        super().__init__(**kwargs)
        self.step_ = step

    def name(self, node: ast.Name) -> Any:
        events = self.step_.data.events
        if node.id in events:
            return self.backend.asarray(events[node.id])
        if node.id in self.step_.defs:
            raise self.error(
                node, f"{node.id!r} are objects: use count({node.id}), sum({node.id}.<field>), any({node.id}), ..."
            )
        raise self.error(node, f"unknown name {node.id!r}{closest(node.id, [*events, *self.parameters])}")

    def visit_Tuple(self, node: ast.Tuple) -> Any:
        """A network observable: the network on its inputs (:func:`~diffhep.engine.network.output`)."""
        return networks_.output(self.step_, node, self)

    def is_condition(self, node: ast.AST) -> bool:
        return is_condition(node) or (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "any"
        )

    def _ref(self, node: ast.Call, with_field: bool) -> tuple[Ref, Jagged]:
        ref = parse_ref(node.args[0], self.step_.defs) if len(node.args) == 1 else None
        if ref is None or (ref.field is not None) != with_field:
            form = "c.field" if with_field else "c"
            raise self.error(node, f"{node.func.id}() takes one argument {form}, c an object or a flag like jets.btag")
        return ref, self.step_.data.objects[ref.obj]

    def call(self, name: str, node: ast.Call) -> Any:
        backend = self.backend
        if name in ("count", "any"):
            ref, jagged = self._ref(node, with_field=False)
            w = self.step_.weights(ref.key)
            if name == "count":
                return backend.segment_sum(jagged, w)
            return backend.any_pass(jagged, w)
        if name == "sum":
            ref, jagged = self._ref(node, with_field=True)
            values = backend.asarray(jagged[ref.field])
            return backend.segment_sum(jagged, self.step_.weights(ref.key) * values)
        if name == "leading":  # a network input: the field of object i after require and order (0 if none)
            ref = parse_ref(node.args[0], self.step_.defs) if len(node.args) == 2 else None
            index = node.args[1] if len(node.args) == 2 else None
            if ref is None or ref.field is None or not isinstance(getattr(index, "value", None), int):
                raise self.error(node, "leading() takes a field of an object and an index, e.g. leading(jets.pt, 0)")
            jagged = self.step_.data.objects[ref.obj]
            chosen = backend.asarray(jagged.local_index) == index.value  # type: ignore[union-attr]
            return backend.segment_sum(jagged, backend.asarray(jagged[ref.field]) * chosen)
        spec = candidate_spec(node, self.step_.defs, self.where)
        if spec is not None:
            return builtins.expected(*self.step_.candidate(spec), backend)[1]
        if name in self.functions and name not in ("max", "min"):
            result = self.functions[name](*(self._plugin_argument(a) for a in node.args))
            return backend.asarray(result)
        return super().call(name, node)

    def _plugin_argument(self, node: ast.expr) -> Any:
        """A plugin's argument: a value, or for objects (``jets``, ``jets.btag``, ``jets.pt``) their
        :class:`~diffhep.jagged.Jagged` with field ``weight`` (and ``value``, the field named)."""
        ref = parse_ref(node, self.step_.defs)
        if ref is None:
            return self(node)
        jagged = self.step_.data.objects[ref.obj]
        jagged = jagged.with_field("weight", jnp.asarray(self.step_.weights(ref.key)))
        return jagged.with_field("value", jagged[ref.field]) if ref.field else jagged

    def compare(self, node: ast.Compare) -> Any:
        count = counting.count_condition(node, self.step_.defs)
        if count is not None:
            return self.counts([count])
        left, op, right = node.left, node.ops[0], node.comparators[0]
        specs = [candidate_spec(side, self.step_.defs, self.where) for side in (left, right)]
        if all(specs):
            raise self.error(node, "a comparison can have a candidate observable on one side only")
        if any(specs):
            cands, prob = self.step_.candidate(specs[0] or specs[1])
            combos, backend, xp = cands.combos, self.backend, self.xp
            segments, value = backend.asarray(combos.segment_ids), backend.asarray(combos.value)
            a = value if specs[0] else xp.broadcast_to(self(left), (combos.n_events,))[segments]
            b = value if specs[1] else xp.broadcast_to(self(right), (combos.n_events,))[segments]
            return backend.segment_sum(combos, prob * self.compare_values(a, op, b, self.slope(node)))
        return super().compare(node)

    def counts(self, conditions: list[tuple[Ref, ast.cmpop, int]]) -> Any:
        """Probability that all ``count(ref) op N`` hold, ``(events,)`` (:mod:`~diffhep.engine.counting`)."""
        return counting.probability(self.step_, conditions)

    def conjunction(self, nodes: list[ast.expr]) -> Any:
        flat: list[ast.expr] = []
        for node in nodes:
            flat.extend(split_compare(node) if isinstance(node, ast.Compare) else [node])
        counts, rest = [], []
        for node in flat:
            found = counting.count_condition(node, self.step_.defs) if isinstance(node, ast.Compare) else None
            (counts if found else rest).append(found or node)
        result = self.counts(counts) if counts else None
        for node in rest:
            w = self.weight(node)
            result = w if result is None else self.and_(result, w)
        return result


def histogram(region: RegionDef, step: Step) -> dict[str, Histogram]:
    """The region's histograms, ``key -> Histogram`` (counts and sumw2 per bin, events).

    Soft: kernel density estimates at the region's bandwidth (JAX); hard:
    bandwidth 0 (NumPy), as the step's backend says.
    """
    data, backend = step.data, step.backend
    evaluator = step.evaluator(f"region {region.name!r} select")
    weight, sample = backend.asarray(data.weight), backend.asarray(data.sample)
    varied = None  # weight-only variations: rows of weights over the first events, with their selection
    if data.varied_weight is not None:
        varied = backend.asarray(data.varied_weight), data.varied_blocks
    if region.select is not None:
        selected = backend.xp.broadcast_to(evaluator.weight(region.select), weight.shape)
        weight = weight * selected
        if varied is not None:
            varied = varied[0] * selected[None, : varied[0].shape[1]], varied[1]
    kernels = backend.kernels(data)
    if region.candidate is not None:
        cands, prob = step.candidate(region.candidate)
        segments = backend.asarray(cands.combos.segment_ids)
        if varied is not None:  # the candidates of each block's events
            ranges = dict(data.varied_entries)[region.candidate.key]
            inside = segments[: ranges[-1][1]]
            rows = prob[None, : ranges[-1][1]] * varied[0][:, inside]
            varied = rows, tuple((a, b, keys) for (a, b), (_, _, keys) in zip(ranges, varied[1], strict=True))
        return backend.fill_by_sample(
            kernels[region.name], prob * weight[segments], sample[segments], data.keys, varied
        )
    if region.static:
        return backend.fill_by_sample(kernels[region.name], weight, sample, data.keys, varied)
    evaluator.where = f"region {region.name!r} observable"
    x = backend.xp.broadcast_to(evaluator(region.observable), weight.shape)
    return backend.fill_by_sample(backend.kernel(x, region.edges, region.bandwidth), weight, sample, data.keys, varied)


def static_kernels(region: RegionDef, step: Step) -> tuple[BinnedKernel, BinnedKernel]:
    """(soft, hard) kernels of a static or candidate observable (``load()``, once)."""
    if region.candidate is not None:
        x = step.data.candidates[region.candidate.key].combos.value
    else:
        x = jnp.broadcast_to(
            step.evaluator(f"region {region.name!r} observable")(region.observable), step.data.weight.shape
        )
    return binned_kernel(x, region.edges, region.bandwidth), binned_kernel(x, region.edges, 0.0)
