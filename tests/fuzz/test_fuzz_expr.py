"""Fuzz the expression language: the parser, the evaluator, and the config checks around them.

Entry points: :func:`diffhep.config.expr.parse` (and :func:`~diffhep.config.expr.evaluate`
where the text is plain arithmetic, against Python's own arithmetic on the same text),
and the dimuon config with the expression as its region's ``select`` through
:func:`diffhep.config.load_config_dict` and ``diffhep validate --no-data``.
Inputs: a grammar of Python expressions, whitelisted or not (attribute access,
dunder names, calls with keywords or ``*args``, lambdas, comprehensions, walrus,
f-strings, subscripts, bit operators), very long sums, deep parentheses, ``not``
and ``-`` chains, huge numbers, and random text.
"""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_config import DATA, TEMPLATE

from diffhep.config import load_config_dict
from diffhep.config.expr import evaluate, parse

NAMES = ["MET_pt", "muon_pt_min", "met_max", "muons", "jets", "leading.plus", "muons.pt", "x", "pt", "eta"]
NAMES += ["__import__", "__class__", "__builtins__", "os", "True", "None", "nan", "inf", "é", "_"]
FUNCTIONS = ["count", "sum", "abs", "pair_mass", "min", "max", "sqrt", "any", "eval", "exec", "open", "getattr"]
NUMBERS = ["0", "1", "2.5", "1e400", "9**9**9", "10**400", "0x10", "1_0", "1j", "'s'", "b'x'", "...", "1" + "0" * 400]
OPERATORS = ["+", "-", "*", "/", "**", "//", "%", "@", "<<", ">>", "|", "&", "^", "<", "<=", ">", ">=", "==", "!="]
OPERATORS += ["and", "or", "in", "not in", "is", "is not"]

ATOM = st.one_of(st.sampled_from(NAMES), st.sampled_from(NUMBERS), st.integers(-(10**30), 10**30).map(str))


def _grow(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    f = st.sampled_from(FUNCTIONS)
    return st.one_of(
        st.builds("{} {}".format, st.sampled_from(["not", "-", "+", "~"]), inner),
        st.builds("{} {} {}".format, inner, st.sampled_from(OPERATORS), inner),
        st.builds("({})".format, inner),
        st.builds("{}({})".format, f, st.lists(inner, max_size=3).map(", ".join)),
        st.builds("{}(x={})".format, f, inner),
        st.builds("{}(*{})".format, f, inner),
        st.builds("{}.{}".format, inner, st.sampled_from(["pt", "__class__", "__globals__", "real", "plus"])),
        st.builds("{}[{}]".format, inner, inner),
        st.builds("(lambda y: {})(1)".format, inner),
        st.builds("[{} for y in {}]".format, inner, inner),
        st.builds("{{y: {} for y in {}}}".format, inner, inner),
        st.builds("({} if {} else {})".format, inner, inner, inner),
        st.builds("(y := {})".format, inner),
        st.builds("f'{{{}}}'".format, inner),
    )


GRAMMAR = st.recursive(ATOM, _grow, max_leaves=12)
#: Inputs too deep or too long for a recursive walk.
EXTREME = st.one_of(
    st.builds(lambda n, x: "(" * n + x + ")" * n, st.integers(1, 5000), ATOM),
    st.builds(lambda n, x: "not " * n + x, st.integers(1, 5000), ATOM),
    st.builds(lambda n, x: "-" * n + x, st.integers(1, 20_000), ATOM),
    st.builds(lambda n, x: " + ".join([x] * n), st.integers(1, 3000), ATOM),
    st.builds(lambda n, x: "count(" * n + x + ")" * n, st.integers(1, 500), ATOM),
    st.builds(lambda n: "a" * n, st.integers(1, 20_000)),
)
EXPRESSION = st.one_of(GRAMMAR, EXTREME, st.text(max_size=60))

NUMBER = st.one_of(st.integers(0, 1000).map(str), st.floats(0, 1e6).map(repr))
ARITHMETIC = st.recursive(
    NUMBER,
    lambda inner: st.one_of(
        st.builds("{} {} {}".format, inner, st.sampled_from(["+", "-", "*", "/", "<", ">=", "!="]), inner),
        st.builds("-({})".format, inner),
        st.builds("({})".format, inner),
    ),
    max_leaves=10,
)


def test_expressions_parse(fuzz) -> None:
    @fuzz.settings(examples=200)
    @given(EXPRESSION)
    def check(text: str) -> None:
        with fuzz.case("expressions: parse"):
            expression = parse(text, where="regions.sr.select")
            assert all(not name.startswith("__") for name in expression.names()), expression.names()

    check()


def test_arithmetic_evaluates_as_python_does(fuzz) -> None:
    @fuzz.settings(examples=100)
    @given(ARITHMETIC)
    def check(text: str) -> None:
        try:
            expected = eval(text, {"__builtins__": {}})  # noqa: S307 - the oracle, on generated arithmetic only
        except ZeroDivisionError:
            expected = None
        with fuzz.case("expressions: parse and evaluate"):
            value = evaluate(parse(text), {}, {})
            assert expected is not None, f"{text!r} divides by zero and evaluated to {value}"
            assert value == expected or math.isclose(value, expected, rel_tol=1e-12, abs_tol=1e-300), (value, expected)

    check()


def test_expressions_in_a_config(fuzz) -> None:
    @fuzz.settings(examples=12)
    @given(EXPRESSION, st.sampled_from(["select", "observable"]))
    def check(text: str, field: str) -> None:
        data = copy.deepcopy(DATA)
        data["regions"]["mumu"][field] = text
        with tempfile.TemporaryDirectory() as folder:
            with fuzz.case("expressions: load_config_dict"):
                load_config_dict(data, "fuzz.yaml", base_dir=TEMPLATE.parent)
            path, output = Path(folder) / "config.yaml", Path(folder) / "out"
            path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8", errors="surrogatepass")
            argv = ["validate", str(path), "--no-data", "--output", str(output)]
            fuzz.cli("expressions: validate --no-data", argv, output=output)

    check()
