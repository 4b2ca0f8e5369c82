"""The branches of an object's collection must be lists of equal lengths (issue 18 item 9).

A ``Muon_pt`` written with one value per event next to a jagged ``Muon_eta`` is
broadcast to every muon by ``ak.zip`` (the independent check measured a signal
yield of 448 instead of 3612, exit status 0; with this config it failed later,
"unexpected ValueError: Zero-dimensional arrays cannot be concatenated"); lists
of different lengths failed inside ``ak.zip`` ("cannot broadcast nested list"),
both reported as a bug in diffhep. Both are now one ``error:`` line naming the
file and the branch (and the entry), before the collection is built.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from diffhep.cli import main
from diffhep.io.generate import generate_sample
from diffhep.io.generate_common import write_tree
from diffhep.io.read import read_events

CONFIG = """\
name: shapes
lumi_pb: 1000.0
samples:
  dy:
    role: signal
    files: [dy.root]
    xsec_pb: 60.0
    weight: genWeight
parameters:
  muon_pt_min: {init: 20, bounds: [5, 60], slope: 0.5, unit: GeV}
objects:
  muons:
    collection: Muon
    require: abs(eta) < 2.4
    cuts: pt > muon_pt_min
regions:
  sr:
    select: count(muons) >= 2
    observable: pair_mass(muons)
    binning: {bins: 8, range: [60, 140]}
    bandwidth: 0
measurement:
  poi: mu
objective:
  name: asimov_significance
"""


def _write(folder: Path, change) -> Path:
    """``dy.root`` generated, then rewritten with ``change(events) -> columns``; the config beside it."""
    path = generate_sample(folder / "dy.root", "dy", 300, seed=3)
    events = read_events(path)
    columns = change(events)
    columns = {k: ak.to_numpy(v) if v.ndim == 1 and not ak.fields(v) else v for k, v in columns.items()}
    write_tree(path, "Events", [columns], title="a sample with a malformed collection")
    (folder / "config.yaml").write_text(CONFIG)
    return folder / "config.yaml"


def _others(events: ak.Array, *drop: str) -> dict:
    muons = events.Muon[[f for f in events.Muon.fields if f not in drop]]
    return {"Muon": muons, **{n: events[n] for n in events.fields if n not in ("Muon", "Jet", "nMuon", "nJet")}}


def _error(capsys, config: Path) -> str:
    assert main(["run", str(config), "--quiet", "--output", str(config.parent / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "bug in diffhep" not in err, err
    return err


def test_a_branch_with_one_value_per_event_is_refused(tmp_path, capsys):
    def flat_pt(events):  # the leading muon's pT, one number per event
        return {**_others(events, "pt"), "Muon_pt": np.asarray(ak.fill_none(ak.firsts(events.Muon.pt), 0.0))}

    err = _error(capsys, _write(tmp_path, flat_pt))
    assert "dy.root: branch 'Muon_pt' of object 'muons' has one value per event" in err, err


@pytest.mark.parametrize("execution", [[], ["--execution", "streaming", "--chunk-size", "100"]])
def test_lists_of_other_lengths_are_refused_naming_the_entry(tmp_path, capsys, execution):
    def longer_eta(events):  # entry 7 has one eta too many
        eta = ak.to_list(events.Muon.eta)
        eta[7] = [*eta[7], 0.5]
        return {**_others(events, "eta"), "Muon_eta": ak.Array(eta)}

    config = _write(tmp_path, longer_eta)
    assert main(["run", str(config), "--quiet", "--output", str(tmp_path / "out"), *execution]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "bug in diffhep" not in err, err
    assert "dy.root: entry 7: branch " in err and "the branches of object 'muons' must have one value per object" in err
