"""The ``corrections:`` section and ``correction(set.name, ...)`` calls: resolved, checked, one-line errors.

The correction file is the AGC's (``analyses/ttbar/corrections.json``: ``event_systematics(syst_name:
string, direction: string, pt: real)``). Every problem is one :class:`~diffhep.errors.ConfigError`
``FILE:LINE: field.path: message`` naming the key (issue 14 item 8).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from diffhep.config import load_config, register
from diffhep.config.expr import parse
from diffhep.errors import ConfigError

AGC = Path(__file__).resolve().parents[2] / "analyses" / "ttbar" / "corrections.json"
BTAG = 'correction(agc.event_systematics, "btag_var", "up", leading(jets.pt, 0))'

CONFIG = """name: c
lumi_pb: 10
corrections:
  agc: {file: corrections.json}
samples:
  s:
    role: signal
    files: [s.root]
    xsec_pb: 1
    weight: SAMPLE_WEIGHT
objects:
  jets: {collection: Jet, require: abs(eta) < 2.4, order: pt}
regions:
  r: {select: count(jets) >= 1, observable: sum(jets.pt), binning: {bins: 2, range: [0, 100]}, bandwidth: 0}
systematics:
  btag:
    type: histosys
    up: {weight: 'UP_WEIGHT'}
"""


def write(folder: Path, *, sample: str = "genWeight", up: str = BTAG, replace: tuple[str, str] = ("", "")) -> Path:
    text = CONFIG.replace("SAMPLE_WEIGHT", sample).replace("UP_WEIGHT", up).replace(*replace)
    path = folder / "analysis.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(AGC, tmp_path / "corrections.json")
    return tmp_path


def error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def line(path: Path, marker: str) -> int:
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if marker in text)


def test_a_correction_file_resolves_from_the_config_folder(folder):
    sample = 'genWeight * correction(agc.event_systematics, "scale_var", "up", 0)'
    config = load_config(write(folder, sample=sample))
    assert config.resolved["corrections"] == {"agc": {"file": str(folder / "corrections.json")}}
    assert config.data["corrections"] == {"agc": {"file": "corrections.json"}}
    assert config.sections.corrections == {"agc": str(folder / "corrections.json")}
    assert config.expressions["systematics.btag.up.weight"].names() == ()  # neither agc nor jets is a branch


@pytest.mark.parametrize(
    ("kwargs", "key", "marker", "message"),
    [
        (
            {"replace": ("{file: corrections.json}", "{file: missing.json}")},
            "corrections.agc.file",
            "missing.json",
            "missing.json not found",
        ),
        (
            {"up": BTAG.replace("event_systematics", "event_systematic")},
            "systematics.btag.up.weight",
            "up: {weight",
            "has no correction 'event_systematic' (did you mean 'event_systematics'?)",
        ),
        (
            {"up": 'correction(agc.event_systematics, "btag_var", "up")'},
            "systematics.btag.up.weight",
            "up: {weight",
            "agc.event_systematics takes 3 input(s), syst_name (string), direction (string), pt (real); got 2",
        ),
        (
            {"up": 'correction(agc.event_systematics, "btag_var", "up", "50")'},
            "systematics.btag.up.weight",
            "up: {weight",
            "input 'pt' of agc.event_systematics is a number (real), got '50'",
        ),
        (
            {"up": "correction(agc.event_systematics, btag_var, 1, leading(jets.pt, 0))"},
            "systematics.btag.up.weight",
            "up: {weight",
            "input 'syst_name' of agc.event_systematics is a quoted string",
        ),
        (
            {"up": BTAG.replace("agc.", "agx.")},
            "systematics.btag.up.weight",
            "up: {weight",
            "unknown correction set 'agx'",
        ),
        (
            {"up": 'correction("btag_var", "up", 30)'},
            "systematics.btag.up.weight",
            "up: {weight",
            "correction() takes a correction first, as set.name",
        ),
        (
            {"replace": ("observable: sum(jets.pt)", f"observable: 'sum(jets.pt) * {BTAG}'")},
            "regions.r.observable",
            "observable:",
            "correction() can only be used in samples' and variations' weights",
        ),
        (
            {"sample": BTAG},
            "samples.s.weight",
            "weight: correction",
            "leading() can only be used in variations' weights",
        ),
        (
            {"replace": ("  agc: {file", "  jets: {file")},
            "corrections.jets",
            "jets: {file",
            "'jets' is also an object; a correction set needs a name of its own",
        ),
    ],
)
def test_bad_corrections_are_one_line_errors_naming_the_key(folder, kwargs, key, marker, message):
    path = write(folder, **kwargs)
    text = error(path)
    assert text.startswith(f"{path}:{line(path, marker)}: {key}: "), text
    assert message in text, text


def test_a_file_that_is_not_a_correctionlib_file(folder):
    (folder / "corrections.json").write_text('{"corrections": []}')
    text = error(write(folder))
    assert "corrections.agc.file: " in text and "not a correctionlib JSON file (schema v2)" in text, text


def test_strings_only_as_correction_inputs():
    assert parse('correction(a.b, "up", x)').names() == ("x",)
    for text in ('"up"', 'f("up")', 'correction(a.b, "up" + 1)'):
        with pytest.raises(ConfigError, match="only numbers and True/False are constants"):
            parse(text)


@pytest.mark.parametrize("name", ["correction", "leading"])
def test_plugins_cannot_take_the_names_of_the_weight_functions(name):
    with pytest.raises(ConfigError, match=f"register: '{name}' is a built-in function"):
        register(name)(lambda x: x)
