"""Events in memory read as NanoAOD branches (diffhep.io.memory): the names, the counts, the errors."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from diffhep.errors import InputError
from diffhep.io import read_events
from diffhep.io.generate import generate_sample
from diffhep.io.memory import MemoryEvents, read_memory
from diffhep.io.read import NonFiniteError


def test_records_collections_and_flat_fields_are_named_as_nanoaod_branches():
    events = ak.Array(
        {
            "Jet": [[{"pt": 40.0, "eta": 0.1}, {"pt": 31.0, "eta": -1.0}], []],
            "MET": [{"pt": 12.5, "phi": 0.3}, {"pt": 3.0, "phi": -0.3}],
            "HLT": [{"IsoMu24": True}, {"IsoMu24": False}],
            "PV": [{"npvs": 3, "x": {"err": 0.1}}, {"npvs": 1, "x": {"err": 0.2}}],
            "Muon_pt": [[25.0], [30.0, 5.0]],
            "nMuon": np.array([1, 2], dtype=np.int32),
            "genWeight": [1.0, -1.0],
            "dataset": ["ttbar", "ttbar"],
        }
    )
    memory = MemoryEvents(events, "events['ttbar']")
    assert memory.branches == [
        "Jet_pt", "Jet_eta", "nJet", "MET_pt", "MET_phi", "HLT_IsoMu24", "PV_npvs", "PV_x_err",
        "Muon_pt", "nMuon", "genWeight",
    ]  # fmt: skip
    assert memory.num_entries == 2
    flat = memory.read(["nJet", "nMuon", "MET_pt", "HLT_IsoMu24", "Jet_pt", "Jet_eta"])
    assert flat.fields == ["nJet", "nMuon", "MET_pt", "HLT_IsoMu24", "Jet"]  # zipped as read_events zips them
    assert flat.nJet.tolist() == [2, 0] and flat.nJet.type.content == ak.types.NumpyType("uint32")
    assert flat.nMuon.type.content == ak.types.NumpyType("int32")  # a field nMuon is kept as it is
    assert flat.Jet.pt.tolist() == [[40.0, 31.0], []] and flat.HLT_IsoMu24.tolist() == [True, False]


def test_a_file_read_into_memory_reads_as_the_file(tmp_path):
    path = generate_sample(tmp_path / "dy.root", "dy", 50, seed=1)
    names = ["nMuon", "Muon_pt", "Muon_charge", "MET_pt", "genWeight"]
    expected = read_events(path, branches=names)
    for events in (read_events(path), expected):  # read_events' own form, with every branch or not
        assert read_memory(events, names).to_list() == expected.to_list()
        assert read_memory(events, names).type == expected.type


def test_errors_are_one_line_and_name_what_was_expected():
    with pytest.raises(InputError, match=r"^events\['x'\]: expected an Awkward Array .* got a NumPy array"):
        MemoryEvents(np.zeros(3), "events['x']")
    with pytest.raises(InputError, match=r"got a dict \(make it an array first: ak.Array\(d\)"):
        MemoryEvents({"MET_pt": [1.0]}, "events['x']")
    with pytest.raises(InputError, match=r"got an Awkward Array of type var \* float64"):
        MemoryEvents(ak.Array([[1.0], []]), "events['x']")
    with pytest.raises(InputError, match=r"got an Awkward Record \(one event\)"):
        MemoryEvents(ak.Array([{"MET_pt": 1.0}])[0], "events['x']")
    delayed = type("Array", (), {"__module__": "dask_awkward.lib.core"})()
    with pytest.raises(InputError, match=r"a delayed dask-awkward array; compute it first"):
        MemoryEvents(delayed, "events['x']")
    with pytest.raises(NonFiniteError, match=r"^events\['x'\]: branch 'Jet_pt' entry 1 is nan"):
        MemoryEvents(ak.Array({"Jet": [[{"pt": 1.0}], [{"pt": np.nan}]]}), "events['x']").read(["Jet_pt"])
    with pytest.raises(InputError, match=r"^events: no branch 'Jet_ptt' \(did you mean 'Jet_pt'\?\)$"):
        read_memory(ak.Array({"Jet": [[{"pt": 1.0}]]}), ["Jet_ptt"])
