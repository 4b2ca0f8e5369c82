"""configs/demo.yaml loads; bad settings give one-line errors naming file and key."""

from pathlib import Path

import pytest

from diffhep.analysis.job import JobSettings
from diffhep.analysis.settings import load_settings
from diffhep.cli import main
from diffhep.errors import ConfigError

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def test_shipped_demo_config_equals_the_defaults():
    loaded, default = load_settings(DEMO), JobSettings()
    assert loaded.steps == default.steps and loaded.lumi_pb == default.lumi_pb
    assert dict(loaded.n_events) == dict(default.n_events)
    assert dict(loaded.setup.normsys) == dict(default.setup.normsys)
    assert loaded.setup.bandwidth == default.setup.bandwidth


@pytest.mark.parametrize(
    "text,message",
    [
        ("stpes: 10\n", r"unknown key 'stpes'.*closest: steps"),
        ("steps: ten\n", r"steps: expected an integer, got 'ten'"),
        ("lumi_pb: -1\n", r"lumi_pb: must be > 0"),
        ("n_events: {zprime: 10}\n", r"n_events: unknown process 'zprime'"),
        ("normsys: {dy: [1.05]}\n", r"normsys.dy: expected \[hi, lo\]"),
        ("steps: [1,\n", r"line \d+ is not valid YAML"),
        ("- 1\n", r"expected a mapping"),
    ],
)
def test_bad_settings_are_named(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_partial_config_keeps_defaults(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("steps: 7\nn_events: {signal: 100}\n")
    s = load_settings(path)
    assert s.steps == 7 and s.n_events["signal"] == 100 and s.n_events["dy"] == JobSettings().n_events["dy"]


def test_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    assert main(["demo", "--config", str(tmp_path / "missing.yaml")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: config file not found") and "\n" not in err
