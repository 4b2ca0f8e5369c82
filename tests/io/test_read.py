"""Reader on the four real files, collection zipping, errors, and sample normalisation."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from diffhep.errors import InputError
from diffhep.io import (
    Sample,
    branch_names,
    generate_sample,
    iterate_events,
    load_sample,
    normalisation,
    read_events,
    sum_of_weights,
)
from diffhep.io.read import (
    MissingBranchError,
    MissingFileError,
    MissingTreeError,
    NoFilesMatchedError,
    NotRootFileError,
)
from diffhep.io.samples import EmptySampleError

HZZ = "uproot-HZZ.root"
ZMUMU = "uproot-Zmumu.root"
NANO = "nanoAOD_2015_CMS_Open_Data_ttbar.root"
RNTUPLE = "Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root"


# ------------------------------------------------------------- real files


def test_hzz_collections(data_file) -> None:
    events = read_events(data_file(HZZ), tree="events")
    assert len(events) == 2421
    assert {"Muon", "Jet", "Electron", "Photon", "NMuon", "MET_px"} <= set(events.fields)
    assert "NMuon" not in events.Muon.fields
    assert set(events.Muon.fields) == {"Px", "Py", "Pz", "E", "Charge", "Iso"}
    assert ak.all(ak.num(events.Muon.Px) == events.NMuon)
    direct = uproot.open(data_file(HZZ))["events"]["Muon_Px"].array()
    assert ak.array_equal(events.Muon.Px, direct)


def test_zmumu_flat(data_file) -> None:
    events = read_events(data_file(ZMUMU), tree="events", branches=["M", "px1"])
    assert len(events) == 2304
    assert events.fields == ["M", "px1"]
    direct = uproot.open(data_file(ZMUMU))["events"]["M"].array(library="np")
    np.testing.assert_array_equal(ak.to_numpy(events.M), direct)


def test_nanoaod_reads_few_branches(data_file) -> None:
    branches = ["nMuon", "Muon_pt", "Muon_eta", "Jet_pt", "MET_pt", "genWeight"]
    events = read_events(data_file(NANO), branches=branches)
    assert len(events) == 200
    assert set(events.fields) == {"nMuon", "Muon", "Jet", "MET_pt", "genWeight"}
    assert set(events.Muon.fields) == {"pt", "eta"}
    assert ak.all(ak.num(events.Muon.pt) == events.nMuon)
    assert events.MET_pt.ndim == 1
    assert len(branch_names(data_file(NANO))) == 947


def test_rntuple(data_file) -> None:
    events = read_events(data_file(RNTUPLE))
    assert len(events) == 1000
    assert set(events.fields) == {"Muon", "nMuon"}  # no internal _collection0
    assert set(events.Muon.fields) == {"pt", "eta", "phi", "mass", "charge"}
    assert ak.all(ak.num(events.Muon.pt) == events.nMuon)
    only = read_events(data_file(RNTUPLE), branches=["Muon_pt"])
    assert only.fields == ["Muon"] and only.Muon.fields == ["pt"]
    assert ak.array_equal(only.Muon.pt, events.Muon.pt)


@pytest.mark.parametrize(
    ("name", "tree", "branches", "cls"),
    [
        (NANO, "Events", ["Muon_pt", "MET_pt"], "HasBranches"),
        (RNTUPLE, "Events", ["Muon_eta"], "HasFields"),
    ],
)
def test_only_requested_branches_are_read(data_file, monkeypatch, name, tree, branches, cls) -> None:
    module = uproot.behaviors.TBranch if cls == "HasBranches" else uproot.behaviors.RNTuple
    original = getattr(module, cls).arrays
    asked: list = []

    def spy(self, expressions=None, *args, **kwargs):
        asked.append((expressions, kwargs.get("filter_name")))
        return original(self, expressions, *args, **kwargs)

    monkeypatch.setattr(getattr(module, cls), "arrays", spy)
    events = read_events(data_file(name), tree=tree, branches=branches)
    assert [list(e) for e, _ in asked] == [branches]
    read = {
        f"{name}_{field}" if events[name].ndim > 1 else name
        for name in events.fields
        for field in (events[name].fields or [None])
    }
    assert read == set(branches)


def test_glob_and_several_files(data_file) -> None:
    path = data_file(HZZ)
    one = read_events(path, tree="events", branches=["NMuon"])
    two = read_events([path, path], tree="events", branches=["NMuon"])
    assert len(two) == 2 * 2421
    np.testing.assert_array_equal(ak.to_numpy(two.NMuon[2421:]), ak.to_numpy(one.NMuon))
    globbed = read_events(str(path.parent / "uproot-HZ*.root"), tree="events", branches=["NMuon"])
    assert len(globbed) == 2421
    window = read_events([path, path], tree="events", branches=["NMuon"], entry_start=2400, entry_stop=2450)
    expected = np.concatenate([ak.to_numpy(one.NMuon[2400:]), ak.to_numpy(one.NMuon[:29])])
    np.testing.assert_array_equal(ak.to_numpy(window.NMuon), expected)


def test_iterate_matches_read(data_file) -> None:
    batches = list(iterate_events(data_file(RNTUPLE), branches=["nMuon", "Muon_pt"], step_size=300))
    assert [len(b) for b in batches] == [300, 300, 300, 100]
    whole = read_events(data_file(RNTUPLE), branches=["nMuon", "Muon_pt"])
    assert ak.array_equal(ak.concatenate(batches).Muon.pt, whole.Muon.pt)


def test_generated_file_round_trip(tmp_path: Path) -> None:
    path = generate_sample(tmp_path / "sig.root", "signal", 500, seed=1)
    events = read_events(path)
    assert set(events.Muon.fields) == {"pt", "eta", "phi", "mass", "charge", "pfRelIso04_all", "tightId", "sip3d"}
    assert set(events.Jet.fields) == {"pt", "eta", "phi", "mass", "btagCSVV2"}
    assert {"nMuon", "nJet", "MET_pt", "MET_phi", "genWeight", "event"} <= set(events.fields)
    assert ak.all(ak.num(events.Muon) == events.nMuon)


# ------------------------------------------------------------------ errors


def _one_line_error(cls, call, *needles: str) -> str:
    with pytest.raises(cls) as info:
        call()
    message = str(info.value)
    assert isinstance(info.value, InputError)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


def test_error_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.root"
    _one_line_error(MissingFileError, lambda: read_events(missing), str(missing))


def test_error_not_root(tmp_path: Path) -> None:
    text = tmp_path / "notes.root"
    text.write_text("this is not a ROOT file\nsecond line\n")
    _one_line_error(NotRootFileError, lambda: read_events(text), str(text))


def test_error_missing_tree(data_file) -> None:
    _one_line_error(MissingTreeError, lambda: read_events(data_file(HZZ), tree="Events"), "'Events'", "events")
    _one_line_error(MissingTreeError, lambda: read_events(data_file(RNTUPLE), tree="Muons"), "'Muons'", "Events")


def test_error_missing_branch_suggests_closest(data_file) -> None:
    message = _one_line_error(
        MissingBranchError,
        lambda: read_events(data_file(NANO), branches=["Muon_pt", "Muon_ptt"]),
        "'Muon_ptt'",
        NANO,
        "did you mean 'Muon_pt'",
    )
    assert message.count("Muon_ptt") == 1
    _one_line_error(
        MissingBranchError, lambda: read_events(data_file(RNTUPLE), branches=["Muon_charg"]), "mean 'Muon_charge'"
    )


def test_error_glob_matches_nothing(tmp_path: Path) -> None:
    _one_line_error(NoFilesMatchedError, lambda: read_events(str(tmp_path / "*.root")), "*.root")
    _one_line_error(NoFilesMatchedError, lambda: read_events([]))


# ----------------------------------------------------------------- samples


@pytest.fixture(scope="module")
def two_ttbar_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("samples")
    a = generate_sample(folder / "a.root", "ttbar", 3_000, seed=1)
    b = generate_sample(folder / "b.root", "ttbar", 1_500, seed=2)
    return str(a), str(b)


def test_normalisation_matches_independent_sum(two_ttbar_files: tuple[str, str]) -> None:
    sample = Sample("ttbar", two_ttbar_files, xsec_pb=5.0)
    weights = np.concatenate(
        [uproot.open(f)["Events"]["genWeight"].array(library="np").astype(np.float64) for f in two_ttbar_files]
    )
    assert np.any(weights < 0)
    assert sum_of_weights(sample) == pytest.approx(weights.sum(), rel=1e-12)
    assert normalisation(sample, 10_000.0) == pytest.approx(5.0 * 10_000.0 / weights.sum(), rel=1e-12)
    unweighted = Sample("ttbar", two_ttbar_files, xsec_pb=5.0, weight_branch=None)
    assert normalisation(unweighted, 10_000.0) == pytest.approx(5.0 * 10_000.0 / 4_500)


def test_load_sample(two_ttbar_files: tuple[str, str]) -> None:
    events = load_sample(Sample("ttbar", two_ttbar_files, xsec_pb=5.0), ["Muon_pt", "genWeight"])
    assert len(events) == 4_500 and set(events.fields) == {"Muon", "genWeight"}


def test_zero_event_sample_raises(tmp_path: Path) -> None:
    empty = generate_sample(tmp_path / "empty.root", "signal", 0, seed=1)
    assert len(read_events(empty)) == 0
    sample = Sample("empty_signal", (str(empty),), xsec_pb=0.5)
    _one_line_error(EmptySampleError, lambda: normalisation(sample, 1_000.0), "empty_signal", str(empty), "no events")


def test_zero_weight_sum_raises(tmp_path: Path) -> None:
    path = tmp_path / "zero.root"
    with uproot.recreate(path) as file:
        file["Events"] = {"genWeight": np.array([1.0, -1.0, 0.5, -0.5], dtype=np.float32)}
    sample = Sample("cancelling", str(path), xsec_pb=1.0)
    _one_line_error(EmptySampleError, lambda: normalisation(sample, 1.0), "cancelling", str(path), "genWeight")


def test_a_home_relative_path_is_expanded_as_in_configs(tmp_path, monkeypatch):
    """``~/x.root`` names a file in the home folder here too (the config's files and plugins always did)."""
    from diffhep.io.read import expand_files

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "x.root").write_bytes(b"")
    assert expand_files("~/x.root") == [str(tmp_path / "x.root")]
    assert expand_files(["~/*.root"]) == [str(tmp_path / "x.root")]
