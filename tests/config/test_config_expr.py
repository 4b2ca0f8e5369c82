"""The config expression language: whitelist, inspection, evaluation, hooks, registry."""

from __future__ import annotations

import ast

import numpy as np
import pytest

from diffhep.config import FUNCTIONS, BitwiseLogic, Expr, evaluate, parse, register
from diffhep.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_registry():
    """Leave the plugin registry as it was."""
    before = dict(FUNCTIONS)
    yield
    FUNCTIONS.clear()
    FUNCTIONS.update(before)


ACCEPTED = [
    "pt > 30",
    "a + b * c - d / e ** 2",
    "-x",
    "+x",
    "not x",
    "a and b or c",
    "1 < x <= 2",
    "x == 1 or x != 2 or x >= 3",
    "abs(eta) < 2.4",
    "f()",
    "f(g(x), 2.5)",
    "jets.btag",
    "count(jets.btag) >= 2 and sum(jets.pt) > ht_min",
    "True",
    "1.5e3",
    "_private_name",
    "(a + b) * (c - d)",
    "abs(eta)\n  < 2.4",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepted(text: str) -> None:
    expr = parse(text)
    assert isinstance(expr, Expr) and isinstance(expr.tree, ast.Expression)
    assert "\n" not in expr.text


REJECTED = [  # (expression, offending piece, its column)
    ("__import__('os')", "__import__('os')", 1),
    ("().__class__", "().__class__", 1),
    ("x.__class__", "x.__class__", 1),
    ("__builtins__", "__builtins__", 1),
    ("open('x')", "'x'", 6),
    ("getattr(x, 'y')", "'y'", 12),
    ("x[0]", "x[0]", 1),
    ("lambda: 1", "lambda: 1", 1),
    ("'str'", "'str'", 1),
    ("f'{x}'", "f'{x}'", 1),
    ("[x for x in y]", "[x for x in y]", 1),
    ("(y := 1)", "y := 1", 2),
    ("a.b.c", "a.b.c", 1),
    ("f.g(x)", "f.g(x)", 1),
    ("a % b", "a % b", 1),
    ("a // b", "a // b", 1),
    ("a @ b", "a @ b", 1),
    ("a | b", "a | b", 1),
    ("a & b", "a & b", 1),
    ("~a", "~a", 1),
    ("a << 1", "a << 1", 1),
    ("x in y", "x in y", 1),
    ("x is None", "x is None", 1),
    ("f(x=1)", "f(x=1)", 1),
    ("f(*x)", "*x", 3),
    ("f(**x)", "f(**x)", 1),
    ("x if y else z", "x if y else z", 1),
    ("(a, b)", "(a, b)", 1),
    ("[1]", "[1]", 1),
    ("{1: 2}", "{1: 2}", 1),
    ("{1}", "{1}", 1),
    ("None", "None", 1),
    ("1j", "1j", 1),
    ("b'x'", "b'x'", 1),
    ("...", "...", 1),
    ("pt > 3 and (lambda: 1)()", "(lambda: 1)()", 12),
]


@pytest.mark.parametrize(("text", "piece", "column"), REJECTED)
def test_rejected(text: str, piece: str, column: int) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, where="objects.jets.cuts")
    message = str(info.value)
    assert message.startswith(f"objects.jets.cuts: {piece!r}"), message
    assert f"is not allowed in an expression (column {column}" in message
    assert message.endswith("and/or/not and calls of known functions")
    assert "\n" not in message


