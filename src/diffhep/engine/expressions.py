"""Config expressions as weights: soft (sigmoid) or hard (step) evaluation of a parsed tree.

An expression of an analysis config (``pt > jet_pt_min and abs(eta) < 2.4``)
is parsed once (by the whitelisting parser :func:`diffhep.config.expr.parse`) and evaluated many
times by an :class:`Evaluator`:

* numbers, ``+ - * / **``, unary ``-``, and the elementwise functions
  :data:`ELEMENTWISE` act on arrays (NumPy on the host, JAX in the step);
  ``bit(x, n)`` is 1 where bit ``n`` of the integer ``x`` is set (:meth:`Evaluator.bit`);
* a comparison with a parameter is a soft cut with the :data:`~diffhep.engine.backend.SOFT`
  backend, ``soft_above``/``soft_below`` with that parameter's slope (1/unit, already
  multiplied by the slope scale), and a step (0 or 1) with :data:`~diffhep.engine.backend.HARD`; a
  comparison without a parameter is always a step;
* a comparison with a parameter whose other names are all *discrete* (integer or
  boolean branches, :attr:`Evaluator.discrete`) is the step in both backends, with
  the sigmoid's gradient in the soft one (straight-through): an integer exactly on
  the cut gets the hard weight (``>=`` includes it, ``>`` excludes it), not 0.5;
* ``and`` multiplies weights, ``or`` is ``1 - (1 - a)(1 - b)``, ``not`` is
  ``1 - a`` (``diffhep.select.logic``; hard: steps); an operand that is not itself a
  condition (a bare field such as ``tightId``) counts as ``value != 0``.

What differs between the two paths is in the :class:`~diffhep.engine.backend.Backend`
the evaluator is given; the evaluator itself is written once.

Subclasses say what names and calls mean (object fields in
:mod:`diffhep.engine.objects`, event branches and reductions in
:mod:`diffhep.engine.regions`).
"""

from __future__ import annotations

import ast
import functools
import operator
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np

from diffhep.config import expr as config_expr
from diffhep.config.functions import BUILTINS, CORRECTION
from diffhep.config.functions import ELEMENTWISE as FUNCTION_TABLE_ELEMENTWISE
from diffhep.engine.backend import COMPARE, HARD, SOFT, Backend
from diffhep.errors import ConfigError, closest

__all__ = [
    "SOFT",
    "HARD",
    "ELEMENTWISE",
    "LEADING",
    "COMPARE",
    "split_compare",
    "bit_problem",
    "host_mask",
    "reads_only",
    "discrete_scope",
    "is_condition",
    "parse",
    "text",
    "names",
    "parameters_in",
    "Evaluator",
]

#: Elementwise functions allowed in every expression: name -> NumPy / jax.numpy function name
#: (the table is :data:`diffhep.config.functions.BUILTINS`).
ELEMENTWISE = FUNCTION_TABLE_ELEMENTWISE

#: Function of variation weights only (host, static): ``leading(jets.pt, i)`` is field ``pt`` of the
#: ``i``-th object of ``jets`` after its ``require`` and ``order``, 0 if the event has fewer
#: (:func:`diffhep.engine.loading.weight_refs`).
LEADING = "leading"

_ARITHMETIC = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}


def parse(source: Any, where: str) -> ast.expr:
    """Parse expression ``source`` (a string or number); ``where`` names it in errors.

    Returns the body of the ``ast.Expression`` of the config package's
    whitelisting parser.
    """
    source = str(source).strip()
    return config_expr.parse(source, where=where).tree.body


def text(node: ast.AST) -> str:
    """Source text of ``node`` (normalised)."""
    return ast.unparse(node)


