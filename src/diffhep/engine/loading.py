"""Reading the samples of a config into the static structure the step reads (:class:`SampleData`).

For every sample (and every variation of it), once:

1. resolve the planned fields and event names to branches of the sample's
   files (:mod:`diffhep.engine.branches`; one-line errors for anything missing);
2. read them with :func:`diffhep.io.read_events`, apply the variation
   (:class:`~diffhep.engine.systematics.Variation`), build the objects
   (:func:`~diffhep.engine.objects.build_host`), the candidates
   (:func:`~diffhep.engine.builtins.prepare`) and the kernels of static
   observables;
3. normalise: ``xsec_pb * lumi_pb / sum(sample weight)`` over all events read
   (``normalisation: weight``), or ``xsec_pb * lumi_pb / N`` (``normalisation: events``,
   the AGC's with the weight left out).

Event weights (a sample's ``weight``, a variation's ``weight``) may call
``correction(set.name, input, ...)``: a correction of a ``corrections:`` file,
evaluated here with correctionlib on the inputs' values (quoted strings, numbers,
event branches, ``leading(...)`` values), once: a fixed weight per event.

A variation's ``weight`` is evaluated here, on the host, once: event branches,
numbers and :data:`~diffhep.engine.expressions.LEADING` calls
``leading(jets.pt, i)``, the field of the ``i``-th object of ``jets`` after its
static ``require`` and ``order`` (0 where the event has fewer); see
:func:`weight_refs`. The soft ``cuts`` are not applied: the weight is static.
For an object ordered by ``pt`` whose cut is a ``pt`` threshold, the objects
passing the cut are the first ones of that order, so ``leading(jets.pt, i)`` is
the pT of the ``i``-th selected jet in every event with more than ``i``
selected jets (the AGC's b-tag weight variations of the four leading jets).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import equinox as eqx
import jax.numpy as jnp
import numpy as np
import vector

from diffhep.config.functions import CORRECTION
from diffhep.engine import branches, builtins, objects, regions
from diffhep.engine.builtins import CandidateSpec
from diffhep.engine.combine import SampleData
from diffhep.engine.expressions import HARD, LEADING, names, text
from diffhep.engine.objects import ObjectDef, ObjectEvaluator
from diffhep.engine.regions import RegionDef
from diffhep.engine.systematics import Variation
from diffhep.errors import ConfigError, InputError, closest
from diffhep.io.memory import MemoryEvents
from diffhep.io.read import errors_within, expand_files, num_entries, read_events
from diffhep.jagged import to_jax

vector.register_awkward()

__all__ = [
    "NOMINAL",
    "SampleDef",
    "Leading",
    "weight_refs",
    "sample_input",
    "required_branches",
    "load_sample",
    "load_sample_weights",
    "with_kernels",
    "event_weight",
]

NOMINAL = Variation()


@dataclass(frozen=True)
class SampleDef:
    """One entry of ``samples:``.

    Attributes:
        name: sample name.
        role: ``"signal"``, ``"background"`` or ``"data"`` (weight 1 per event, not normalised).
        files: paths or glob patterns (absolute).
        tree: TTree or RNTuple name.
        xsec_pb: cross-section, pb.
        weight: parsed event weight expression, or ``None`` (1).
        weight_text: its source.
        normalisation: ``"weight"``: ``xsec_pb * lumi_pb / sum(weight)``; ``"events"``: ``xsec_pb * lumi_pb / N``.
        max_files: its files were cut to this many (``inputs.max_files_per_sample``), or ``None``.
        max_events: read only its first events (``inputs.max_events_per_sample``), or ``None``.
    """

    name: str
    role: str
    files: tuple[str, ...]
    tree: str
    xsec_pb: float
    weight: ast.expr | None = None
    weight_text: str = "1"
    normalisation: str = "weight"
    max_files: int | None = None
    max_events: int | None = None


class _Columns:
    """Branch values of one read, with a variation applied."""

    def __init__(self, events: ak.Array, variation: Variation):
        self.events, self.variation = events, variation

    def raw(self, branch: str) -> ak.Array:
        if branch in ak.fields(self.events):
            return self.events[branch]
        prefix, _, rest = branch.partition("_")
        return self.events[prefix][rest]

    def __call__(self, branch: str) -> ak.Array:
        return self.variation.column(branch, self.raw)


def _check_alike(obj: str, arrays: Mapping[str, ak.Array], files: tuple[str, ...], tree: str | None) -> None:
    """The branches of one object's collection are lists of equal lengths in every event.

    ``ak.zip`` would broadcast a branch with one value per event to every object
    (a wrong yield, silently) and fail on lists of different lengths with
    Awkward's message; either is a one-line :class:`InputError` naming the file,
    the branch and the first entry where it differs.
    """
    reference = None
    for branch, array in arrays.items():
        if not isinstance(array.type.content, ak.types.ListType):
            others = [b for b in arrays if b != branch]
            raise InputError(
                f"{_files_text(files)}: branch {branch!r} of object {obj!r} has one value per event; expected a list "
                f"per event like {others[0] if others else 'a collection'}'s (is it the right branch?)",
                path=files[0],
                key=branch,
            )
        counts = ak.to_numpy(ak.num(array, axis=1))
        if reference is None:
            reference = (branch, counts)
            continue
        bad = np.flatnonzero(counts != reference[1])
        if bad.size:
            path, entry = _locate(files, tree, int(bad[0]))
            raise InputError(
                f"{path}: entry {entry}: branch {branch!r} has {counts[bad[0]]} values, {reference[0]!r} has "
                f"{reference[1][bad[0]]}; the branches of object {obj!r} must have one value per object",
                path=path,
                key=branch,
            )


def _files_text(files: tuple[str, ...]) -> str:
    return files[0] if len(files) == 1 else f"{files[0]} (and {len(files) - 1} more files)"


def _locate(files: tuple[str, ...], tree: str | None, entry: int) -> tuple[str, int]:
    """The file of the ``entry``-th event of ``files`` read one after the other, and the entry within it
    (``tree`` ``None``: events in memory, ``files`` is their one description)."""
    if tree is None:
        return files[0], entry
    for path in files:
        n = num_entries([path], tree=tree)
        if entry < n:
            return path, entry
        entry -= n
    return files[-1], entry


@dataclass(frozen=True)
class Leading:
    """``leading(obj.field, index)`` in a variation weight.

    Attributes:
        obj: object name (after its ``require`` and ``order``).
        field: field name (``pt`` reads ``Jet_pt`` for ``collection: Jet``).
        index: 0 for the first object.
    """

    obj: str
    field: str
    index: int


def _leading_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == LEADING


def weight_refs(node: ast.expr | None, defs: Mapping[str, ObjectDef], where: str) -> list[Leading]:
    """The ``leading(obj.field, i)`` calls of a variation weight, checked; objects appear nowhere else.

    Raises a one-line :class:`ConfigError` starting with ``where`` (which names
    the systematic) for a wrong number of arguments, an unknown object, a flag
    instead of a field, an index that is not a non-negative integer, or an
    object used outside ``leading``.

    Example:
        >>> from diffhep.engine.expressions import parse
        >>> defs = {"jets": ObjectDef("jets", "Jet")}
        >>> weight_refs(parse("1 + 0.075 * leading(jets.pt, 0) / 50", "example"), defs, "example")
        [Leading(obj='jets', field='pt', index=0)]
    """
    if node is None:
        return []
    out: list[Leading] = []
    inside: set[int] = set()
    for call in ast.walk(node):
        if not _leading_call(call):
            continue
        assert isinstance(call, ast.Call)
        src = text(call)
        if len(call.args) != 2 or call.keywords:
            raise ConfigError(
                f"{where}: {LEADING}() takes a field of an object and an index, e.g. {LEADING}(jets.pt, 0); got {src!r}"
            )
        ref, index = call.args
        if not (isinstance(ref, ast.Attribute) and isinstance(ref.value, ast.Name)):
            raise ConfigError(
                f"{where}: {LEADING}() needs a field of an object first, e.g. {LEADING}(jets.pt, 0); "
                f"got {text(ref)!r} in {src!r}"
            )
        obj, field_ = ref.value.id, ref.attr
        if obj not in defs:
            raise ConfigError(f"{where}: unknown object {obj!r} in {src!r}{closest(obj, defs)}")
        if field_ in defs[obj].flags:
            raise ConfigError(
                f"{where}: {obj}.{field_} is a flag (its weight depends on the cuts); {LEADING}() reads a field "
                f"of the objects after require and order, e.g. {LEADING}({obj}.pt, 0) (in {src!r})"
            )
        if not (isinstance(index, ast.Constant) and type(index.value) is int and index.value >= 0):
            raise ConfigError(
                f"{where}: the index of {LEADING}() is a non-negative integer (0: the first object), "
                f"got {text(index)!r} in {src!r}"
            )
        inside.update(id(n) for n in ast.walk(call))
        found = Leading(obj, field_, index.value)
        if found not in out:
            out.append(found)
    for n in ast.walk(node):
        if id(n) not in inside and isinstance(n, ast.Name) and n.id in defs:
            raise ConfigError(
                f"{where}: object {n.id!r} in a weight: use one object's field, e.g. {LEADING}({n.id}.pt, 0) "
                f"(in {text(node)!r})"
            )
    return out


def _with_refs(plan_: branches.Plan, defs: Mapping[str, ObjectDef], refs: list[Leading], where: str) -> branches.Plan:
    """``plan_`` with the fields that ``refs`` read (a copy; ``plan_`` itself if nothing is missing)."""
    missing = [
        (b, r.field) for r in refs for b in branches.base_objects(defs, r.obj) if r.field not in plan_.fields.get(b, {})
    ]
    if not missing:
        return plan_
    fields = {b: dict(f) for b, f in plan_.fields.items()}
    for b, f in missing:
        fields.setdefault(b, {}).setdefault(f, where)
    return branches.Plan(fields=fields, kinematics=plan_.kinematics, charge=plan_.charge, events=plan_.events)


def _leading_values(built: Mapping[str, ak.Array], ref: Leading) -> np.ndarray:
    """``(events,)`` float64: the field of the ``index``-th built object, 0 where there are fewer."""
    values = ak.pad_none(built[ref.obj][ref.field], ref.index + 1, axis=1)[:, ref.index]
    return ak.to_numpy(ak.fill_none(values, 0)).astype(np.float64)


class _WeightEvaluator(ObjectEvaluator):
    """Event weights: event columns, the values of ``leading(...)`` calls (variation weights) and
    ``correction(set.name, ...)`` (evaluated by ``functions["correction"]``, a
    :class:`~diffhep.config.corrections.CorrectionSets`)."""

    def __init__(self, fields: Mapping[str, Any], leading: Mapping[Leading, np.ndarray], **kwargs: Any):
        super().__init__(fields, **kwargs)
        self.leading = leading

    def call(self, name: str, node: ast.Call) -> Any:
        if name == LEADING:
            ref, index = node.args  # checked by weight_refs
            assert isinstance(ref, ast.Attribute) and isinstance(ref.value, ast.Name)
            assert isinstance(index, ast.Constant)
            return self.leading[Leading(ref.value.id, ref.attr, index.value)]
        if name == CORRECTION:
            return self.correction(node)
        return super().call(name, node)

    def correction(self, node: ast.Call) -> Any:
        """``correction(set.name, input, ...)`` on the inputs' values (checked by the config checks)."""
        first, *inputs = node.args
        assert isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name)
        if CORRECTION not in self.functions:
            raise self.error(node, "correction() needs a corrections: section naming its file")
        values = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else self(a) for a in inputs]
        try:
            return self.functions[CORRECTION](first.value.id, first.attr, *values)
        except ConfigError as exc:
            raise self.error(node, exc.message) from None