@pytest.mark.parametrize("text", ["import os", "a = 1", "a; b", "pt >", "(a", "", "   ", "a b"])
def test_syntax_errors(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^regions\.sr\.select: (invalid|empty) expression"):
        parse(text, where="regions.sr.select")


def test_not_text() -> None:
    with pytest.raises(ConfigError, match="expected an expression"):
        parse(3)  # type: ignore[arg-type]


def test_error_example_from_the_brief() -> None:
    with pytest.raises(ConfigError) as info:
        parse("pt > 3 and pt.__class__ < 1", where="objects.jets.cuts")
    assert str(info.value).startswith("objects.jets.cuts: 'pt.__class__' is not allowed in an expression (column 12")


def test_inspection() -> None:
    expr = parse("count(jets.btag) >= 1 and max(abs(eta), x) < cut and trijet_mass(jets, jets.btag) > 0 and cut > 1")
    assert expr.names() == ("eta", "x", "cut", "jets")
    assert expr.functions() == ("count", "max", "abs", "trijet_mass")
    assert expr.attributes() == (("jets", "btag"),)
    assert str(expr) == expr.text
    assert parse("a+b") == parse("a+b") and hash(parse("a+b")) == hash(parse("a+b"))
    assert parse("a+b") != parse("a + b")


def test_evaluate_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    pt, eta = rng.exponential(30.0, 100), rng.normal(0.0, 2.0, 100)
    functions = {"abs": np.abs, "sqrt": np.sqrt, "max": np.maximum}
    namespace = {"pt": pt, "eta": eta, "cut": 25.0}
    got = evaluate(parse("sqrt(pt ** 2 + 4) / 2 - -eta * 3"), namespace, functions)
    np.testing.assert_allclose(got, np.sqrt(pt**2 + 4) / 2 + eta * 3)
    mask = evaluate("pt > cut and abs(eta) < 2.4 or not max(pt, eta) >= 100", namespace, functions)
    np.testing.assert_array_equal(mask, ((pt > 25.0) & (np.abs(eta) < 2.4)) | ~(np.maximum(pt, eta) >= 100))
    window = evaluate("10 < pt <= 40 != eta", namespace, functions)
    np.testing.assert_array_equal(window, (10 < pt) & (pt <= 40) & (pt != eta))


def test_evaluate_numbers_and_bools() -> None:
    assert evaluate("2 ** 3 + 1", {}, {}) == 9 and isinstance(evaluate("2 ** 3 + 1", {}, {}), int)
    assert evaluate("1 / 4", {}, {}) == 0.25
    assert evaluate("True and not False", {}, {}) is True
    assert evaluate("x < 1 or x > 2", {"x": 3}, {}) is True


def test_evaluate_attributes() -> None:
    class Record:
        pt = np.array([1.0, 2.0])

    assert evaluate("jets.btag + 1", {"jets.btag": 1.0}, {}) == 2.0
    assert evaluate("jets.pt * 2", {"jets": {"pt": 3.0}}, {}) == 6.0
    np.testing.assert_array_equal(evaluate("jets.pt", {"jets": Record()}, {}), [1.0, 2.0])
    with pytest.raises(ConfigError, match=r"unknown attribute 'jets\.eta'"):
        evaluate("jets.eta", {"jets": Record()}, {})
    with pytest.raises(ConfigError, match=r"unknown attribute 'jets\.ptt' \(did you mean 'pt'\?\)"):
        evaluate("jets.ptt", {"jets": {"pt": 1.0}}, {})


def test_evaluate_unknown_names() -> None:
    expr = parse("ptt > 3", where="objects.jets.cuts")
    with pytest.raises(ConfigError) as info:
        evaluate(expr, {"pt": 1.0, "eta": 0.0}, {})
    assert str(info.value) == "objects.jets.cuts: unknown name 'ptt' (did you mean 'pt'?) in expression 'ptt > 3'"
    with pytest.raises(ConfigError, match=r"unknown function 'open'; expected one of: abs"):
        evaluate("open(x)", {"x": 1}, {"abs": abs})


def test_hooks_receive_operators() -> None:
    calls: list[tuple] = []

    def compare(op: str, left, right):
        calls.append(("compare", op, left, right))
        return 0.5

    class Record:
        def and_(self, a, b):
            calls.append(("and", a, b))
            return a * b

        def or_(self, a, b):
            calls.append(("or", a, b))
            return a + b

        def not_(self, a):
            calls.append(("not", a))
            return 1 - a

    result = evaluate("1 < x <= 3 or not x == 2", {"x": 2}, {}, compare=compare, logic=Record())
    assert result == 0.25 + 0.5
    assert calls == [
        ("compare", "<", 1, 2),
        ("compare", "<=", 2, 3),
        ("and", 0.5, 0.5),
        ("compare", "==", 2, 2),
        ("not", 0.5),
        ("or", 0.25, 0.5),
    ]
    ops = []
    evaluate(
        "a > b and a >= b and a < b and a <= b and a == b and a != b",
        {"a": 1, "b": 2},
        {},
        compare=lambda op, left, right: ops.append(op) or True,
    )
    assert ops == [">", ">=", "<", "<=", "==", "!="]


def test_bitwise_logic_on_arrays_and_bools() -> None:
    logic = BitwiseLogic()
    a, b = np.array([True, False, True]), np.array([True, True, False])
    np.testing.assert_array_equal(logic.and_(a, b), a & b)
    np.testing.assert_array_equal(logic.or_(a, b), a | b)
    np.testing.assert_array_equal(logic.not_(a), ~a)
    assert logic.and_(True, False) is False and logic.or_(False, True) is True and logic.not_(False) is True


def test_register() -> None:
    @register("twice_value")
    def twice(x):
        return 2 * x

    assert FUNCTIONS["twice_value"].__wrapped__ is twice  # wrapped: its errors name the plugin
    assert evaluate("twice_value(x) + 1", {"x": 4}, FUNCTIONS) == 9
    with pytest.raises(ConfigError, match=r"'twice_value' is registered twice \(first by .*twice\)"):
        register("twice_value")(lambda x: x)

    @register("twice_value")  # the same function defined again (a re-run notebook cell) replaces it
    def twice(x):  # noqa: F811
        return 2.0 * x

    assert FUNCTIONS["twice_value"].__wrapped__ is twice
    with pytest.raises(ConfigError, match="'count' is a built-in function"):
        register("count")
    with pytest.raises(ConfigError, match="not a valid function name"):
        register("no spaces")


@pytest.mark.parametrize("text", ["0 / -(0 < 0)", "1 / (2 < 1 < 3)", "MET_pt / (1 > 2)", "MET_pt / 0"])
def test_division_by_a_constant_zero_is_refused(text):
    """A comparison of constants is a constant: ``0 / -(0 < 0)`` passed and evaluate raised ZeroDivisionError
    (found by tests/fuzz)."""
    with pytest.raises(ConfigError, match="divides by zero"):
        parse(text)
