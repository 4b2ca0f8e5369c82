"""``diffhep validate`` says which comparisons are hard forward with a sigmoid gradient (issue 18 item 5).

Integer or boolean branches compared with a parameter are evaluated straight-through
(an integer exactly on the cut would get 0.5 from a sigmoid); validate lists them.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import uproot
import yaml

from diffhep.cli import main


def test_validate_lists_the_straight_through_comparisons(tmp_path, capsys):
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 3, 50)
    m = int(counts.sum())
    with uproot.recreate(tmp_path / "s.root") as f:
        f["Events"] = {
            "Muon_pt": ak.unflatten(rng.uniform(5, 80, m).astype(np.float32), counts),
            "Muon_nHits": ak.unflatten(rng.integers(8, 15, m).astype(np.int32), counts),
            "nTag": rng.integers(0, 4, 50).astype(np.int32),
            "MET_pt": rng.uniform(0, 200, 50).astype(np.float32),
        }
    config = {
        "name": "discrete",
        "lumi_pb": 10.0,
        "samples": {"s": {"role": "signal", "files": ["s.root"], "xsec_pb": 5.0}},
        "parameters": {
            "pt_min": {"init": 20, "bounds": [5, 60], "slope": 0.5},
            "nhits_min": {"init": 10, "bounds": [5, 15], "slope": 2.0},
            "ntag_min": {"init": 2, "bounds": [0, 4], "slope": 3.0},
        },
        "objects": {"muons": {"collection": "Muon", "cuts": "pt > pt_min and nHits >= nhits_min"}},
        "regions": {
            "sr": {
                "select": "nTag >= ntag_min and count(muons) >= 1 and MET_pt > 2 * pt_min",
                "observable": "MET_pt",
                "binning": {"bins": 4, "range": [0, 200]},
                "bandwidth": 10,
            }
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["validate", str(tmp_path / "config.yaml")]) == 0
    out = capsys.readouterr().out
    head = "discrete comparisons (integer or boolean branches): hard step forward, sigmoid gradient (straight-through):"
    lines = out.splitlines()
    at = lines.index(head)
    assert lines[at + 1 : at + 3] == [
        "  object 'muons' cuts: nHits >= nhits_min",
        "  region 'sr' select: nTag >= ntag_min",
    ]
    assert "pt > pt_min" not in out.split(head)[1].split("OK")[0]  # float branches keep the sigmoid
    assert main(["validate", "--no-data", str(tmp_path / "config.yaml")]) == 0
    assert head not in capsys.readouterr().out  # the types are read from the files