def _derived(records: dict[str, ak.Array], name: str, cart: Mapping[str, str]) -> ak.Array:
    p4 = ak.zip(
        {k: ak.values_astype(records[cart[k]], np.float64) for k in ("px", "py", "pz", "E")},
        with_name="Momentum4D",
    )
    return getattr(p4, name)


def _event_names(
    plan_: branches.Plan, variation: Variation, sample: SampleDef, defs: Mapping[str, ObjectDef]
) -> dict[str, str]:
    out = dict(plan_.events)
    for n in variation.weight_names():
        if n not in defs:
            out.setdefault(n, f"variation weight {variation.weight_text!r}")
    if sample.weight is not None:
        for n in names(sample.weight):
            out.setdefault(n, f"sample {sample.name!r} weight {sample.weight_text!r}")
    return out


def sample_input(
    sample: SampleDef, variation: Variation, memory: MemoryEvents | None = None
) -> tuple[tuple[str, ...], str, list[str]]:
    """``(files, where, branches)`` of what ``sample`` with ``variation`` reads: its files (``where``
    ``"file:tree"``, the first file's branches), or its events in ``memory`` (``files`` ``(memory.where,)``)."""
    if memory is not None:
        return (memory.where,), memory.where, memory.branches
    files = tuple(expand_files(list(variation.files or sample.files)))
    return files, f"{files[0]}:{sample.tree}", branches.available_branches(files[0], sample.tree)


