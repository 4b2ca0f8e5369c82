"""The typed, frozen sections of a loaded config: values, defaults, absolute files, FILE:LINE helpers."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from diffhep.config import Config, Sections, load_config, load_config_dict
from diffhep.config.parameters import CutParameter
from diffhep.errors import ConfigError

TEXT = """\
name: demo
lumi_pb: 100.0
tree: Events
samples:
  sig:
    role: signal
    files: [data/sig.root]
    xsec_pb: 2.0
    weight: genWeight
    generate: {process: signal, events: 10}
  bkg:
    role: background
    files: [/abs/bkg_*.root]
    tree: Other
    xsec_pb: 30
parameters:
  pt_min: {init: 20, bounds: [5, 60], slope: 0.5, unit: GeV}
objects:
  jets:
    collection: Jet
    cuts: pt > pt_min
regions:
  sr:
    select: count(jets) >= 2
    observable: sum(jets.pt)
    binning: {bins: 4, range: [0, 400]}
    bandwidth: 0
systematics:
  alt:
    type: histosys
    up: {files: [alt.root]}
measurement:
  poi: mu
  fixed: [alt]
objective:
  name: cls
  mu: 0.5
execution:
  mode: streaming
"""


@pytest.fixture
def config(tmp_path) -> Config:
    path = tmp_path / "demo.yaml"
    path.write_text(TEXT)
    return load_config(path)


def test_sections_are_built_once_and_frozen(config):
    sections = config.sections
    assert isinstance(sections, Sections) and config.sections is sections
    with pytest.raises(dataclasses.FrozenInstanceError):
        sections.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        sections.samples["sig"].role = "background"  # type: ignore[misc]


def test_top_level_parameters_measurement_objective(config):
    s = config.sections
    assert (s.name, s.lumi_pb, s.tree, s.plugins, s.base_dir) == ("demo", 100.0, "Events", (), config.base_dir)
    assert list(s.parameters) == [CutParameter("pt_min", 20.0, 5.0, 60.0, slope=0.5, unit="GeV")]
    assert s.parameters.names == ("pt_min",) and "pt_min" in s.parameters and s.parameters["pt_min"].high == 60.0
    assert (s.measurement.poi, s.measurement.fixed, dict(s.measurement.parameters)) == ("mu", ("alt",), {})
    assert (s.objective.name, s.objective.mu) == ("cls", 0.5)
    assert s.execution["mode"] == "streaming" and s.optimizer is None  # defaults filled in
    assert set(s.objects) == {"jets"} and s.regions["sr"]["binning"] == {"bins": 4, "range": [0, 400]}


def test_samples_are_typed_with_absolute_files_and_parsed_weights(config):
    s = config.sections
    assert s.signal == ("sig",)
    sig, bkg = s.samples["sig"], s.samples["bkg"]
    assert sig.files == (str(config.base_dir / "data" / "sig.root"),) and bkg.files == ("/abs/bkg_*.root",)
    assert (sig.tree, bkg.tree, sig.xsec_pb, bkg.xsec_pb) == ("Events", "Other", 2.0, 30.0)
    assert sig.weight_text == "genWeight" and sig.weight.names() == ("genWeight",)
    assert sig.weight is config.expressions["samples.sig.weight"]  # parsed once, by the loader
    assert bkg.weight_text == "1" and bkg.generate is None and sig.generate == {"process": "signal", "events": 10}
    assert s.systematics["alt"]["up"]["files"] == [str(config.base_dir / "alt.root")]


def line_of(text: str, start: str = "") -> int:
    """Line number (from 1) of the first line containing ``text`` after the one containing ``start``."""
    lines = TEXT.splitlines()
    first = next(i for i, line in enumerate(lines) if start in line)
    return next(i for i, line in enumerate(lines[first:], first + 1) if text in line)


def test_errors_name_the_file_and_line_of_the_field(config):
    path, s = config.source, config.sections
    assert s.samples["sig"].where("weight") == f"{path}:{line_of('weight: genWeight')}: samples.sig.weight"
    message = f"{path}:{line_of('tree: Other')}: samples.bkg.tree: no such tree"
    assert str(s.samples["bkg"].error("tree", "no such tree")) == message
    assert s.parameters.where(("pt_min", "bounds")) == f"{path}:{line_of('pt_min:')}: parameters.pt_min.bounds"
    assert s.where("regions.sr.select") == f"{path}:{line_of('select:')}: regions.sr.select"
    assert str(s.objective.error("mu", "too large")) == f"{path}:{line_of('mu: 0.5')}: objective.mu: too large"
    assert s.measurement.where("fixed[0]") == f"{path}:{line_of('fixed:')}: measurement.fixed[0]"
    assert s.located.at("objects", "jets").line("cuts") == line_of("cuts: pt > pt_min")
    assert isinstance(s.error("name", "x"), ConfigError)


def test_sections_of_a_dict_and_the_copies_they_hold(tmp_path):
    data = {
        "name": "d",
        "lumi_pb": 1,
        "samples": {"s": {"role": "signal", "files": ["s.root"], "xsec_pb": 1}},
        "regions": {"r": {"observable": "MET_pt", "binning": {"edges": [0, 1, 2]}, "bandwidth": 0}},
    }
    config = load_config_dict(data, base_dir=tmp_path)
    s = config.sections
    assert s.samples["s"].files == (str(tmp_path.resolve() / "s.root"),)
    assert s.samples["s"].where("xsec_pb") == "<dict>: samples.s.xsec_pb"  # no lines for a dict
    assert (s.measurement.poi, s.objective.name, s.objective.mu, s.tree) == (
        "mu",
        "discovery_significance",
        1.0,
        "Events",
    )
    s.regions["r"]["bandwidth"] = 5  # a copy: the config's data do not change
    assert config.data["regions"]["r"]["bandwidth"] == 0
    again = pickle.loads(pickle.dumps(s))
    assert again == s and again.samples["s"] == s.samples["s"]


def test_plugins_are_absolute(tmp_path):
    plugin = tmp_path / "plug.py"
    plugin.write_text("from diffhep.config import register\n")
    data = {
        "name": "d",
        "lumi_pb": 1,
        "plugins": ["plug.py"],
        "samples": {"s": {"role": "signal", "files": ["s.root"], "xsec_pb": 1}},
        "regions": {"r": {"observable": "MET_pt", "binning": {"bins": 1, "range": [0, 1]}, "bandwidth": 0}},
    }
    assert load_config_dict(data, base_dir=tmp_path).sections.plugins == (str(Path(tmp_path).resolve() / "plug.py"),)
