"""Hostile configs end in one ConfigError line, early: no traceback, no hang, no gigabytes.

Each case writes a small YAML file (the limits refuse it before anything expands
or allocates) and checks both :func:`load_config` (a :class:`ConfigError` with
the file, and the line or field where known) and ``diffhep validate`` (exit
status 1, one ``error: ...`` line on stderr).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import diffhep.config.load as load_module
from diffhep.cli import main
from diffhep.config import load_config, load_config_dict
from diffhep.config.checks import MAX_BINS
from diffhep.config.expr import MAX_EXPRESSION_DEPTH, MAX_EXPRESSION_LENGTH
from diffhep.config.load import MAX_YAML_DEPTH, MAX_YAML_NODES
from diffhep.errors import ConfigError

BASE = """\
name: mini
lumi_pb: 10.0
samples:
  sig: {role: signal, files: [data/sig.root], xsec_pb: 1.0}
regions:
  sr:
    observable: OBSERVABLE
    binning: BINNING
    bandwidth: BANDWIDTH
"""
OPTIMIZER = "optimizer: {learning_rate: 0.05, steps: 5, OPTIONS}\n"


def config_text(
    observable: str = "MET_pt",
    binning: str = "{bins: 2, range: [0, 100]}",
    bandwidth: str = "1.0",
    before: str = "",
    after: str = "",
) -> str:
    text = BASE.replace("OBSERVABLE", observable).replace("BINNING", binning).replace("BANDWIDTH", bandwidth)
    return before + text + after


def laughs(levels: int) -> str:
    """Anchors ``a0 .. a{levels-1}``, each a list of ten aliases of the one before: 10**levels values."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "{" + ", ".join(lines) + "}"


def alias_chain(links: int, depth: int) -> str:
    """Each anchor nests the one before ``depth`` lists deeper: nesting ``links * depth`` once expanded."""
    out = "description:\n"
    for i in range(links):
        inner = f"*l{i - 1}" if i else "1"
        out += f"  l{i}: &l{i} " + "[" * depth + inner + "]" * depth + "\n"
    return out


#: name -> (YAML text, words the message must hold, line of the error or None).
CASES: dict[str, tuple[str, tuple[str, ...], int | None]] = {
    "nested_lists": (config_text(after="description: " + "[" * 500 + "]" * 500 + "\n"), ("MAX_YAML_DEPTH",), 10),
    "nested_mappings": (
        config_text(after="description: " + "{a: " * 300 + "1" + "}" * 300 + "\n"),
        ("nested deeper than",),
        10,
    ),
    "recursive_alias": (config_text(after="description: &a [1, *a]\n"), ("recursive alias",), 10),
    "alias_chain_depth": (config_text(after=alias_chain(5, 30)), ("aliases nest", "MAX_YAML_DEPTH"), None),
    "billion_laughs": (config_text(after=f"description: {laughs(9)}\n"), ("MAX_YAML_NODES", "aliases"), None),
    "million_laughs": (config_text(after=f"description: {laughs(6)}\n"), ("MAX_YAML_NODES",), None),
    "not_chain": (config_text(observable="'" + "not " * 2000 + "MET_pt'"), ("MAX_EXPRESSION_DEPTH",), 7),
    "long_sum": (config_text(observable="'" + " + ".join(["MET_pt"] * 3000) + "'"), ("MAX_EXPRESSION_LENGTH",), 7),
    "deep_parentheses": (config_text(observable="'" + "(" * 300 + "MET_pt" + ")" * 300 + "'"), ("nested",), 7),
    "power_tower": (config_text(observable="'MET_pt * 9**9**9'"), ("'9**9**9'", "float range"), 7),
    "big_power": (config_text(observable="'MET_pt > 10.0**400'"), ("float range",), 7),
    "huge_constant": (config_text(observable="'MET_pt * 1" + "0" * 400 + "'"), ("float range",), 7),
    "int_400_digits": (config_text(bandwidth="1" + "0" * 400), ("integer", "1.8e308"), 9),
    "int_320_digits": (config_text(bandwidth="1" + "0" * 320), ("integer", "1.8e308"), 9),
    "int_5000_digits": (config_text(bandwidth="1" * 5000), ("integer", "1.8e308"), 9),
    "bandwidth_1e308": (config_text(bandwidth="1.0e+308"), ("wider than the whole binning",), 9),
    "bandwidth_wider_than_range": (config_text(bandwidth="100.5"), ("wider than the whole binning", "100"), 9),
    "range_overflows": (config_text(binning="{bins: 2, range: [-1.0e+308, 1.0e+308]}", bandwidth="0"), ("finite",), 8),
    "bins_1e20": (config_text(binning="{bins: 100000000000000000000, range: [0, 100]}"), (str(MAX_BINS),), 8),
    "bins_1e9": (config_text(binning="{bins: 1000000000, range: [0, 100]}"), ("MAX_BINS",), 8),
    "bins_1e5": (config_text(binning="{bins: 100000, range: [0, 100]}"), ("at most 10000 bins per region",), 8),
    "nul_byte": (config_text().replace("name: mini", "name: mini\x00"), ("NUL",), 1),
    "nul_escaped_in_text": (config_text(after='description: "a\\0b"\n'), ("NUL",), 10),
    "nul_escaped_in_key": (config_text(after='"a\\0b": 1\n'), ("NUL",), None),
    "control_character": (config_text(after="description: a\x07b\n"), ("unacceptable character",), 10),
    "impossible_date": (config_text(after="description: 2024-13-45\n"), ("month",), None),
}