def required_branches(
    plan_: branches.Plan,
    defs: Mapping[str, ObjectDef],
    sample: SampleDef,
    variation: Variation,
    memory: MemoryEvents | None = None,
) -> tuple[list[str], str]:
    """Branches to read for ``sample`` with ``variation`` (from its files, or ``memory``) and their description."""
    _, where, available = sample_input(sample, variation, memory)
    weight_where = f"variation weight {variation.weight_text!r}"
    plan_ = _with_refs(plan_, defs, weight_refs(variation.weight, defs, weight_where), weight_where)
    read, _ = branches.branches_for(plan_, defs, available, where, variation)
    wanted = {variation.read_branches(b) for fields in read.values() for b in fields.values() if b}
    for n, used in _event_names(plan_, variation, sample, defs).items():
        if variation.read_branches(n) not in available:
            raise InputError(f"{used}: branch {variation.read_branches(n)!r} not in {where}{closest(n, available)}")
        wanted.add(variation.read_branches(n))
    return sorted(wanted), where


def event_weight(
    expr: ast.expr | None, columns: Mapping[str, Any], n: int, where: str, functions: Mapping[str, Callable[..., Any]]
) -> np.ndarray:
    """The per-event weight ``expr`` (hard mode, NumPy) over ``columns``, shape ``(n,)``; ones when ``None``.

    ``where`` names the config entry in error messages (``sample 'ttbar' weight 'genWeight'``).
    """
    if expr is None:
        return np.ones(n)
    ev = _WeightEvaluator(
        columns, {}, parameters={}, cuts=None, slopes={}, backend=HARD, functions=functions, where=where
    )
    return np.broadcast_to(np.asarray(ev(expr), dtype=np.float64), (n,))


