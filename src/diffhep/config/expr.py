"""The safe expression language of the configs: parse, inspect, evaluate.

An expression (``pt > jet_pt_min and abs(eta) < 2.4``, ``sum(jets.pt)``) is
parsed with :func:`ast.parse` and then walked against a strict whitelist:
numbers, names, ``+ - * / **``, unary ``+ - not``, comparisons
``< <= > >= == !=`` (chains included), ``and``/``or``, one-level attributes
(``jets.btag``) and calls of a plain function name with positional arguments;
quoted strings only as arguments of ``correction(set.name, "up", ...)`` (the string
inputs of a correctionlib correction). Everything else is refused with a one-line :class:`~diffhep.errors.ConfigError`
naming the piece and its column. Nothing is ever passed to ``eval``.
Expressions longer than :data:`MAX_EXPRESSION_LENGTH` characters or nested
deeper than :data:`MAX_EXPRESSION_DEPTH` levels are refused (every walk of the
tree recurses), and so are numbers and constant arithmetic outside the float
range (``9**9**9`` would keep Python's integers busy for hours).

:func:`evaluate` walks a parsed :class:`Expr` over a namespace of values; the
meaning of comparisons and of ``and``/``or``/``not`` is given by hooks so that
the engine can make them soft (sigmoids) or hard (step functions).

Example:
    >>> e = parse("pt > cut and abs(eta) < 2.4")
    >>> e.names(), e.functions()
    (('pt', 'cut', 'eta'), ('abs',))
    >>> bool(evaluate(e, {"pt": 40.0, "cut": 30, "eta": -1.0}, {"abs": abs}))
    True
"""

from __future__ import annotations

import ast
import math
import operator
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from diffhep.config.functions import BUILTIN_FUNCTIONS, CORRECTION, EVENT_FUNCTIONS, OBJECT_FUNCTIONS
from diffhep.errors import ConfigError, closest

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "MAX_EXPRESSION_DEPTH",
    "Expr",
    "Logic",
    "BitwiseLogic",
    "parse",
    "evaluate",
    "OBJECT_FUNCTIONS",
    "EVENT_FUNCTIONS",
    "BUILTIN_FUNCTIONS",
]

#: Longest expression, in characters.
MAX_EXPRESSION_LENGTH = 10_000
#: Deepest expression tree, in levels of the parsed tree (``a + b + c`` is 3 deep, a name 2).
MAX_EXPRESSION_DEPTH = 100
_ALLOWED = "only names, numbers, arithmetic, comparisons, and/or/not and calls of known functions"
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_CMPOPS: dict[type, str] = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Expr:
    """A parsed, whitelisted expression.

    Attributes:
        text: the expression as written (newlines and tabs become spaces).
        tree: the :class:`ast.Expression`; compared and hashed by ``text`` only.
        where: the config field it came from (``objects.jets.cuts``), for errors.
    """

    text: str
    tree: ast.Expression = field(compare=False, repr=False)
    where: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.text

    def _walk(self) -> list[ast.AST]:
        return list(ast.walk(self.tree))

    def names(self) -> tuple[str, ...]:
        """Free names in order of appearance: not function names, not attribute bases.

        >>> parse("count(jets.btag) >= 1 and MET_pt > met_min").names()
        ('MET_pt', 'met_min')
        """
        skip = {id(n.func) for n in self._walk() if isinstance(n, ast.Call)}
        skip |= {id(n.value) for n in self._walk() if isinstance(n, ast.Attribute)}
        return _unique(n.id for n in _ordered(self.tree) if isinstance(n, ast.Name) and id(n) not in skip)

    def functions(self) -> tuple[str, ...]:
        """Called function names in order of appearance.

        >>> parse("max(abs(eta), 1) < 2").functions()
        ('max', 'abs')
        """
        return _unique(n.func.id for n in _ordered(self.tree) if isinstance(n, ast.Call))  # type: ignore[attr-defined]

    def attributes(self) -> tuple[tuple[str, str], ...]:
        """``(base, attribute)`` pairs in order of appearance.

        >>> parse("trijet_mass(jets, jets.btag) + sum(jets.pt)").attributes()
        (('jets', 'btag'), ('jets', 'pt'))
        """
        nodes = [n for n in _ordered(self.tree) if isinstance(n, ast.Attribute)]
        return tuple(dict.fromkeys((n.value.id, n.attr) for n in nodes))  # type: ignore[attr-defined]


