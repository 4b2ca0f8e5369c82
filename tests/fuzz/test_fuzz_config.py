"""Fuzz the config loader: the dimuon template, mutated as a dict and as YAML text.

Entry points: :func:`diffhep.config.load_config_dict`, :func:`diffhep.config.load_config`
and ``diffhep validate --no-data --output DIR``. Mutations: dropped and renamed keys,
values of the wrong type, NaN/inf, huge and 400-digit numbers, unicode and NUL
characters, deep nesting, anchors and aliases (billion laughs, recursive aliases),
duplicate keys, YAML tags, truncated and spliced text.

A config that loads is a correct result only if its typed sections build and it
holds no non-finite number; a config that ``load_config`` refuses must be refused by
``validate`` with the same line.
"""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from diffhep.config import load_config, load_config_dict
from diffhep.errors import ConfigError

TEMPLATE = Path(__file__).resolve().parents[2] / "analyses" / "dimuon" / "config.yaml"
TEXT = TEMPLATE.read_text(encoding="utf-8")
DATA = yaml.safe_load(TEXT)


def paths_of(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys and indices) into ``node``, the empty one first."""
    out = [prefix]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        out += paths_of(value, (*prefix, key))
    return out


PATHS = paths_of(DATA)[1:]

NUMBERS = st.sampled_from(
    [10**20, 10**400, -(10**400), 2**63, 10**9, 100_000, -1, 0, 1e308, -1e308, 5e-324, -0.0]
    + [math.nan, math.inf, -math.inf]
)
TEXTS = st.sampled_from(
    ["", "\x00", "a\x00b", "é", "𝔘𝔫𝔦", "\u202e", "a\nb", "MET_pt > 1", "~/x", "../../etc/passwd", "*", "adamm", "nan"]
)
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    NUMBERS,
    st.text(max_size=20),
    TEXTS,
)
SMALL = st.one_of(LEAF, st.lists(LEAF, max_size=3))
VALUE = st.one_of(LEAF, st.lists(SMALL, max_size=4), st.dictionaries(st.text(max_size=8), SMALL, max_size=4))


def nested(depth: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


DEEP = st.builds(nested, st.integers(1, 2000), st.sampled_from(["list", "dict"]))

ACTION = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(PATHS)),
    st.tuples(st.just("set"), st.sampled_from(PATHS), st.one_of(VALUE, DEEP)),
    st.tuples(st.just("add"), st.sampled_from([(), *PATHS]), st.text(max_size=12), VALUE),
    st.tuples(st.just("rename"), st.sampled_from(PATHS), st.one_of(st.text(max_size=12), TEXTS)),
)


def mutate(data: dict, actions: list[tuple]) -> dict:
    """Apply each action whose path still exists (an earlier one may have dropped it)."""
    data = copy.deepcopy(data)
    for action in actions:
        kind, path = action[0], action[1]
        parent: Any = data
        try:
            for key in path[:-1] if kind != "add" else path:
                parent = parent[key]
        except (KeyError, IndexError, TypeError):
            continue
        if kind == "add":
            if isinstance(parent, dict):
                parent[action[2]] = action[3]
            continue
        last = path[-1]
        if not isinstance(parent, (dict, list)) or (isinstance(parent, dict) and last not in parent):
            continue
        if isinstance(parent, list) and (not isinstance(last, int) or last >= len(parent)):
            continue
        if kind == "drop":
            del parent[last]
        elif kind == "set":
            parent[last] = action[2]
        elif isinstance(parent, dict):
            parent[action[2]] = parent.pop(last)
    return data


def _finite(value: Any, where: str = "") -> None:
    """A config that loads holds only finite numbers (a correct result, not a NaN passed through)."""
    if isinstance(value, float):
        assert math.isfinite(value), f"{where}: {value} accepted"
    elif isinstance(value, dict):
        for key, item in value.items():
            _finite(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _finite(item, f"{where}[{i}]")


def _loaded(config: Any) -> None:
    config.sections  # noqa: B018 - the typed sections build
    _finite(config.data)


def test_mutated_config_dicts(fuzz) -> None:
    @fuzz.settings(examples=60)
    @given(st.lists(ACTION, min_size=1, max_size=3))
    def check(actions: list[tuple]) -> None:
        data = mutate(DATA, actions)
        with tempfile.TemporaryDirectory() as folder, fuzz.case("configs: load_config_dict") as case:
            _loaded(load_config_dict(data, "fuzz.yaml", base_dir=folder))
            case.outcome("correct results")

    check()


def laughs(levels: int, width: int) -> str:
    """Anchors ``l0 .. l{levels-1}``, each a list of ``width`` aliases of the one before."""
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "{" + ", ".join(lines) + "}"


#: Top-level lines appended to the template.
SNIPPET = st.one_of(
    st.builds(lambda n, w: f"description: {laughs(n, w)}", st.integers(1, 12), st.integers(1, 12)),
    st.builds(lambda n, k: f"description: {k[0] * n}1{k[1] * n}", st.integers(1, 3000), st.sampled_from(["[]", "{}"])),
    st.builds(lambda n: "description: {" + "a: {" * n + "}" * n + "}", st.integers(1, 600)),
    st.sampled_from(
        [
            "description: &a [1, *a]",
            "description: &a {b: *a}",
            "name: again",
            "samples: {}",
            "lumi_pb: .nan",
            "lumi_pb: -.inf",
            "lumi_pb: 0x7fffffffffffffffffffffff",
            "lumi_pb: 1_000_000",
            "description: !!python/object/apply:os.system ['true']",
            "description: !!binary aGVsbG8=",
            "description: !!set {a, b}",
            "description: 2024-13-45",
            "description: *undefined",
            "? [a, b]\n: c",
            "<<: {name: merged}",
            "---\nname: second",
            "description: '\\x00'",
            'description: "\\0"',
            "description: \x07",
            "\ufeffdescription: bom",
        ]
    ),
    st.builds(lambda digits: f"lumi_pb: {'9' * digits}", st.integers(300, 6000)),
)
#: Values that replace a number or a word of the template.
REPLACEMENT = st.one_of(
    st.sampled_from([".nan", ".inf", "-.inf", "1e308", "1e309", "10" + "0" * 400, "-1", "0", "null", "[]", "{}", "~"]),
    st.sampled_from(["'é'", '"\\0"', "&x 1", "*x", "!!str 1", "1000000000", "100000", "true", "'\U0001d518'"]),
)
TEXT_ACTION = st.one_of(
    st.tuples(st.just("append"), SNIPPET),
    st.tuples(st.just("replace"), st.integers(0, 10_000), REPLACEMENT),
    st.tuples(st.just("insert"), st.integers(0, len(TEXT)), st.text(min_size=1, max_size=3)),
    st.tuples(st.just("cut"), st.integers(0, len(TEXT))),
    st.tuples(st.just("duplicate"), st.integers(0, 10_000)),
)


def mutate_text(text: str, action: tuple) -> str:
    kind = action[0]
    if kind == "append":
        return text + action[1] + "\n"
    if kind == "insert":
        return text[: action[1]] + action[2] + text[action[1] :]
    if kind == "cut":
        return text[: action[1]]
    lines = text.split("\n")
    keyed = [i for i, line in enumerate(lines) if ":" in line and not line.lstrip().startswith("#")]
    if not keyed:  # cut before the first key
        return text
    i = keyed[action[1] % len(keyed)]
    if kind == "duplicate":  # the same key twice in one mapping
        lines.insert(i + 1, lines[i])
    else:  # the value after the first ': ' of the line
        key, sep, _ = lines[i].partition(": ")
        lines[i] = key + (sep or ": ") + action[2]
    return "\n".join(lines)


def test_mutated_config_text_and_validate(fuzz) -> None:
    @fuzz.settings(examples=20)
    @given(st.lists(TEXT_ACTION, min_size=1, max_size=2))
    def check(actions: list[tuple]) -> None:
        text = TEXT
        for action in actions:
            text = mutate_text(text, action)
        with tempfile.TemporaryDirectory() as folder:
            path, output = Path(folder) / "config.yaml", Path(folder) / "out"
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
            refused = None
            with fuzz.case("configs: load_config"):
                try:
                    _loaded(load_config(path))
                except ConfigError as err:
                    refused = f"error: {err}\n"  # validate must say the same
                    raise
            argv = ["validate", str(path), "--no-data", "--output", str(output)]
            fuzz.cli("configs: validate --no-data", argv, output=output, expect=refused)

    check()
