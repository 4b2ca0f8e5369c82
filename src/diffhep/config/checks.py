"""Meaning checks of a schema-valid config: names, references, ranges, expressions.

The JSON schema checks shapes; these checks look across sections: names that
would clash, samples and objects that must exist, parameters that must be used,
bounds and binnings that must be ordered, and every expression parsed and
checked against what its level may name (object level: the collection's fields,
parameters and math functions; event level: branches, parameters, reductions
over objects and flags, candidate observables). Each problem is one
:class:`~diffhep.errors.ConfigError` with ``FILE:LINE: field.path: ...``.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import keyword
import math
import re
from collections.abc import Collection, Mapping
from typing import Any, Protocol

from diffhep.config.expr import Expr, parse
from diffhep.config.functions import BUILTIN_FUNCTIONS, BUILTINS, CORRECTION, EVENT_FUNCTIONS, OBJECT_FUNCTIONS
from diffhep.errors import ConfigError, DiffhepError, closest

__all__ = ["check_config", "format_path", "FieldPath", "VARIATION_KINDS", "MAX_BINS"]

#: Most bins of one region: histograms, kernels and the workspace grow with it (and a
#: soft histogram holds up to events x bins fractions when the bandwidth spans the range).
MAX_BINS = 10_000

#: The kinds of a systematic variation; exactly one per variation.
VARIATION_KINDS = ("scale", "branches", "weight", "files", "smear")
#: Functions of variation weights only: leading(jets.pt, i) (checked further by the engine) and
#: correction(set.name, ...) (also in samples' weights).
WEIGHT_FUNCTIONS = frozenset({"leading", CORRECTION})
#: A correctionlib file's corrections: name -> its inputs ``(name, type)`` (:func:`diffhep.config.corrections.describe`).
Described = Mapping[str, tuple[tuple[str, str], ...]]
#: What a comparison reading ``count(c)`` may be (:meth:`_Checker.count_uses`).
COUNT_COMPARISON = (
    "a count can only be compared with a whole number N >= 0, as in count(jets) >= 4 or count(jets.btag) == 1 "
    "(the exact probability), or with a parameter (a soft cut on the expected count); anything else would be a "
    "step of the expected count in the soft selection, with no gradient. For a sum of counts of different "
    "objects define one object (union: [a, b]) and count it; combine exact counts with and, or, not"
)
#: A field path: mapping keys and list indices, ``("objects", "jets", "cuts")``.
FieldPath = tuple[Any, ...]


class Where(Protocol):
    """Where fields are written: ``line(path)`` and ``error(path, message)``."""

    def line(self, path: FieldPath) -> int | None: ...

    def error(self, path: FieldPath, message: str) -> ConfigError: ...


def check_config(
    data: dict[str, Any],
    where: Where,
    functions: Collection[str] | None,
    corrections: Mapping[str, Described] | None = None,
) -> dict[str, Expr]:
    """Run every meaning check; return the parsed expressions by field path.

    Args:
        data: a schema-valid config with defaults filled in.
        where: turns a field path and a message into a located error.
        functions: names of plugin functions, or None when plugins were not
            loaded (calls of unknown functions are then not checked).
        corrections: set name -> its file's corrections and their inputs; the calls
            ``correction(set.name, ...)`` are checked against them (names and count of
            the sets only when ``None``).
    """
    checker = _Checker(data, where, functions, corrections)
    checker.run()
    return checker.expressions


@dataclasses.dataclass
class _Checker:
    data: dict[str, Any]
    where: Where
    plugins: Collection[str] | None
    corrections: Mapping[str, Described] | None = None
    expressions: dict[str, Expr] = dataclasses.field(default_factory=dict)
    used: set[str] = dataclasses.field(default_factory=set)

    def fail(self, path: FieldPath, message: str) -> ConfigError:
        return self.where.error(path, message)

    @property
    def params(self) -> dict[str, Any]:
        return self.data["parameters"]

    @property
    def objects(self) -> dict[str, Any]:
        return self.data["objects"]

    def run(self) -> None:
        self.names()
        if not any(s["role"] == "signal" for s in self.data["samples"].values()):
            raise self.fail(("samples",), "no sample has role 'signal'; expected at least one (the POI scales them)")
        self.data_samples()
        for name, sample in self.data["samples"].items():
            self.event(("samples", name, "weight"), sample["weight"], frozenset({CORRECTION}))
        for name, p in self.params.items():
            low, high = p["bounds"]
            if not low < high:
                raise self.fail(("parameters", name, "bounds"), f"[{low}, {high}]: expected low < high")
            if not low < p["init"] < high:
                message = f"{p['init']} is outside bounds [{low}, {high}]; expected low < init < high"
                raise self.fail(("parameters", name, "init"), message)
        for name, obj in self.objects.items():
            self.object(name, obj)
        for name, region in self.data["regions"].items():
            self.region(name, region)
        for name, syst in self.data["systematics"].items():
            self.systematic(name, syst)
        self.measurement()
        self.unused_parameters()
        self.execution()

    def names(self) -> None:
        functions = BUILTIN_FUNCTIONS | set(self.plugins or ())
        named = [(("parameters", n), n) for n in self.params] + [(("objects", n), n) for n in self.objects]
        named += [(("objects", o, "flags", f), f) for o, spec in self.objects.items() for f in spec.get("flags", {})]
        for path, name in named:
            if keyword.iskeyword(name):
                raise self.fail(path, f"{name!r} is a Python keyword; choose another name")
            if name in functions and len(path) == 2:
                raise self.fail(path, f"{name!r} is the name of a function; choose another name")
        for name in self.data["corrections"]:
            clash = "a parameter" if name in self.params else "an object" if name in self.objects else None
            if clash or name in functions:
                message = f"{name!r} is also {clash or 'a function'}; a correction set needs a name of its own"
                raise self.fail(("corrections", name), message)
        for name in set(self.params) & set(self.objects):
            line = self.where.line(("parameters", name))
            message = f"{name!r} is also a parameter (line {line}); parameter and object names must differ"
            raise self.fail(("objects", name), message)
        poi = self.data["measurement"]["poi"]
        if poi in self.data["systematics"]:
            line = self.where.line(("systematics", poi))
            message = f"{poi!r} is also a systematic (line {line}); the POI needs a name of its own"
            raise self.fail(("measurement", "poi"), message)

    def parse(self, path: FieldPath, text: Any) -> Expr:
        try:
            expr = parse(str(text))
        except ConfigError as exc:
            raise self.fail(path, str(exc)) from None
        expr = dataclasses.replace(expr, where=format_path(path))
        self.expressions[format_path(path)] = expr
        return expr

    def call(self, path: FieldPath, node: ast.Call, allowed: Collection[str], level: str) -> str:
        """Check the function name and arity of a call; return the name."""
        name: str = node.func.id  # type: ignore[attr-defined]
        known = name in allowed or (self.plugins is not None and name in self.plugins)
        if not known and name in WEIGHT_FUNCTIONS:
            where = "samples' and variations' weights" if name == CORRECTION else "variations' weights"
            raise self.fail(path, f"{name}() can only be used in {where}")
        if not known and (self.plugins is not None or name in BUILTIN_FUNCTIONS):
            hint = closest(name, [*sorted(allowed), *sorted(self.plugins or ())])
            raise self.fail(path, f"unknown {level}-level function {name!r}{hint}")
        low, high = BUILTINS[name].arity if name in BUILTINS else (0, 999)
        if not low <= len(node.args) <= high:
            count = f"{low}" if low == high else f"{low} or more"
            raise self.fail(path, f"{name}() takes {count} argument(s), got {len(node.args)}")
        return name

    def object_level(self, path: FieldPath, text: str, *, parameters: bool) -> None:
        expr = self.parse(path, text)
        for node in ast.walk(expr.tree):
            if isinstance(node, ast.Call):
                self.call(path, node, OBJECT_FUNCTIONS, "object")
            elif isinstance(node, ast.Attribute):
                piece = ast.unparse(node)
                message = f"{piece!r}: object-level expressions name fields of their own collection directly (pt)"
                raise self.fail(path, message)
        used = set(expr.names()) & set(self.params)
        if used and not parameters:
            name = sorted(used)[0]
            message = f"parameter {name!r} is not allowed in require (hard and fixed); move the cut to cuts"
            raise self.fail(path, message)
        self.used |= used

    def object(self, name: str, obj: dict[str, Any]) -> None:
        if "union" in obj:
            for i, member in enumerate(obj["union"]):
                path = ("objects", name, "union", i)
                if member not in self.objects or member == name:
                    others = [o for o in self.objects if o != name]
                    raise self.fail(path, f"unknown object {member!r}{closest(member, others)}")
                if "union" in self.objects[member]:
                    raise self.fail(path, f"{member!r} is itself a union; expected objects with a collection")
            return
        for key in ("require", "cuts"):
            if key in obj:
                self.object_level(("objects", name, key), obj[key], parameters=key == "cuts")
        for flag, text in obj.get("flags", {}).items():
            self.object_level(("objects", name, "flags", flag), text, parameters=True)

    def region(self, name: str, region: dict[str, Any]) -> None:
        observable = region["observable"]
        texts: list[tuple[FieldPath, Any]] = [(("select",), region.get("select"))]
        if isinstance(observable, dict):  # a network: {network: mlp, inputs: [...]}, its inputs are expressions
            texts += [(("observable", "inputs", i), text) for i, text in enumerate(observable["inputs"])]
        else:
            texts.append((("observable",), observable))
        for key, text in texts:
            if text is not None:
                path = ("regions", name, *key)
                self.event(
                    path, text, frozenset({"leading"}) if key[0] == "observable" and len(key) > 1 else frozenset()
                )
                self.count_uses(path, self.expressions[format_path(path)].tree.body, condition=key == ("select",))
        path, binning = ("regions", name, "binning"), region["binning"]
        if "edges" in binning:
            edges = binning["edges"]
            if len(edges) - 1 > MAX_BINS:
                message = f"{len(edges) - 1} bins; expected at most {MAX_BINS} bins per region (MAX_BINS)"
                raise self.fail((*path, "edges"), message)
            bad = next((i for i in range(1, len(edges)) if not edges[i] > edges[i - 1]), None)
            if bad is not None:
                message = f"{edges[bad]} follows {edges[bad - 1]}; expected strictly increasing edges"
                raise self.fail((*path, "edges", bad), message)
            low, high, where = edges[0], edges[-1], (*path, "edges")
        else:
            if binning["bins"] > MAX_BINS:
                message = f"{binning['bins']} bins; expected at most {MAX_BINS} bins per region (MAX_BINS)"
                raise self.fail((*path, "bins"), message)
            low, high = binning["range"]
            where = (*path, "range")
            if not low < high:
                raise self.fail(where, f"[{low}, {high}]: expected low < high")
        if not math.isfinite(float(high) - float(low)):
            raise self.fail(where, f"spans [{low}, {high}], wider than a float holds; expected a finite width")
        bandwidth = region["bandwidth"]  # >= 0 and finite already (schema, finite numbers only)
        if bandwidth > float(high) - float(low):
            message = (
                f"{bandwidth} is wider than the whole binning [{low}, {high}]; expected 0 (a plain histogram) "
                f"up to {float(high) - float(low):g}, typically about a bin width"
            )
            raise self.fail(("regions", name, "bandwidth"), message)

    def event(self, path: FieldPath, text: Any, extra: frozenset[str] = frozenset()) -> None:
        expr = self.parse(path, text)
        self.event_node(path, expr.tree.body, extra)
        self.used |= set(expr.names()) & set(self.params)

    def event_node(self, path: FieldPath, node: ast.AST, extra: frozenset[str] = frozenset()) -> None:
        """Check an event-level subtree; object references only as call arguments (``extra``: more functions)."""
        if isinstance(node, ast.Call):
            name = self.call(path, node, EVENT_FUNCTIONS | OBJECT_FUNCTIONS | extra, "event")
            if name == CORRECTION:
                self.correction(path, node, extra)
                return
            kinds = BUILTINS[name].kinds if name in BUILTINS else frozenset()
            # min(c.f) reduces over objects; min(a, b) is elementwise (both kinds: one argument reduces).
            reduction = bool(kinds & {"reduction", "candidate"}) and ("elementwise" not in kinds or len(node.args) == 1)
            plugin = name not in BUILTIN_FUNCTIONS
            for i, arg in enumerate(node.args):
                if reduction or (plugin and self.is_object(arg)):
                    self.reference(path, name, i, arg)
                else:
                    self.event_node(path, arg, extra)
            return
        if isinstance(node, ast.Name) and node.id in self.objects:
            message = f"object {node.id!r} used as a value; reduce it, e.g. count({node.id}) or any({node.id})"
            raise self.fail(path, message)
        if isinstance(node, ast.Attribute):
            self.reference(path, "", 0, node)
            piece = ast.unparse(node)
            raise self.fail(path, f"{piece!r} is a value per object; reduce it, e.g. sum({piece}) or max({piece})")
        for child in ast.iter_child_nodes(node):
            self.event_node(path, child, extra)

    def correction(self, path: FieldPath, node: ast.Call, extra: frozenset[str]) -> None:
        """``correction(set.name, input, ...)``: a declared set, a correction of its file, its inputs in number
        and kind (a quoted string for a ``string`` input, an event-level value for a number)."""
        example = 'correction(agc.event_systematics, "btag_var", "up", leading(jets.pt, 0))'
        first = node.args[0] if node.args else None
        if not (isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name)):
            got = ast.unparse(first) if first is not None else "nothing"
            raise self.fail(path, f"correction() takes a correction first, as set.name, e.g. {example}; got {got}")
        sets, set_name, name = self.data["corrections"], first.value.id, first.attr
        if set_name not in sets:
            hint = closest(set_name, sets) if sets else "; declare its file under corrections:"
            raise self.fail(path, f"unknown correction set {set_name!r} in {ast.unparse(node)!r}{hint}")
        inputs = node.args[1:]
        described = (self.corrections or {}).get(set_name)
        if described is not None:
            file = sets[set_name]["file"]
            if name not in described:
                raise self.fail(path, f"{file} has no correction {name!r}{closest(name, described)}")
            expected = described[name]
            if len(inputs) != len(expected):
                listed = ", ".join(f"{n} ({t})" for n, t in expected)
                message = f"{set_name}.{name} takes {len(expected)} input(s), {listed}; got {len(inputs)} in"
                raise self.fail(path, f"{message} {ast.unparse(node)!r}")
            for arg, (input_name, kind) in zip(inputs, expected):
                quoted = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                if quoted != (kind == "string"):
                    want = 'a quoted string, e.g. "up"' if kind == "string" else f"a number ({kind})"
                    message = f"input {input_name!r} of {set_name}.{name} is {want}, got {ast.unparse(arg)}"
                    raise self.fail(path, f"{message} in {ast.unparse(node)!r}")
        for arg in inputs:
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                self.event_node(path, arg, extra)

    def count_uses(self, path: FieldPath, node: ast.AST, *, condition: bool) -> None:
        """Refuse a ``count(c)`` whose soft value would be a step of the expected count (no gradient).

        Exact: ``count(c) <op> N`` with a whole number ``N >= 0`` (the probability of the count, also in
        chains and either way round). A comparison that reads a parameter is a soft cut (a sigmoid of
        the value, here of the expected count). Any other comparison reading a count (also through an
        exact one: ``MET_pt * (count(jets) >= 3) > 20``), and a count used as a condition
        (``select: count(jets)``, ``not count(jets)``), would be a 0/1 step of the expected count in the
        soft selection. ``condition``: ``node`` is used as a weight (the whole ``select``, operands of
        ``and``/``or``/``not``); an observable's value may be a count (its expected value).
        """
        if isinstance(node, ast.BoolOp) or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
            for child in ast.iter_child_nodes(node):
                self.count_uses(path, child, condition=True)
            return
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for i, op in enumerate(node.ops):
                single = ast.Compare(left=operands[i], ops=[op], comparators=[operands[i + 1]])
                counts = _counts(operands[i]) + _counts(operands[i + 1])
                if counts and not _exact_count(single) and not self.reads_parameter(single):
                    raise self.fail(path, f"{ast.unparse(single)!r}: {COUNT_COMPARISON}")
            for operand in operands:
                self.count_uses(path, operand, condition=False)
            return
        counts = _counts(node)
        if condition and counts:
            ref = ast.unparse(counts[0].args[0]) if counts[0].args else "jets"
            message = (
                f"{ast.unparse(node)!r}: a count is not a condition (the soft selection would be a step of the "
                f"expected count, with no gradient); write count({ref}) >= 1 or any({ref})"
            )
            raise self.fail(path, message)
        for child in ast.iter_child_nodes(node):
            self.count_uses(path, child, condition=False)

    def reads_parameter(self, node: ast.AST) -> bool:
        """Whether ``node`` reads a parameter (function names aside)."""
        funcs = {id(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
        return any(isinstance(n, ast.Name) and id(n) not in funcs and n.id in self.params for n in ast.walk(node))

    def is_object(self, node: ast.AST) -> bool:
        """Whether ``node`` is an object name or ``object.attribute``."""
        base = node.value if isinstance(node, ast.Attribute) else node
        return isinstance(base, ast.Name) and base.id in self.objects

    def reference(self, path: FieldPath, function: str, index: int, node: ast.AST) -> None:
        """An argument naming an object (``jets``), a flag (``jets.btag``) or a field (``jets.pt``)."""
        base = node.value if isinstance(node, ast.Attribute) else node
        if not isinstance(base, ast.Name):
            got = ast.unparse(node)
            raise self.fail(path, f"{function}() expects an object (jets), a flag (jets.btag) or a field, got {got!r}")
        if base.id not in self.objects:
            raise self.fail(path, f"unknown object {base.id!r}{closest(base.id, self.objects)}")
        fields = function in ("sum", "min", "max") or function not in BUILTIN_FUNCTIONS
        if isinstance(node, ast.Name):
            if function in ("sum", "min", "max"):
                raise self.fail(path, f"{function}() needs a field of {node.id!r}, e.g. {function}({node.id}.pt)")
            if function == "trijet_mass" and index == 1:
                raise self.fail(path, f"trijet_mass() needs a flag second, e.g. trijet_mass({node.id}, {node.id}.btag)")
            return
        flags = self.objects[base.id].get("flags", {})
        if not fields and node.attr not in flags:  # type: ignore[attr-defined]
            attr = node.attr  # type: ignore[attr-defined]
            hint = closest(attr, flags) if flags else f"; object {base.id!r} has no flags"
            raise self.fail(path, f"unknown flag {base.id}.{attr}{hint}")

    def data_samples(self) -> None:
        """``role: data``: no cross-section, weight 1; MC samples need ``xsec_pb``; ``observations: data`` needs one."""
        for name, sample in self.data["samples"].items():
            if sample["role"] != "data":
                if "xsec_pb" not in sample:
                    message = f"a {sample['role']} sample needs xsec_pb (its cross-section, pb)"
                    raise self.fail(("samples", name), message)
                continue
            if "xsec_pb" in sample:
                message = "a data sample is not normalised (weight 1 per event): remove xsec_pb"
                raise self.fail(("samples", name, "xsec_pb"), message)
            if str(sample["weight"]).strip() not in ("1", "1.0"):
                message = f"{sample['weight']!r}: data events have weight 1; remove weight from the data sample"
                raise self.fail(("samples", name, "weight"), message)
        if self.data.get("observations") == "data" and not any(
            s["role"] == "data" for s in self.data["samples"].values()
        ):
            message = "'data' needs a sample with role: data (or use pseudodata: the sum of the MC samples)"
            raise self.fail(("observations",), message)

    def systematic(self, name: str, syst: dict[str, Any]) -> None:
        for i, sample in enumerate(syst.get("samples", [])):
            if sample not in self.data["samples"]:
                hint = closest(sample, self.data["samples"])
                raise self.fail(("systematics", name, "samples", i), f"unknown sample {sample!r}{hint}")
            if self.data["samples"][sample]["role"] == "data":
                message = f"sample {sample!r} is data; systematics vary the signal and background samples only"
                raise self.fail(("systematics", name, "samples", i), message)
        for side in ("up", "down"):
            if side not in syst:
                continue
            path, variation = ("systematics", name, side), syst[side]
            kinds = [k for k in variation if k not in ("seed", "generate")]
            if len(kinds) != 1:
                got = ", ".join(kinds) or f"only {' and '.join(k for k in ('seed', 'generate') if k in variation)}"
                raise self.fail(path, f"got {got}; expected exactly one of {', '.join(VARIATION_KINDS)}")
            if "seed" in variation and kinds != ["smear"]:
                raise self.fail((*path, "seed"), f"seed only applies to smear, not to {kinds[0]}")
            if "generate" in variation and kinds != ["files"]:
                raise self.fail((*path, "generate"), f"generate only applies to files, not to {kinds[0]}")
            if isinstance(variation[kinds[0]], dict) and not variation[kinds[0]]:
                raise self.fail((*path, kinds[0]), "is empty; expected at least one branch")
            if kinds == ["weight"]:
                self.event((*path, "weight"), variation["weight"], WEIGHT_FUNCTIONS)

    def measurement(self) -> None:
        measurement = self.data["measurement"]
        valid = [measurement["poi"], *self.data["systematics"]]
        for i, name in enumerate(measurement["fixed"]):
            if name not in valid:
                raise self.fail(("measurement", "fixed", i), f"unknown parameter {name!r}{closest(name, valid)}")
        for name, settings in measurement["parameters"].items():
            path = ("measurement", "parameters", name)
            if name not in valid:
                raise self.fail(path, f"unknown parameter {name!r}{closest(name, valid)}")
            bounds = settings.get("bounds", [])
            pairs = [bounds] if bounds and not isinstance(bounds[0], list) else bounds
            for low, high in pairs:
                if not low < high:
                    raise self.fail((*path, "bounds"), f"[{low}, {high}]: expected low < high")

    def unused_parameters(self) -> None:
        for name in self.params:
            if name in self.used:
                continue
            hint = ""
            for field_path, expr in self.expressions.items():
                others = [n for n in expr.names() if n not in self.params]
                close = difflib.get_close_matches(name, others, n=1, cutoff=0.8)
                if close:
                    hint = f" ({field_path} names {close[0]!r}: a typo?)"
                    break
            message = f"defined but not used by any expression{hint}; use it in cuts, flags or a region, or remove it"
            raise self.fail(("parameters", name), message)

    def execution(self) -> None:
        """``execution.scheduler``: a Dask address, and only with ``mode: dask``."""
        section = self.data.get("execution") or {}
        if section.get("scheduler") is None:
            return
        try:
            check_scheduler(section["scheduler"], "")
        except DiffhepError as err:
            raise self.fail(("execution", "scheduler"), str(err)) from None
        mode = section.get("mode", "memory")
        if mode != "dask":
            raise self.fail(
                ("execution", "scheduler"),
                f"is set but execution.mode is {mode!r}; set mode: dask, or remove scheduler",
            )


def _is_count(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "count"


def _counts(node: ast.AST) -> list[ast.Call]:
    """Every ``count(...)`` call in ``node``."""
    return [n for n in ast.walk(node) if _is_count(n)]  # type: ignore[misc]


def _exact_count(node: ast.Compare) -> bool:
    """Whether a single comparison is ``count(c) <op> N`` (or ``N <op> count(c)``), ``N`` a whole number >= 0.

    The form :func:`diffhep.engine.counting.count_condition` computes exactly.
    """
    left, right = node.left, node.comparators[0]
    if isinstance(left, ast.Constant):
        left, right = right, left
    if not (_is_count(left) and len(left.args) == 1 and isinstance(right, ast.Constant)):  # type: ignore[attr-defined]
        return False
    n = right.value
    return not isinstance(n, bool) and isinstance(n, (int, float)) and n >= 0 and float(n).is_integer()


def format_path(path: FieldPath) -> str:
    """``("samples", "ttbar", "files", 0)`` -> ``samples.ttbar.files[0]``.

    A key with a newline or another unprintable character is shown quoted (``['a\\nb']``):
    an error message stays one line.
    """
    text = ""
    for part in path:
        if isinstance(part, str) and not part.isprintable():
            text += f"[{part!r}]"
        else:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


_ADDRESS = re.compile(r"^(?:[a-z][a-z0-9+]*://)?(?:\[[0-9a-fA-F:]+\]|[^\s/:\[\]]+):\d{1,5}$")


def check_scheduler(address: object, where: str) -> str:
    """``address`` if it looks like a Dask scheduler address (``tcp://host:8786``), else a one-line error."""
    if not isinstance(address, str) or not _ADDRESS.match(address.strip()):
        message = (
            f"{where} {address!r} is not a Dask scheduler address; expected PROTOCOL://HOST:PORT such as "
            "tcp://10.0.0.1:8786 (from `dask scheduler`), or leave it out for a local cluster"
        )
        raise ConfigError(message.lstrip())
    return address.strip()