def _ordered(tree: ast.AST) -> list[ast.AST]:
    """Nodes in source order (depth first, left to right)."""
    out: list[ast.AST] = []

    def visit(node: ast.AST) -> None:
        out.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def _unique(items: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def parse(text: str, *, where: str = "") -> Expr:
    """Parse and whitelist an expression; raise :class:`ConfigError` on anything else.

    Args:
        text: the expression.
        where: field path put in front of error messages (``objects.jets.cuts``).

    Example:
        >>> parse("pt.__class__", where="objects.jets.cuts")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        diffhep.errors.ConfigError: objects.jets.cuts: 'pt.__class__' is not allowed in an expression (column 1; ...
    """
    key = where or None
    if not isinstance(text, str):
        raise ConfigError(f"expected an expression (text), got {text!r}", key=key)
    flat = text.replace("\n", " ").replace("\r", " ").replace("\t", " ").strip()
    if not flat:
        raise ConfigError("empty expression; expected e.g. 'pt > 30'", key=key)
    if len(flat) > MAX_EXPRESSION_LENGTH:
        message = (
            f"expression {flat[:40]!r}... has {len(flat):,} characters; expected at most {MAX_EXPRESSION_LENGTH:,}"
        )
        raise ConfigError(message + " (MAX_EXPRESSION_LENGTH)", key=key)
    tree = _PARSED.get(flat)
    if tree is None:
        try:
            tree = ast.parse(flat, mode="eval")
        except SyntaxError as exc:
            column = f" (column {exc.offset})" if exc.offset and exc.offset <= len(flat) else " (at the end)"
            raise ConfigError(f"invalid expression {_short(flat)}: {exc.msg}{column}", key=key) from None
        except (RecursionError, MemoryError):
            raise ConfigError(f"invalid expression {_short(flat)}: {_TOO_DEEP}", key=key) from None
        except ValueError as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"invalid expression {_short(flat)}: {first}", key=key) from None
        if _depth(tree.body) > MAX_EXPRESSION_DEPTH:
            raise ConfigError(f"invalid expression {_short(flat)}: {_TOO_DEEP}", key=key)
        _check(tree.body, flat, key)
        _constant(tree.body, flat, key)
        if len(_PARSED) < _PARSED_MAX:
            _PARSED[flat] = tree
    return Expr(flat, tree, where)


#: Whitelisted trees by expression text: the loader parses every expression of a config once,
#: and the engine, asking for the same text again, gets the same (never mutated) tree.
_PARSED: dict[str, ast.Expression] = {}
_PARSED_MAX = 100_000


_TOO_DEEP = (
    f"nested deeper than {MAX_EXPRESSION_DEPTH} levels (MAX_EXPRESSION_DEPTH); split it, "
    "e.g. into object flags, or use fewer operators in a row"
)


def _short(text: str) -> str:
    """``text`` quoted, its first 60 characters when longer."""
    return repr(text) if len(text) <= 60 else f"{text[:60]!r}..."


def _depth(root: ast.AST) -> int:
    """Levels of the tree, counted without recursion (the tree may be thousands deep)."""
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_EXPRESSION_DEPTH:
            break
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _constant(node: ast.AST, text: str, key: str | None) -> float | None:
    """The value of a constant subtree in float arithmetic (None if it names anything).

    Refuses numbers and constant arithmetic outside the float range, a constant
    division by zero and a complex result: the evaluator computes constants with
    Python's exact integers, which would take hours for ``9**9**9``.
    """
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):  # an input of correction(), not arithmetic
            return None
        if isinstance(node.value, int) and not isinstance(node.value, bool) and abs(node.value) > _MAX_INT:
            raise _refuse(node, text, key, "is a number beyond the float range, +-1.8e308")
        return float(node.value)
    values = [_constant(child, text, key) for child in ast.iter_child_nodes(node)]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) and values[-1] is not None:
        return -values[-1] if isinstance(node.op, ast.USub) else values[-1]
    if isinstance(node, ast.Compare):  # 1 / (0 < 0) divides by zero too: a constant comparison is 0.0 or 1.0
        operands = [
            values[0],
            *(v for v, child in zip(values, ast.iter_child_nodes(node)) if child in node.comparators),
        ]
        if None in operands:
            return None
        pairs = zip(node.ops, operands[:-1], operands[1:])
        return float(all(_COMPARE[_CMPOPS[type(op)]](a, b) for op, a, b in pairs))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and values[-1] == 0:  # x / 0 too
        raise _refuse(node, text, key, "divides by zero")
    if not isinstance(node, ast.BinOp) or values[0] is None or values[-1] is None:
        return None
    try:
        value = _BINOPS[type(node.op)](values[0], values[-1])
    except ZeroDivisionError:
        raise _refuse(node, text, key, "divides by zero") from None
    except OverflowError:
        value = math.inf
    if isinstance(value, complex):
        raise _refuse(node, text, key, "is not a real number")
    if not math.isfinite(value):
        raise _refuse(node, text, key, "is beyond the float range, +-1.8e308; expected smaller constants")
    return value