@pytest.mark.parametrize("case", CASES)
def test_hostile_config_is_one_config_error(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, words, line = CASES[case]
    path = tmp_path / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    message = str(error)
    assert error.path == str(path)
    assert "\n" not in message
    assert len(message) < 600
    for word in words:
        assert word in message
    if line is not None:
        assert error.line == line
        assert message.startswith(f"{path}:{line}: ")

    assert main(["validate", str(path), "--no-data"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "unexpected" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("options", "field", "words"),
    [
        ("name: adamm", "optimizer.name", "did you mean 'adam'"),
        ("scan: {points: 1}", "optimizer.scan.points", "expected an integer >= 2"),
    ],
)
def test_validate_builds_the_optimizer_settings(
    options: str, field: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config_text(after=OPTIMIZER.replace("OPTIONS", options)))
    load_config(path)  # the config itself is valid: the optimiser settings are not
    assert main(["validate", str(path), "--no-data"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {path}:10: {field}: {err.split(f'{field}: ', 1)[1]}"
    assert words in err and err.count("\n") == 1


def test_edges_count_is_bounded() -> None:
    data = {
        "name": "mini",
        "lumi_pb": 10.0,
        "samples": {"sig": {"role": "signal", "files": ["sig.root"], "xsec_pb": 1.0}},
        "regions": {"sr": {"observable": "MET_pt", "binning": {"edges": list(range(MAX_BINS + 2))}, "bandwidth": 0}},
    }
    with pytest.raises(ConfigError, match=r"regions\.sr\.binning\.edges: 10001 bins; expected at most 10000"):
        load_config_dict(data)
    data["regions"]["sr"]["binning"]["edges"] = list(range(MAX_BINS + 1))
    load_config_dict(data)


def test_dict_configs_are_checked_too() -> None:
    data = {
        "name": "mini",
        "lumi_pb": 10**400,
        "samples": {"sig": {"role": "signal", "files": ["sig.root"], "xsec_pb": 1.0}},
        "regions": {"sr": {"observable": "MET_pt", "binning": {"bins": 2, "range": [0, 1]}, "bandwidth": 0}},
    }
    with pytest.raises(ConfigError, match=r"lumi_pb: got an integer of about 401 digits; expected a number within"):
        load_config_dict(data)
    data["lumi_pb"], data["description"] = 1.0, "a\x00b"
    with pytest.raises(ConfigError, match=r"description: 'a\\x00b' holds a NUL character"):
        load_config_dict(data)


def test_file_size_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config_text())
    monkeypatch.setattr(load_module, "MAX_CONFIG_BYTES", 100)
    with pytest.raises(ConfigError, match=r"bytes; at most 0 MiB \(MAX_CONFIG_BYTES\)"):
        load_config(path)


def test_limits_leave_ordinary_configs_alone(tmp_path: Path) -> None:
    """At the limits, and with the constructs they bound used modestly, a config still loads."""
    terms = " + ".join(["MET_pt"] * 40)
    deep = "[" * (MAX_YAML_DEPTH - 3) + "]" * (MAX_YAML_DEPTH - 3)  # under optimizer.options: 3 levels down
    text = config_text(
        observable=f"'{terms} + 2**10 - 9**9 / 1.0e+300 + (((MET_pt)))'",
        binning=f"{{bins: {MAX_BINS}, range: [0, 100]}}",
        bandwidth="100",
        after=OPTIMIZER.replace("OPTIONS", f"options: {{deep: {deep}, laughs: {laughs(3)}}}"),
    )
    path = tmp_path / "config.yaml"
    path.write_text(text)
    config = load_config(path)
    assert config.data["regions"]["sr"]["binning"]["bins"] == MAX_BINS
    assert MAX_YAML_NODES >= 10_000 and MAX_EXPRESSION_DEPTH >= 50 and MAX_EXPRESSION_LENGTH >= 1_000


@pytest.mark.parametrize("kind", ["list", "dict", "cycle"])
def test_a_deeply_nested_dict_is_one_config_error(kind: str) -> None:
    """load_config_dict has no YAML loader to bound the depth: deepcopy raised RecursionError (found by tests/fuzz)."""
    value: object = 1
    for _ in range(2000):
        value = [value] if kind == "list" else {"a": value}
    if kind == "cycle":
        value = {"a": 1}
        value["a"] = value
    data = {"name": "mini", "lumi_pb": 10.0, "description": value}
    with pytest.raises(ConfigError, match=r"description.*nested deeper than 64 levels \(MAX_YAML_DEPTH\)"):
        load_config_dict(data)


def test_a_key_with_a_newline_is_shown_quoted_in_one_line() -> None:
    """An unknown key '\\n' made a two-line ConfigError (found by tests/fuzz)."""
    data = {
        "name": "mini",
        "lumi_pb": 10.0,
        "samples": {"sig": {"role": "signal", "files": ["sig.root"], "xsec_pb": 1.0}},
        "regions": {"sr": {"observable": "MET_pt", "binning": {"bins": 2, "range": [0, 1]}, "bandwidth": 0}},
        "a\nb": 1,
    }
    with pytest.raises(ConfigError) as caught:
        load_config_dict(data)
    assert "\n" not in str(caught.value) and "['a\\nb']: unknown key" in str(caught.value), str(caught.value)
