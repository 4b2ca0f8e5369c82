"""Object collections of a config: static ``require``/``order``/``union``, soft ``cuts`` and ``flags``.

Structure is static, values flow. On the host, once per sample (:func:`build_host`):

* a collection (``collection: Jet``) is read as records of the fields its
  expressions use (``Jet_pt`` -> ``pt``, in the files' own dtypes);
* ``require`` is evaluated with NumPy (hard, no parameters) and the objects
  failing it are dropped;
* ``order`` sorts the objects of each event by a field, largest first (stable);
* ``union: [muons, electrons]`` concatenates the built members per event
  (members' objects in the order listed) and remembers, in field ``__src``,
  where each object comes from, so that its weight can be gathered.

In the step (:class:`ObjectWeights`), each object gets a weight in [0, 1]:
the product of its members' weight (unions) and its ``cuts`` (soft: sigmoids
with the parameters' slopes; hard: steps); a flag ``jets.btag`` has the raw
weight of its expression (:meth:`ObjectWeights.raw`) and the weight
``object weight x flag``. Nothing is ever dropped in the step.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np
from jax import Array

from diffhep.engine.backend import HARD
from diffhep.engine.expressions import Evaluator, discrete_scope, host_mask, names, parameters_in, parse
from diffhep.errors import ConfigError, closest
from diffhep.jagged import Jagged, from_awkward, to_jax

__all__ = ["ObjectDef", "Ref", "parse_objects", "parse_ref", "is_soft", "build_host", "to_jagged", "ObjectWeights"]

#: Field of union records holding each object's flat index in its members' concatenation.
SOURCE = "__src"


@dataclass(frozen=True)
class ObjectDef:
    """One entry of ``objects:``.

    Attributes:
        name: object name.
        collection: branch prefix (``Jet`` reads ``Jet_<field>``), or ``None`` for a union.
        union: member object names (empty unless a union).
        require: hard, fixed selection (parsed), or ``None``.
        cuts: soft selection (parsed), or ``None``.
        flags: flag name -> parsed expression.
        order: field ordering the objects (largest first), or ``None``.
        sources: ``"require"``, ``"cuts"``, ``"flags.<f>"`` -> expression text.
    """

    name: str
    collection: str | None
    union: tuple[str, ...] = ()
    require: ast.expr | None = None
    cuts: ast.expr | None = None
    flags: Mapping[str, ast.expr] = field(default_factory=dict)
    order: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    def where(self, part: str) -> str:
        """``object 'jets' cuts 'pt > jet_pt_min'`` for error messages."""
        if part not in self.sources:
            return f"object {self.name!r} {part}"
        return f"object {self.name!r} {part} {self.sources[part]!r}"

    def expressions(self) -> dict[str, ast.expr]:
        """Part name -> parsed expression (require, cuts, flags.<f>)."""
        out = {k: v for k, v in (("require", self.require), ("cuts", self.cuts)) if v is not None}
        out.update({f"flags.{k}": v for k, v in self.flags.items()})
        return out

    def fields(self, parameters: Mapping[str, Any]) -> dict[str, str]:
        """Field -> the part that first uses it (own expressions and ``order``)."""
        out: dict[str, str] = {}
        for part, node in self.expressions().items():
            for name in names(node):
                if name not in parameters:
                    out.setdefault(name, part)
        if self.order:
            out.setdefault(self.order, "order")
        return out


def parse_objects(config: Mapping[str, Mapping[str, Any]], parameters: Mapping[str, Any]) -> dict[str, ObjectDef]:
    """Parse ``objects:``; members of a union come before it in the result."""
    defs: dict[str, ObjectDef] = {}
    for name, spec in config.items():
        spec = dict(spec or {})
        unknown = set(spec) - {"collection", "union", "require", "cuts", "flags", "order", "description"}
        if unknown:
            raise ConfigError(f"object {name!r}: unknown key(s) {', '.join(sorted(unknown))}")
        if ("collection" in spec) == ("union" in spec):
            raise ConfigError(f"object {name!r} needs exactly one of 'collection' or 'union'")
        sources = {}
        parsed: dict[str, Any] = {}
        for part in ("require", "cuts"):
            if spec.get(part) is not None:
                sources[part] = str(spec[part])
                parsed[part] = parse(spec[part], f"object {name!r} {part}")
        flags = {}
        for flag, expr in dict(spec.get("flags") or {}).items():
            sources[f"flags.{flag}"] = str(expr)
            flags[flag] = parse(expr, f"object {name!r} flag {flag!r}")
        if "require" in parsed and parameters_in(parsed["require"], parameters):
            raise ConfigError(
                f"object {name!r} require {sources['require']!r} uses parameter(s) "
                f"{', '.join(parameters_in(parsed['require'], parameters))}; require is hard and "
                "fixed, put cuts on parameters under 'cuts'"
            )
        defs[name] = ObjectDef(
            name=name,
            collection=spec.get("collection"),
            union=tuple(spec.get("union") or ()),
            require=parsed.get("require"),
            cuts=parsed.get("cuts"),
            flags=flags,
            order=spec.get("order"),
            sources=sources,
        )
    ordered: dict[str, ObjectDef] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in path:
            raise ConfigError(f"objects: union cycle {' -> '.join([*path, name])}")
        for member in defs[name].union:
            if member not in defs:
                raise ConfigError(f"object {name!r}: union member {member!r} is not an object{closest(member, defs)}")
            visit(member, (*path, name))
        ordered[name] = defs[name]

    for name in defs:
        visit(name, ())
    return ordered


def is_soft(key: str, defs: Mapping[str, ObjectDef], parameters: Mapping[str, Any]) -> bool:
    """Whether the weight of ``key`` (``"jets"`` or ``"jets.btag"``) depends on parameter values."""
    name, _, flag = key.partition(".")
    d = defs[name]
    if flag and parameters_in(d.flags[flag], parameters):
        return True
    if d.cuts is not None and parameters_in(d.cuts, parameters):
        return True
    return any(is_soft(m, defs, parameters) for m in d.union)


class ObjectEvaluator(Evaluator):
    """Object-level expressions: names are fields (flat ``(objects,)`` arrays) or parameters."""

    def __init__(self, fields: Mapping[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.fields = fields

    def name(self, node: ast.Name) -> Any:
        if node.id not in self.fields:
            raise self.error(node, f"unknown field {node.id!r}{closest(node.id, self.fields)}")
        return self.fields[node.id]


def _flat_fields(array: ak.Array) -> dict[str, np.ndarray]:
    return {f: ak.to_numpy(ak.flatten(array[f], axis=1)) for f in ak.fields(array) if f != SOURCE}


def build_host(
    defs: Mapping[str, ObjectDef],
    raw: Mapping[str, ak.Array],
    *,
    parameters: Mapping[str, Any],
    functions: Mapping[str, Callable[..., Any]],
) -> dict[str, ak.Array]:
    """Static objects: ``require`` applied, ordered, unions concatenated (host, once).

    Args:
        defs: from :func:`parse_objects` (members before unions).
        raw: base object name -> ``events * var * {field: ...}`` records as read.
        parameters: the config's parameters (not allowed in ``require``).
        functions: plugin functions.

    Returns:
        object name -> ``events * var`` records (unions with field ``__src``).
    """
    built: dict[str, ak.Array] = {}
    for name, d in defs.items():
        if d.union:
            parts, offset = [], 0
            common = set.intersection(*(set(ak.fields(built[m])) - {SOURCE} for m in d.union))
            for member in d.union:
                array = built[member][sorted(common)]
                counts = ak.to_numpy(ak.num(array, axis=1))
                total = int(counts.sum())
                src = ak.unflatten(np.arange(offset, offset + total, dtype=np.int64), counts)
                parts.append(ak.with_field(array, src, SOURCE))
                offset += total
            array = ak.concatenate(parts, axis=1)
        else:
            array = raw[name]
        if d.require is not None:
            evaluator = ObjectEvaluator(
                _flat_fields(array),
                parameters=parameters,
                cuts=None,
                slopes={},
                backend=HARD,
                functions=functions,
                where=d.where("require"),
            )
            mask = host_mask(evaluator, d.require)
            array = array[ak.unflatten(mask, ak.num(array, axis=1))]
        if d.order is not None:
            if d.order not in ak.fields(array):
                raise ConfigError(
                    f"object {name!r}: cannot order by {d.order!r}, not a field{closest(d.order, ak.fields(array))}"
                )
            array = array[ak.argsort(array[d.order], axis=1, ascending=False, stable=True)]
        built[name] = array
    return built


def to_jagged(array: ak.Array) -> tuple[Jagged, Array | None]:
    """``(Jagged of the numeric fields, union source index or None)`` of built records."""
    fields = [f for f in ak.fields(array) if f != SOURCE]
    jagged = from_awkward(array, fields=fields)
    if SOURCE not in ak.fields(array):
        return jagged, None
    return jagged, to_jax(ak.to_numpy(ak.flatten(array[SOURCE], axis=1)), np.int32)


class ObjectWeights:
    """Per-object weights of one sample in one step, computed on demand and cached.

    Args:
        defs: object definitions.
        objects: object name -> :class:`~diffhep.jagged.Jagged` (static structure).
        union_index: union name -> ``Int[Array, "objects"]`` index into the
            concatenated member weights.
        discrete: ``"object.field"`` names read from integer or boolean branches
            (:attr:`SampleData.discrete <diffhep.engine.combine.SampleData>`).
        evaluator: keyword arguments of :class:`~diffhep.engine.expressions.Evaluator`
            (``parameters, cuts, slopes, backend, functions``); with ``backend=HARD``
            the weights are NumPy arrays.
    """

    def __init__(
        self,
        defs: Mapping[str, ObjectDef],
        objects: Mapping[str, Jagged],
        union_index: Mapping[str, Array],
        *,
        discrete: Collection[str] = (),
        **evaluator: Any,
    ):
        self.defs = defs
        self.discrete = {name: discrete_scope(discrete, name) for name in defs}
        self.objects = objects
        self.union_index = union_index
        self.options = evaluator
        self._weights: dict[str, Array] = {}
        self._raw: dict[str, Array] = {}
        self.backend = evaluator["backend"]
        self.dtype = self.backend.float_dtype

    def _evaluate(self, name: str, part: str, node: ast.expr) -> Array:
        d, backend, xp = self.defs[name], self.backend, self.backend.xp
        fields = {k: backend.asarray(v) for k, v in self.objects[name].fields.items()}
        evaluator = ObjectEvaluator(fields, where=d.where(part), discrete=self.discrete[name], **self.options)
        w = xp.asarray(evaluator.weight(node), dtype=self.dtype)
        return xp.broadcast_to(w, (self.objects[name].n_objects,))

    def raw(self, key: str) -> Array:
        """Weight of flag ``key`` (``"jets.btag"``) alone, ``(objects,)``."""
        if key not in self._raw:
            name, _, flag = key.partition(".")
            self._raw[key] = self._evaluate(name, f"flags.{flag}", self.defs[name].flags[flag])
        return self._raw[key]

    def __call__(self, key: str) -> Array:
        """Weight of object ``"jets"`` or flagged objects ``"jets.btag"``, ``(objects,)``."""
        if key in self._weights:
            return self._weights[key]
        name, _, flag = key.partition(".")
        if flag:
            w = self(name) * self.raw(key)
        else:
            d, xp = self.defs[name], self.backend.xp
            w = xp.ones((self.objects[name].n_objects,), dtype=self.dtype)
            if d.union:
                members = xp.concatenate([self(m) for m in d.union])
                w = members[self.backend.asarray(self.union_index[name])]
            if d.cuts is not None:
                w = w * self._evaluate(name, "cuts", d.cuts)
        self._weights[key] = w
        return w


@dataclass(frozen=True)
class Ref:
    """A reference to objects in an event-level expression: ``jets``, ``jets.btag``, ``jets.pt``, ``jets.btag.pt``.

    Attributes:
        obj: object name.
        flag: flag name or ``None``.
        field: field name or ``None``.
    """

    obj: str
    flag: str | None = None
    field: str | None = None

    @property
    def key(self) -> str:
        """Weight key: ``"jets"`` or ``"jets.btag"``."""
        return f"{self.obj}.{self.flag}" if self.flag else self.obj


def parse_ref(node: ast.AST, defs: Mapping[str, ObjectDef]) -> Ref | None:
    """The :class:`Ref` that ``node`` spells, or ``None`` if it is not an object reference.

    Example:
        >>> defs = {"jets": ObjectDef("jets", "Jet", flags={"btag": parse("btag > 0.5", "example")})}
        >>> parse_ref(parse("jets.btag", "example"), defs), parse_ref(parse("jets.pt", "example"), defs)
        (Ref(obj='jets', flag='btag', field=None), Ref(obj='jets', flag=None, field='pt'))
    """
    if isinstance(node, ast.Name):
        return Ref(node.id) if node.id in defs else None
    if not isinstance(node, ast.Attribute):
        return None
    inner = node.value
    if isinstance(inner, ast.Name) and inner.id in defs:
        if node.attr in defs[inner.id].flags:
            return Ref(inner.id, flag=node.attr)
        return Ref(inner.id, field=node.attr)
    if (
        isinstance(inner, ast.Attribute)
        and isinstance(inner.value, ast.Name)
        and inner.value.id in defs
        and inner.attr in defs[inner.value.id].flags
    ):
        return Ref(inner.value.id, flag=inner.attr, field=node.attr)
    return None