def _refuse(node: ast.AST, text: str, key: str | None, why: str) -> ConfigError:
    """``'9**9**9' (column 5) is beyond the float range...``: a constant the expression cannot use."""
    piece = ast.get_source_segment(text, node) or type(node).__name__
    shown = repr(piece) if len(piece) <= 60 else f"{piece[:60]!r}..."
    return ConfigError(f"{shown} (column {node.col_offset + 1}) {why}", key=key)  # type: ignore[attr-defined]


_MAX_INT = int(sys.float_info.max)


def _reject(node: ast.AST, text: str, key: str | None, why: str = "") -> ConfigError:
    piece = ast.get_source_segment(text, node) or type(node).__name__
    column = getattr(node, "col_offset", None)
    details = [f"column {column + 1}"] if column is not None else []
    details += [why] if why else []
    at = f" ({'; '.join(details)})" if details else ""
    return ConfigError(f"{piece!r} is not allowed in an expression{at}: {_ALLOWED}", key=key)


def _check_name(node: ast.AST, name: str, text: str, key: str | None) -> None:
    if name.startswith("__"):
        raise _reject(node, text, key, "names starting with '__' are reserved")


def _check(node: ast.AST, text: str, key: str | None) -> None:
    """Recursively refuse every node outside the whitelist."""
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise _reject(node, text, key, "operator not allowed")
        children = [node.left, node.right]
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
            raise _reject(node, text, key, "operator not allowed")
        children = [node.operand]
    elif isinstance(node, ast.BoolOp):
        children = list(node.values)
    elif isinstance(node, ast.Compare):
        if any(type(op) not in _CMPOPS for op in node.ops):
            raise _reject(node, text, key, "comparison not allowed")
        children = [node.left, *node.comparators]
    elif isinstance(node, ast.Name):
        _check_name(node, node.id, text, key)
        children = []
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, (bool, int, float)):
            raise _reject(node, text, key, "only numbers and True/False are constants")
        children = []
    elif isinstance(node, ast.Attribute):
        if not isinstance(node.value, ast.Name):
            raise _reject(node, text, key, "only name.name attributes")
        _check_name(node, node.value.id, text, key)
        _check_name(node, node.attr, text, key)
        children = []
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.keywords:
            why = "keyword arguments" if node.keywords else "only calls of a function name"
            raise _reject(node, text, key, why)
        _check_name(node, node.func.id, text, key)
        children = list(node.args)
        if node.func.id == CORRECTION:  # its string inputs ("btag_var", "up"): the only strings allowed
            children = [a for a in children if not (isinstance(a, ast.Constant) and isinstance(a.value, str))]
    else:
        raise _reject(node, text, key)
    for child in children:
        if isinstance(child, ast.Starred):
            raise _reject(child, text, key)
        _check(child, text, key)


class Logic(Protocol):
    """The ``and``/``or``/``not`` hook of :func:`evaluate`: three binary/unary functions."""

    def and_(self, left: Any, right: Any) -> Any: ...

    def or_(self, left: Any, right: Any) -> Any: ...

    def not_(self, value: Any) -> Any: ...


class BitwiseLogic:
    """Default logic: Python ``and/or/not`` for plain bools, ``& | ~`` otherwise (arrays).

    >>> import numpy as np
    >>> BitwiseLogic().and_(np.array([True, False]), np.array([True, True]))
    array([ True, False])
    >>> BitwiseLogic().not_(True)
    False
    """

    def and_(self, left: Any, right: Any) -> Any:
        return left and right if _plain(left, right) else left & right

    def or_(self, left: Any, right: Any) -> Any:
        return left or right if _plain(left, right) else left | right

    def not_(self, value: Any) -> Any:
        return not value if isinstance(value, bool) else ~value


def _plain(*values: Any) -> bool:
    return all(isinstance(v, bool) for v in values)


def _default_compare(op: str, left: Any, right: Any) -> Any:
    return _COMPARE[op](left, right)


