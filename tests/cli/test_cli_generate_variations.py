"""``diffhep generate --config`` also writes the files of systematic variations that have a ``generate:`` block.

The AGC's ttbar modelling systematic reads an alternative sample: its ``up:`` names
the file and how to generate it, so ``diffhep validate`` passes right after
``diffhep generate --config``, and a missing variation file only suggests
``diffhep generate`` where that command makes it.
"""

from __future__ import annotations

import json

import uproot
import yaml

from diffhep.cli import main

CONFIG = """\
name: variations
lumi_pb: 1000.0
samples:
  signal: {role: signal, files: [signal.root], xsec_pb: 0.5, generate: {process: signal, events: 200}}
  dy: {role: background, files: [dy.root], xsec_pb: 60.0, generate: {process: dy, events: 300, seed: 3}}
parameters:
  muon_pt_min: {init: 20, bounds: [5, 60], slope: 0.5}
objects:
  muons: {collection: Muon, cuts: pt > muon_pt_min, order: pt}
regions:
  sr:
    select: count(muons) >= 2
    observable: pair_mass(muons)
    binning: {bins: 4, range: [60, 140]}
    bandwidth: 2
systematics:
  dy_model:
    type: histosys
    samples: [dy]
    up: {files: [alt/dy_alt.root], generate: {process: ttbar, events: 250, seed: 7}}  # any process will do
measurement: {poi: mu}
"""


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_generate_writes_the_variation_file_and_validate_passes(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    assert main(["generate", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "dy_model/up" in out and "written" in out
    alt = tmp_path / "alt" / "dy_alt.root"
    with uproot.open(alt) as f:
        assert f["Events"].num_entries == 250
    manifest = json.loads((alt.parent / "diffhep-generated.json").read_text())
    assert manifest["dy_alt.root"]["process"] == "ttbar" and manifest["dy_alt.root"]["seed"] == 7
    assert main(["validate", str(config)]) == 0
    capsys.readouterr()
    # up to date the second time; --process selects the variation by its name
    assert main(["generate", "--config", str(config), "--process", "dy_model/up"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "dy_model/up" in line]
    assert len(rows) == 1 and "up to date" in rows[0]


def test_a_missing_variation_file_hints_generate_only_where_it_makes_it(tmp_path, capsys):
    data = yaml.safe_load(CONFIG)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    assert main(["generate", "--config", str(config), "--process", "signal", "--process", "dy"]) == 0
    capsys.readouterr()
    assert main(["validate", str(config)]) == 1
    err = _error(capsys)
    assert "dy_model/up" in err and "dy_alt.root" in err and f"run: diffhep generate --config {config}" in err
    del data["systematics"]["dy_model"]["up"]["generate"]  # a file nobody generates: no such hint
    config.write_text(yaml.safe_dump(data))
    assert main(["validate", str(config)]) == 1
    err = _error(capsys)
    assert "dy_alt.root" in err and "diffhep generate" not in err


def test_generate_on_a_variation_without_files_is_a_config_error(tmp_path, capsys):
    data = yaml.safe_load(CONFIG)
    data["systematics"]["dy_model"]["up"] = {"weight": 1.1, "generate": {"process": "dy", "events": 10}}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    assert main(["validate", str(config), "--no-data"]) == 1
    err = _error(capsys)
    assert "systematics.dy_model.up.generate" in err and "generate only applies to files, not to weight" in err
