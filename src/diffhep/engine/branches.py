"""Which branches a config reads: object fields, four-momenta, event branches, and their resolution.

:func:`plan` collects, from the parsed config (files not needed), the fields
of every base object (its own expressions, ``order``, the fields event-level
expressions reduce, through unions), the objects whose four-momenta or charge
candidate observables need, and the event-level names.
:func:`branches_for` resolves them against a file's branches:
``<collection>_<field>``, or ``pt, eta, phi, mass`` computed from ``Px, Py,
Pz, E`` (``uproot-HZZ.root``); anything missing is a one-line
:class:`~diffhep.errors.InputError` naming the object, the expression and the
closest branch.
"""

from __future__ import annotations

import ast
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from diffhep.engine import regions
from diffhep.engine.builtins import CandidateSpec
from diffhep.engine.expressions import names
from diffhep.engine.objects import ObjectDef
from diffhep.engine.regions import RegionDef
from diffhep.engine.systematics import Variation
from diffhep.errors import InputError, closest
from diffhep.io.read import branch_names, is_url

__all__ = ["CARTESIAN", "Plan", "plan", "base_objects", "available_branches", "branches_for"]

CARTESIAN = {
    "px": ("px", "Px", "PX"),
    "py": ("py", "Py", "PY"),
    "pz": ("pz", "Pz", "PZ"),
    "E": ("E", "e", "energy", "Energy"),
}
_POLAR = ("pt", "eta", "phi")


@dataclass
class Plan:
    """What to read for every object and event (independent of the files).

    Attributes:
        fields: base object -> field -> where it is used (for error messages).
        kinematics: base objects whose four-momenta candidate observables need.
        charge: base objects whose charge ``m4l`` needs.
        events: event-level name -> where it is used.
    """

    fields: dict[str, dict[str, str]] = field(default_factory=dict)
    kinematics: set[str] = field(default_factory=set)
    charge: set[str] = field(default_factory=set)
    events: dict[str, str] = field(default_factory=dict)


def base_objects(defs: Mapping[str, ObjectDef], name: str) -> list[str]:
    """The collections behind object ``name`` (itself, or the members of a union, recursively)."""
    d = defs[name]
    return [b for m in d.union for b in base_objects(defs, m)] if d.union else [name]


def plan(
    defs: Mapping[str, ObjectDef],
    region_defs: Mapping[str, RegionDef],
    specs: Mapping[str, CandidateSpec],
    event_expressions: Mapping[str, ast.expr],
    parameters: Mapping[str, Any],
) -> Plan:
    """The fields and event branches every sample must provide.

    Args:
        defs: objects; region_defs: regions; specs: candidate observables.
        event_expressions: where (``"region 'sr' select 'MET_pt > 20'"``) -> parsed
            event-level expression (selects, observables, weights).
        parameters: the config's parameters.
    """
    out = Plan()
    for name, d in defs.items():
        for fname, part in d.fields(parameters).items():
            for b in base_objects(defs, name):
                out.fields.setdefault(b, {}).setdefault(fname, d.where(part))
    for where, node in event_expressions.items():
        for ref in regions.refs_in(node, defs):
            if ref.field is not None:
                for b in base_objects(defs, ref.obj):
                    out.fields.setdefault(b, {}).setdefault(ref.field, where)
        for n in names(node):
            if n not in parameters and n not in defs:
                out.events.setdefault(n, where)
    for spec in specs.values():
        for obj in spec.kinematic_objects():
            out.kinematics.update(base_objects(defs, obj))
            if spec.kind == "m4l":
                out.charge.update(base_objects(defs, obj))
    for name in defs:
        if not defs[name].union:
            out.fields.setdefault(name, {})
    return out


@functools.lru_cache(maxsize=64)
def _branch_names(path: str, tree: str, stamp: tuple[int, int]) -> tuple[str, ...]:
    return tuple(branch_names(path, tree))


def available_branches(path: str, tree: str) -> list[str]:
    """Branch names of ``tree`` in ``path`` (cached per file modification time and size; a URL: per URL)."""
    if is_url(path):
        return list(_branch_names(path, tree, (0, 0)))
    stat = os.stat(path)
    return list(_branch_names(path, tree, (stat.st_mtime_ns, stat.st_size)))


def _pick(prefix: str, options: tuple[str, ...], branches: set[str]) -> str | None:
    return next((o for o in options if f"{prefix}_{o}" in branches), None)


def branches_for(
    plan_: Plan, defs: Mapping[str, ObjectDef], available: list[str], where: str, variation: Variation
) -> tuple[dict[str, dict[str, str]], dict[str, tuple[str, ...]]]:
    """Resolve fields to branches for one file: ``({obj: {field: branch or ''}}, {obj: p4 fields})``.

    An empty branch means computed from the Cartesian components. Raises a
    one-line :class:`InputError` for anything missing.
    """
    have = set(available)
    read: dict[str, dict[str, str]] = {}
    kin: dict[str, tuple[str, ...]] = {}
    for obj, wanted in plan_.fields.items():
        c = defs[obj].collection
        cart = {k: _pick(c, v, have) for k, v in CARTESIAN.items()}
        polar = all(f"{c}_{f}" in have for f in _POLAR)
        fields = dict(wanted)
        if obj in plan_.kinematics:
            if polar:
                fields.update({f: f"{obj} four-momenta" for f in (*_POLAR, "mass") if f"{c}_{f}" in have})
                kin[obj] = (*_POLAR, "mass")
            elif all(cart.values()):
                fields.update({cart[k]: f"{obj} four-momenta" for k in cart})
                kin[obj] = tuple(cart[k] for k in ("px", "py", "pz", "E"))
            else:
                raise InputError(
                    f"object {obj!r}: candidate observables need {c}_pt, {c}_eta, {c}_phi (and {c}_mass) "
                    f"or {c}_Px, {c}_Py, {c}_Pz, {c}_E, not all in {where}{closest(c + '_pt', available)}"
                )
        if obj in plan_.charge:
            charge = _pick(c, ("charge", "Charge"), have)
            if charge is None:
                raise InputError(
                    f"object {obj!r}: m4l needs {c}_charge, not in {where}{closest(c + '_charge', available)}"
                )
            fields[charge] = f"{obj} charge"
        if not fields:
            first = next((b for b in available if b.startswith(c + "_")), None)
            if first is None:
                raise InputError(f"object {obj!r}: no branch {c}_<field> in {where}{closest(c + '_pt', available)}")
            fields[first.partition("_")[2]] = ""
        read[obj] = {}
        for fname, used in fields.items():
            branch = f"{c}_{fname}"
            if variation.read_branches(branch) in have:
                read[obj][fname] = branch
            elif fname in (*_POLAR, "mass") and all(cart.values()):
                read[obj][fname] = ""
                for k in cart:
                    read[obj].setdefault(cart[k], f"{c}_{cart[k]}")
            else:
                raise InputError(
                    f"{used}: field {fname!r} needs branch {variation.read_branches(branch)!r}, "
                    f"not in {where}{closest(variation.read_branches(branch), available)}"
                )
    return read, kin