def evaluate(
    expr: Expr | str,
    namespace: Mapping[str, Any],
    functions: Mapping[str, Callable[..., Any]],
    *,
    compare: Callable[[str, Any, Any], Any] | None = None,
    logic: Logic | None = None,
) -> Any:
    """Evaluate a parsed expression by walking its tree (never ``eval``).

    Names are looked up in ``namespace``; ``a.b`` is ``namespace["a.b"]`` if that
    key exists, else ``namespace["a"]["b"]`` for a mapping, else
    ``getattr(namespace["a"], "b")`` (awkward records). Numbers stay Python
    ints/floats; arithmetic uses the operators of the values (NumPy, JAX and
    Awkward arrays work); calls look up ``functions``.

    Args:
        expr: an :class:`Expr` (or text, parsed first).
        namespace: name -> value.
        functions: function name -> callable, called with positional arguments.
        compare: ``compare(op, left, right)`` with ``op`` one of
            ``"<" "<=" ">" ">=" "==" "!="``; default ``left < right`` etc. A
            chain ``a < x < b`` is ``logic.and_(compare("<", a, x), compare("<", x, b))``.
        logic: an object with ``and_(a, b)``, ``or_(a, b)`` and ``not_(a)``;
            default :class:`BitwiseLogic`.

    Example (soft cuts through the hooks):
        >>> import numpy as np
        >>> class Soft:
        ...     def and_(self, a, b): return a * b
        ...     def or_(self, a, b): return 1 - (1 - a) * (1 - b)
        ...     def not_(self, a): return 1 - a
        >>> def sigmoid(op, left, right):
        ...     d = left - right if op in (">", ">=") else right - left
        ...     return 1 / (1 + np.exp(-d))
        >>> pt = np.array([10.0, 30.0, 45.0])
        >>> w = evaluate("pt > 30 and not pt > 40", {"pt": pt}, {}, compare=sigmoid, logic=Soft())
        >>> np.round(w, 3).tolist()
        [0.0, 0.5, 0.007]
        >>> evaluate("10 < pt <= 40", {"pt": pt}, {})
        array([False,  True, False])
    """
    if isinstance(expr, str):
        expr = parse(expr)
    walker = _Evaluator(expr, namespace, functions, compare or _default_compare, logic or BitwiseLogic())
    return walker.visit(expr.tree.body)


@dataclass
class _Evaluator:
    expr: Expr
    namespace: Mapping[str, Any]
    functions: Mapping[str, Callable[..., Any]]
    compare: Callable[[str, Any, Any], Any]
    logic: Logic

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{message} in expression {self.expr.text!r}", key=self.expr.where or None)

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in self.namespace:
                raise self.error(f"unknown name {node.id!r}{closest(node.id, self.namespace)}")
            return self.namespace[node.id]
        if isinstance(node, ast.Attribute):
            return self.attribute(node.value.id, node.attr)  # type: ignore[attr-defined]
        if isinstance(node, ast.BinOp):
            return _BINOPS[type(node.op)](self.visit(node.left), self.visit(node.right))
        if isinstance(node, ast.UnaryOp):
            value = self.visit(node.operand)
            if isinstance(node.op, ast.Not):
                return self.logic.not_(value)
            return -value if isinstance(node.op, ast.USub) else +value
        if isinstance(node, ast.BoolOp):
            combine = self.logic.and_ if isinstance(node.op, ast.And) else self.logic.or_
            result = self.visit(node.values[0])
            for value in node.values[1:]:
                result = combine(result, self.visit(value))
            return result
        if isinstance(node, ast.Compare):
            left = self.visit(node.left)
            result = None
            for op, right_node in zip(node.ops, node.comparators):
                right = self.visit(right_node)
                step = self.compare(_CMPOPS[type(op)], left, right)
                result = step if result is None else self.logic.and_(result, step)
                left = right
            return result
        if isinstance(node, ast.Call):
            name = node.func.id  # type: ignore[attr-defined]
            if name not in self.functions:
                raise self.error(f"unknown function {name!r}{closest(name, self.functions)}")
            return self.functions[name](*(self.visit(arg) for arg in node.args))
        raise self.error(f"cannot evaluate {type(node).__name__}")  # unreachable after parse()

    def attribute(self, base: str, attr: str) -> Any:
        key = f"{base}.{attr}"
        if key in self.namespace:
            return self.namespace[key]
        if base not in self.namespace:
            raise self.error(f"unknown name {base!r}{closest(base, self.namespace)}")
        value = self.namespace[base]
        if isinstance(value, Mapping):
            if attr not in value:
                raise self.error(f"unknown attribute {key!r}{closest(attr, value)}")
            return value[attr]
        try:
            return getattr(value, attr)
        except AttributeError:
            raise self.error(f"unknown attribute {key!r}") from None