def load_sample(
    sample: SampleDef,
    variation: Variation,
    *,
    plan_: branches.Plan,
    defs: Mapping[str, ObjectDef],
    region_defs: Mapping[str, RegionDef],
    specs: Mapping[str, CandidateSpec],
    parameters: Mapping[str, Any],
    functions: Mapping[str, Callable[..., Any]],
    lumi_pb: float,
    read: Callable[[tuple[str, ...], str, list[str]], ak.Array] | None = None,
    memory: MemoryEvents | None = None,
) -> SampleData:
    """Read one sample with one variation and build its :class:`SampleData` (host, once).

    ``read(files, tree, branches)`` may be given to share reads between variations.
    ``memory``: the events in memory that replace the files (``files`` is then
    ``(memory.where,)``; default ``read``: ``memory.read(branches)``).
    """
    return load_sample_weights(
        sample, variation, (), plan_=plan_, defs=defs, region_defs=region_defs, specs=specs,
        parameters=parameters, functions=functions, lumi_pb=lumi_pb, read=read, memory=memory,
    )[0]  # fmt: skip


def load_sample_weights(
    sample: SampleDef,
    variation: Variation,
    weight_variations: Sequence[Variation],
    *,
    plan_: branches.Plan,
    defs: Mapping[str, ObjectDef],
    region_defs: Mapping[str, RegionDef],
    specs: Mapping[str, CandidateSpec],
    parameters: Mapping[str, Any],
    functions: Mapping[str, Callable[..., Any]],
    lumi_pb: float,
    read: Callable[[tuple[str, ...], str, list[str]], ak.Array] | None = None,
    memory: MemoryEvents | None = None,
) -> tuple[SampleData, list[np.ndarray]]:
    """:func:`load_sample`, and the event weights (float64, normalised) of ``weight_variations``
    (each :attr:`~Variation.weight_only`) on the same events: what loading each of them as a sample
    of its own would put in its :attr:`SampleData.weight`, without its copy of the events."""
    if not all(v.weight_only for v in weight_variations):
        raise ValueError("weight_variations must change only the event weight")
    files, where, available = sample_input(sample, variation, memory)
    wanted, _ = required_branches(plan_, defs, sample, variation, memory)
    for other in weight_variations:  # the branches its weight reads
        wanted = sorted({*wanted, *required_branches(plan_, defs, sample, other, memory)[0]})
    if memory is not None:
        events = read(files, sample.tree, wanted) if read is not None else memory.read(wanted)
    else:
        stop = sample.max_events  # inputs.max_events_per_sample; None: every event
        with errors_within(f"sample {sample.name!r}"):  # a file that went away, a network error
            events = (read or (lambda f, t, b: read_events(list(f), tree=t, branches=b, entry_stop=stop)))(
                files, sample.tree, wanted
            )
    columns = _Columns(events, variation)
    tree = None if memory is not None else sample.tree  # None: no file to locate an entry in

    def raw_objects(plan: branches.Plan) -> tuple[dict[str, ak.Array], dict[str, tuple[str, ...]]]:
        resolved, kin = branches.branches_for(plan, defs, available, where, variation)
        raw = {}
        for obj, fields in resolved.items():
            records = {f: columns(b) for f, b in fields.items() if b}
            _check_alike(obj, {b: records[f] for f, b in fields.items() if b}, files, tree)
            cart = {
                k: next(f for f in fields if f in v)
                for k, v in branches.CARTESIAN.items()
                if any(f in v for f in fields)
            }
            for f, b in fields.items():
                if not b:
                    records[f] = _derived(records, f, cart)
            raw[obj] = ak.zip(records, depth_limit=2)
        return raw, kin

    raw, kin = raw_objects(plan_)
    n = len(events)
    event_names = dict(_event_names(plan_, variation, sample, defs))
    for other in weight_variations:
        event_names.update(_event_names(plan_, other, sample, defs))
    event_cols = {name: ak.to_numpy(columns(name)) for name in event_names}
    nominal = event_weight(
        sample.weight, event_cols, n, f"sample {sample.name!r} weight {sample.weight_text!r}", functions
    )
    total = float(n) if sample.normalisation == "events" else float(np.sum(nominal))
    if sample.role != "data" and (n == 0 or total == 0.0):
        raise InputError(
            f"sample {sample.name!r} has {'no events' if n == 0 else 'a zero sum of weights'} "
            f"in {', '.join(files)}; cannot normalise"
        )
    # observed data: weight 1 per event (the checks refuse a data weight), not normalised
    weight = nominal if sample.role == "data" else nominal * sample.xsec_pb * lumi_pb / total
    built = objects.build_host(defs, raw, parameters=parameters, functions=functions)

    def varied(other: Variation) -> np.ndarray:
        """``weight`` times the weight of variation ``other`` (on these events)."""
        weight_where = f"variation weight {other.weight_text!r}"
        refs = weight_refs(other.weight, defs, weight_where)
        if not refs:
            return weight * event_weight(other.weight, event_cols, n, weight_where, functions)
        extended = _with_refs(plan_, defs, refs, weight_where)
        source = built
        if extended is not plan_:  # fields only the weight reads: built again with them, for the weight only
            source = objects.build_host(defs, raw_objects(extended)[0], parameters=parameters, functions=functions)
        leading = {r: _leading_values(source, r) for r in refs}
        evaluator = _WeightEvaluator(
            event_cols,
            leading,
            parameters={},
            cuts=None,
            slopes={},
            backend=HARD,
            functions=functions,
            where=weight_where,
        )
        return weight * np.broadcast_to(np.asarray(evaluator(other.weight), dtype=np.float64), (n,))

    weights = [varied(other) for other in weight_variations]
    weight = varied(variation)
    jagged, union_index = {}, {}
    for name, array in built.items():
        jagged[name], index = objects.to_jagged(array)
        if index is not None:
            union_index[name] = index

    def p4(name: str) -> ak.Array:
        styles = {kin[b] for b in branches.base_objects(defs, name)}
        if len(styles) != 1:
            raise InputError(
                f"object {name!r}: its members store four-momenta differently ({sorted(styles)}); use one convention"
            )
        style = styles.pop()
        keys = ("pt", "eta", "phi", "mass") if style[0] == "pt" else ("px", "py", "pz", "E")
        array = built[name]
        comps = {
            k: ak.values_astype(array[f], np.float64)
            if f in ak.fields(array)
            else ak.zeros_like(array[style[0]], dtype=np.float64)
            for k, f in zip(keys, style, strict=True)
        }
        charge = next((f for f in ("charge", "Charge") if f in ak.fields(array)), None)
        if charge is not None:
            comps["charge"] = array[charge]
        return ak.zip(comps, with_name="Momentum4D")

    candidates = {key: builtins.prepare(spec, built, p4) for key, spec in specs.items()}
    dtype = jnp.result_type(float)
    part = SampleData(
        objects=jagged,
        union_index=union_index,
        events={k: to_jax(np.asarray(event_cols[k], dtype=np.float64), dtype) for k in plan_.events},
        weight=to_jax(weight, dtype),
        sample=to_jax(np.zeros(n, dtype=np.int32)),
        candidates=candidates,
        kernels={},
        hard_kernels={},
        keys=(sample.name,),
    )
    return part, weights


def with_kernels(
    data: SampleData,
    *,
    defs: Mapping[str, ObjectDef],
    region_defs: Mapping[str, RegionDef],
    specs: Mapping[str, CandidateSpec],
    parameters: Mapping[str, Any],
    functions: Mapping[str, Callable[..., Any]],
) -> SampleData:
    """``data`` with the kernels of every static or candidate observable (soft and bandwidth 0)."""
    options = dict(parameters=parameters, cuts={}, slopes={}, backend=HARD, functions=functions)
    step = regions.Step(
        data, defs, specs, objects.ObjectWeights(defs, data.objects, data.union_index, **options), options
    )
    kernels, hard = {}, {}
    for name, region in region_defs.items():
        if region.candidate is not None or region.static:
            kernels[name], hard[name] = regions.static_kernels(region, step)
    return eqx.tree_at(lambda d: (d.kernels, d.hard_kernels), data, (kernels, hard))
