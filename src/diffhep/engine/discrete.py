"""Which names hold discrete values: fields and event branches read from integer or boolean branches.

A sigmoid cut ``sigmoid(slope * (x - cut))`` is 0.5 for a value exactly on the
cut, at every slope, where the hard cut gives 0 or 1. Continuous values almost
never sit there, but integer charges, flags, IDs and counters do whenever the
cut takes one of their values. So a comparison of only discrete names with a
parameter is the hard step in the forward pass with the sigmoid's gradient (the
straight-through estimator, :meth:`Backend.compare <diffhep.engine.backend.Backend.compare>`),
and the soft weights of such values equal the hard ones at every slope.

Discreteness is read from the files' types (structure, never values): a name is
discrete when its branch is of integer or boolean type in every file of every
sample and variation (after the variation's ``scale``, which makes it floating
point), as :func:`find` reads it from an empty entry range (of events in memory: their
array's types, :class:`~diffhep.io.memory.MemoryEvents`). The result is carried by
:attr:`SampleData.discrete <diffhep.engine.combine.SampleData>`, the same for the
in-memory data and for every chunk of a streamed job.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import awkward as ak

from diffhep.engine import branches, loading
from diffhep.engine.expressions import discrete_scope, parameters_in, reads_only, split_compare, text
from diffhep.engine.objects import ObjectDef
from diffhep.engine.regions import RegionDef
from diffhep.engine.systematics import Variation
from diffhep.io.memory import MemoryEvents
from diffhep.io.read import expand_files, read_events

__all__ = ["KINDS", "is_discrete", "find", "comparisons"]

#: NumPy dtype kinds of discrete values: booleans, signed and unsigned integers.
KINDS = "biu"


def is_discrete(values: ak.Array) -> bool:
    """Whether ``values`` (flat or jagged numbers) have an integer or boolean dtype."""
    return ak.to_numpy(ak.flatten(values, axis=None)).dtype.kind in KINDS


def _one_file(
    path: str,
    sample: loading.SampleDef,
    variation: Variation,
    wanted: list[str],
    resolved: Mapping[str, Mapping[str, str]],
    events_: Collection[str],
    read: dict[tuple[str, str, tuple[str, ...]], ak.Array],
) -> set[str]:
    """The discrete names of one file: ``"obj.field"`` of base objects and event branches.

    ``read`` caches the empty read of each (file, tree, branches): the variations of a sample read
    the nominal files again, and opening a file of ~1000 branches takes ~1 s.
    """
    key = (path, sample.tree, tuple(sorted(wanted)))
    if key not in read:
        read[key] = read_events(path, tree=sample.tree, branches=wanted, entry_start=0, entry_stop=0)
    return _discrete_names(read[key], variation, resolved, events_)


def _discrete_names(
    empty: ak.Array, variation: Variation, resolved: Mapping[str, Mapping[str, str]], events_: Collection[str]
) -> set[str]:
    """The discrete names of ``empty``, no events of the branches read (their types)."""
    columns = loading._Columns(empty, variation)
    out = {f"{obj}.{f}" for obj, fields in resolved.items() for f, b in fields.items() if b and is_discrete(columns(b))}
    return out | {n for n in events_ if is_discrete(columns(n))}


def find(
    variants: Sequence[tuple[str, loading.SampleDef, Variation]],
    *,
    plan_: branches.Plan,
    defs: Mapping[str, ObjectDef],
    memory: Mapping[str, MemoryEvents] | None = None,
) -> tuple[str, ...]:
    """Sorted discrete names of every object (``"muons.charge"``) and event branch (``"nTag"``).

    Args:
        variants: ``(key, sample, variation)`` as :meth:`ConfiguredAnalysis.variants
            <diffhep.engine.configured.ConfiguredAnalysis.variants>` gives them.
        plan_: the branches the config reads (:func:`diffhep.engine.branches.plan`).
        defs: object definitions (a union has no cuts or flags of its own: only collections count).
        memory: variant key -> its events in memory, when they replace the files.

    Reads no entry: only the types of the branches, in every file (or array).
    """
    found: set[str] | None = None
    read: dict[tuple[str, str, tuple[str, ...]], ak.Array] = {}
    for key, sample, variation in variants:
        events = memory[key] if memory is not None else None
        wanted, where = loading.required_branches(plan_, defs, sample, variation, events)
        _, _, available = loading.sample_input(sample, variation, events)
        resolved, _ = branches.branches_for(plan_, defs, available, where, variation)
        if events is not None:
            names = _discrete_names(events.empty(wanted), variation, resolved, plan_.events)
            found = names if found is None else found & names
            continue
        files = expand_files(list(variation.files or sample.files))
        for path in files:
            names = _one_file(path, sample, variation, wanted, resolved, plan_.events, read)
            found = names if found is None else found & names
    return tuple(sorted(found or ()))


def comparisons(
    discrete: Collection[str],
    defs: Mapping[str, ObjectDef],
    region_defs: Mapping[str, RegionDef],
    parameters: Mapping[str, Any],
) -> list[str]:
    """The comparisons with a parameter that are hard forward (straight-through), as
    ``"object 'muons' cuts: charge >= q_min"`` lines (``diffhep validate`` prints them)."""
    out = []
    where: list[tuple[str, ast.expr, frozenset[str]]] = []
    for name, d in defs.items():
        scope = discrete_scope(discrete, name)
        where += [
            (f"object {name!r} {part}", node, scope) for part, node in d.expressions().items() if part != "require"
        ]
    events = discrete_scope(discrete)
    where += [(f"region {k!r} select", r.select, events) for k, r in region_defs.items() if r.select is not None]
    for label, node, scope in where:
        for compare in (n for n in ast.walk(node) if isinstance(n, ast.Compare)):
            for single in split_compare(compare):
                if parameters_in(single, parameters) and reads_only(single, scope, parameters):
                    out.append(f"{label}: {text(single)}")
    return out