def names(node: ast.AST) -> list[str]:
    """Names read by ``node``, in order of appearance (function names and the ``set.name`` of
    ``correction(set.name, ...)`` excluded)."""
    out: list[str] = []
    funcs = {id(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
    funcs |= {
        id(sub)
        for n in ast.walk(node)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == CORRECTION and n.args
        for sub in ast.walk(n.args[0])
    }
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and id(n) not in funcs and n.id not in out:
            out.append(n.id)
    return out


def parameters_in(node: ast.AST, parameters: Mapping[str, Any]) -> list[str]:
    """Parameter names read by ``node``, in order of appearance."""
    return [n for n in names(node) if n in parameters]


def reads_only(node: ast.AST, scope: Collection[str], parameters: Mapping[str, Any]) -> bool:
    """Whether ``node`` reads at least one name and every name it reads, parameters apart, is in ``scope``.

    Example:
        >>> reads_only(parse("abs(charge) >= q", "example"), {"charge"}, {"q": None})
        True
        >>> reads_only(parse("pt * charge > q", "example"), {"charge"}, {"q": None})
        False
    """
    read = [n for n in names(node) if n not in parameters]
    return bool(read) and all(n in scope for n in read)


def discrete_scope(discrete: Collection[str], obj: str | None = None) -> frozenset[str]:
    """The discrete names of one scope: fields of object ``obj`` (``"muons.charge"`` -> ``charge``),
    or event branches (``obj`` ``None``: the names without a dot).

    Example:
        >>> sorted(discrete_scope(["muons.charge", "nTag"], "muons")), sorted(discrete_scope(["muons.charge", "nTag"]))
        (['charge'], ['nTag'])
    """
    if obj is None:
        return frozenset(n for n in discrete if "." not in n)
    return frozenset(n.partition(".")[2] for n in discrete if n.partition(".")[0] == obj)


def is_condition(node: ast.AST) -> bool:
    """Whether ``node`` already evaluates to a weight in [0, 1] (a comparison or logic)."""
    return isinstance(node, (ast.Compare, ast.BoolOp)) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
    )


class Evaluator:
    """Evaluate a parsed expression to values or weights.

    Args:
        parameters: parameter name -> anything (only the names matter here).
        cuts: parameter name -> cut value (JAX or float); ``None`` where
            parameters are not allowed (``require``).
        slopes: parameter name -> slope (1/unit) times the slope scale.
        backend: :data:`SOFT` (JAX, sigmoids) or :data:`HARD` (NumPy, steps).
        functions: plugin functions, name -> callable on arrays.
        where: what is evaluated, for error messages.
        discrete: names (fields or event branches) whose values are discrete, read
            from integer or boolean branches (static); a comparison of only these
            with a parameter is the step forward with the sigmoid's gradient.
    """

    def __init__(
        self,
        *,
        parameters: Mapping[str, Any],
        cuts: Mapping[str, Any] | None,
        slopes: Mapping[str, Any],
        backend: Backend,
        functions: Mapping[str, Callable[..., Any]],
        where: str,
        discrete: Collection[str] = frozenset(),
    ):
        self.parameters = parameters
        self.discrete = frozenset(discrete)
        self.cuts = cuts
        self.slopes = slopes
        self.backend = backend
        self.functions = functions
        self.where = where

    def error(self, node: ast.AST, message: str) -> ConfigError:
        """A one-line :class:`ConfigError` naming the expression."""
        return ConfigError(f"{self.where}: {message} (in {text(node)!r})")

    # -- dispatch ---------------------------------------------------------
    def __call__(self, node: ast.AST) -> Any:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise self.error(node, f"{type(node).__name__} is not allowed")
        return method(node)

    def weight(self, node: ast.AST) -> Any:
        """``node`` as a weight: conditions as they are, other values as ``value != 0``."""
        value = self(node)
        return value if self.is_condition(node) else self.step(value != 0)

    def is_condition(self, node: ast.AST) -> bool:
        """Whether ``node`` evaluates to a weight (subclasses add probabilities)."""
        return is_condition(node)

    @property
    def xp(self) -> Any:
        """The array namespace of the backend, ``jax.numpy`` or ``numpy``."""
        return self.backend.xp

    def step(self, mask: Any) -> Any:
        """1.0 where ``mask`` else 0.0."""
        return self.backend.step(mask)

    # -- leaves -----------------------------------------------------------
    def visit_Constant(self, node: ast.Constant) -> float:
        if isinstance(node.value, bool) or isinstance(node.value, (int, float)):
            return float(node.value)
        raise self.error(node, f"constant {node.value!r} is not a number")

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in self.parameters:
            if self.cuts is None:
                raise self.error(
                    node,
                    f"parameter {node.id!r} is not allowed here (this is a fixed, hard "
                    "requirement; put cuts on parameters under 'cuts')",
                )
            return self.cuts[node.id]
        return self.name(node)

    def name(self, node: ast.Name) -> Any:
        """Value of a non-parameter name (subclasses)."""
        raise self.error(node, f"unknown name {node.id!r}")

    # -- arithmetic and logic ---------------------------------------------
    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        if isinstance(node.op, ast.Not):
            value = self.weight(node.operand)
            return self.backend.not_(value)
        value = self(node.operand)
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return value
        raise self.error(node, f"operator {type(node.op).__name__} is not allowed")

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        op = _ARITHMETIC.get(type(node.op))
        if op is None:
            raise self.error(node, f"operator {type(node.op).__name__} is not allowed")
        return op(self(node.left), self(node.right))

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        if isinstance(node.op, ast.And):
            return self.conjunction(list(node.values))
        result = self.weight(node.values[0])
        for value in node.values[1:]:
            result = self.or_(result, self.weight(value))
        return result

    def conjunction(self, nodes: list[ast.expr]) -> Any:
        """Weight of ``nodes[0] and nodes[1] and ...`` (subclasses combine counts jointly)."""
        result = self.weight(nodes[0])
        for node in nodes[1:]:
            result = self.and_(result, self.weight(node))
        return result

    def and_(self, a: Any, b: Any) -> Any:
        """Soft AND (a product); hard: both non-zero."""
        return self.backend.and_(a, b)

    def or_(self, a: Any, b: Any) -> Any:
        """Soft OR ``1 - (1 - a)(1 - b)``; hard: either non-zero."""
        return self.backend.or_(a, b)

    # -- comparisons --------------------------------------------------------
    def visit_Compare(self, node: ast.Compare) -> Any:
        if len(node.ops) == 1:
            return self.compare(node)
        return self.conjunction(list(split_compare(node)))

    def compare(self, node: ast.Compare) -> Any:
        """Weight of a single (unchained) comparison ``left op right``."""
        left, op, right = node.left, node.ops[0], node.comparators[0]
        discrete = reads_only(node, self.discrete, self.parameters)
        return self.compare_values(self(left), op, self(right), self.slope(node), discrete=discrete)

    def slope(self, node: ast.AST) -> Any | None:
        """Slope of the first parameter read by ``node``, or ``None`` if it reads none."""
        found = parameters_in(node, self.parameters)
        return self.slopes[found[0]] if found else None

    def compare_values(self, a: Any, op: ast.cmpop, b: Any, slope: Any | None, *, discrete: bool = False) -> Any:
        """``a op b`` as a weight: sigmoid with ``slope`` (soft backend), else a step; ``discrete``:
        the step forward with the sigmoid's gradient (:meth:`~diffhep.engine.backend.Backend.compare`)."""
        if slope is not None and isinstance(op, (ast.Eq, ast.NotEq)):
            raise ConfigError(f"{self.where}: '==' and '!=' cannot compare with a parameter (use < or >)")
        return self.backend.compare(a, op, b, slope, discrete=discrete)

    # -- calls ----------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise self.error(node, "only calls of named functions with positional arguments are allowed")
        return self.call(node.func.id, node)

    def call(self, name: str, node: ast.Call) -> Any:
        """Elementwise functions and plugins (subclasses add reductions)."""
        if name == "bit":
            return self.bit(node)
        if name in ELEMENTWISE:
            low, high = BUILTINS[name].arity
            low = max(low, 2) if "reduction" in BUILTINS[name].kinds else low  # min(x) alone reduces objects
            if not low <= len(node.args) <= high:
                raise self.error(node, f"{name}() takes {low} to {high} argument(s), got {len(node.args)}")
            function = getattr(self.xp, ELEMENTWISE[name])
            args = [self(a) for a in node.args]
            return functools.reduce(function, args) if len(args) > 2 else function(*args)  # min(a, b, c)
        if name in self.functions:
            return self.functions[name](*(self(a) for a in node.args))
        known = [*ELEMENTWISE, "bit", *self.functions]
        raise self.error(node, f"unknown function {name!r}{closest(name, known)}")

    def bit(self, node: ast.Call) -> Any:
        """``bit(x, n)``: 1.0 where bit ``n`` (0: the lowest) of the integer ``x`` is set, else 0.0.

        A static step in both backends (no parameter), ``floor(x / 2**n)`` odd: an
        integer branch read as floats is fine (exact below 2**24 in float32).
        Values on the host (``require``, the hard path) that are not integers are
        a one-line :class:`ConfigError`; traced values cannot be checked.
        """
        problem = bit_problem(node, self.parameters)
        if problem:
            raise self.error(node, problem)
        x, n = node.args
        value = self(x)
        if isinstance(value, (np.ndarray, np.generic, float)):
            fraction = np.asarray(value) % 1
            if np.any(fraction != 0):
                example = np.asarray(value).flat[int(np.argmax(fraction.ravel() != 0))]
                raise self.error(
                    node, f"bit() needs integer values (an ID bitmask such as jetId): {text(x)!r} is {float(example):g}"
                )
        return self.step(self.xp.floor_divide(value, 2**n.value) % 2 != 0)


def bit_problem(node: ast.Call, parameters: Mapping[str, Any]) -> str | None:
    """What is wrong with the arguments of a call ``bit(x, n)``, or ``None``.

    Example:
        >>> bit_problem(parse("bit(jetId, 2)", "example"), {}) is None
        True
        >>> bit_problem(parse("bit(jetId, n)", "example"), {"n": None})
        'bit(x, n) takes a value and a bit number n from 0 to 30, like bit(jetId, 2)'
    """
    x, n = node.args if len(node.args) == 2 else (None, None)
    if not (isinstance(n, ast.Constant) and type(n.value) is int and 0 <= n.value <= 30):
        return "bit(x, n) takes a value and a bit number n from 0 to 30, like bit(jetId, 2)"
    if parameters_in(x, parameters):
        return "bit() tests fixed integer values such as an ID bitmask: no parameters"
    return None


def split_compare(node: ast.Compare) -> list[ast.Compare]:
    """``a < b <= c`` -> ``[a < b, b <= c]`` (single comparisons, same nodes).

    Example:
        >>> [text(c) for c in split_compare(parse("1 <= count(jets) < 4", "example"))]
        ['1 <= count(jets)', 'count(jets) < 4']
    """
    operands = [node.left, *node.comparators]
    return [ast.Compare(left=operands[i], ops=[op], comparators=[operands[i + 1]]) for i, op in enumerate(node.ops)]


def host_mask(evaluator: Evaluator, node: ast.AST) -> np.ndarray:
    """Boolean mask of a hard condition evaluated with NumPy (``require``)."""
    return np.asarray(evaluator.weight(node)) > 0
