"""Synthetic NanoAOD generator: determinism, schema and physics sanity."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from diffhep.errors import InputError
from diffhep.io import PROCESSES, generate_dataset, generate_sample
from diffhep.io.generate import BLOCK_SIZE, MUON_MASS

EXPECTED_BRANCHES = {
    "run", "luminosityBlock", "event",
    "nMuon", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge", "Muon_pfRelIso04_all",
    "Muon_tightId", "Muon_sip3d",
    "nJet", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btagCSVV2",
    "MET_pt", "MET_phi", "genWeight",
}  # fmt: skip


def _raw(path: Path) -> ak.Array:
    return uproot.open(path)["Events"].arrays(library="ak")


def _assert_same(a: ak.Array, b: ak.Array) -> None:
    assert a.fields == b.fields
    for field in a.fields:
        assert ak.array_equal(a[field], b[field]), field


# ---------------------------------------------------------------- determinism

N_DET = 2 * BLOCK_SIZE + 537  # crosses block boundaries, not a multiple of any chunk size


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> ak.Array:
    path = generate_sample(tmp_path_factory.mktemp("ref") / "s.root", "ttbar", N_DET, seed=3)
    return _raw(path)


def test_same_seed_gives_identical_arrays(tmp_path: Path, reference: ak.Array) -> None:
    path = generate_sample(tmp_path / "again.root", "ttbar", N_DET, seed=3)
    _assert_same(_raw(path), reference)


@pytest.mark.parametrize("chunk_size", [1, 3_001, BLOCK_SIZE, 25_000])
def test_chunk_size_does_not_change_content(tmp_path: Path, reference: ak.Array, chunk_size: int) -> None:
    n = N_DET if chunk_size > 1 else 0  # chunk_size=1 only checked on the type (too slow otherwise)
    path = generate_sample(tmp_path / "c.root", "ttbar", n, seed=3, chunk_size=chunk_size)
    events = _raw(path)
    if n:
        _assert_same(events, reference)
    assert str(events.type.content) == str(reference.type.content)


def test_small_chunk_size_matches_prefix(tmp_path: Path) -> None:
    big = _raw(generate_sample(tmp_path / "a.root", "signal", 1_203, seed=5))
    small = _raw(generate_sample(tmp_path / "b.root", "signal", 1_203, seed=5, chunk_size=100))
    _assert_same(big, small)


def test_different_seed_or_process_differs(tmp_path: Path, reference: ak.Array) -> None:
    other = _raw(generate_sample(tmp_path / "o.root", "ttbar", N_DET, seed=4))
    assert not ak.array_equal(other.Muon_pt, reference.Muon_pt)
    assert not np.array_equal(ak.to_numpy(other.MET_pt), ak.to_numpy(reference.MET_pt))


def test_chunked_writing_with_remainder(tmp_path: Path) -> None:
    path = generate_sample(tmp_path / "r.root", "qcd", 2_501, seed=1, chunk_size=1_000)
    tree = uproot.open(path)["Events"]
    assert tree.num_entries == 2_501
    event = tree["event"].array(library="np")
    np.testing.assert_array_equal(event, np.arange(1, 2_502))


# ------------------------------------------------------------------ schema


@pytest.mark.parametrize("process", list(PROCESSES))
def test_schema(synthetic_dataset: dict[str, Path], process: str) -> None:
    tree = uproot.open(synthetic_dataset[process])["Events"]
    assert set(tree.keys()) == EXPECTED_BRANCHES
    assert tree.typenames()["genWeight"] == "float"
    assert tree.typenames()["Muon_charge"] == "int32_t[]"
    ev = tree.arrays(library="ak")
    assert ak.all(ev.nMuon == ak.num(ev.Muon_pt))
    assert ak.all(ev.nJet == ak.num(ev.Jet_pt))
    for pt in (ev.Muon_pt, ev.Jet_pt):
        assert ak.all(pt[:, 1:] <= pt[:, :-1]), "objects must be sorted by descending pt"
    assert ak.all(abs(ev.Muon_eta) < 2.4)
    assert ak.all(abs(ev.Jet_eta) < 4.7)
    assert set(np.unique(ak.to_numpy(ak.flatten(ev.Muon_charge)))) <= {-1, 1}
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(ev.Muon_mass)), MUON_MASS, rtol=1e-6)
    assert ak.all(ev.Muon_pfRelIso04_all >= 0) and ak.all(ev.MET_pt >= 0)
    assert ak.all((ev.Jet_btagCSVV2 >= 0) & (ev.Jet_btagCSVV2 <= 1))
    if process != "ttbar":  # ttbar W muons are generated inside |eta| < 2.4
        assert ak.any(ev.nMuon < 2), "|eta| acceptance must drop some muons"


def test_genweight_signs(synthetic_dataset: dict[str, Path]) -> None:
    for process in ("signal", "dy", "qcd"):
        w = uproot.open(synthetic_dataset[process])["Events"]["genWeight"].array(library="np")
        assert np.all(w > 0) and abs(np.median(w) - 1) < 0.02
    w = uproot.open(synthetic_dataset["ttbar"])["Events"]["genWeight"].array(library="np")
    assert 0.004 < np.mean(w < 0) < 0.02


# ---------------------------------------------------------------- physics


def _leading_pair_mass(ev: ak.Array) -> np.ndarray:
    two = ev[ev.nMuon >= 2]
    pt, eta, phi = (ak.to_numpy(two[f"Muon_{v}"][:, :2]).astype(np.float64) for v in ("pt", "eta", "phi"))
    m2 = 2 * pt[:, 0] * pt[:, 1] * (np.cosh(eta[:, 0] - eta[:, 1]) - np.cos(phi[:, 0] - phi[:, 1]))
    return np.sqrt(m2)


def test_signal_peaks_at_resonance_mass(synthetic_dataset: dict[str, Path]) -> None:
    ev = _raw(synthetic_dataset["signal"])
    mass = _leading_pair_mass(ev)
    assert abs(np.median(mass) - 100.0) < 2.0
    assert 0.5 < np.mean(np.abs(mass - 100) < 5) < 0.99  # narrow peak, smeared by 2% pT resolution
    two = ev[ev.nMuon >= 2]
    assert np.mean(ak.to_numpy(two.Muon_charge[:, 0] * two.Muon_charge[:, 1]) < 0) > 0.9


def test_dy_falls_and_ttbar_has_more_jets(synthetic_dataset: dict[str, Path]) -> None:
    dy = _leading_pair_mass(_raw(synthetic_dataset["dy"]))
    assert np.sum((dy > 60) & (dy < 80)) > 3 * np.sum((dy > 120) & (dy < 140))
    njet = {p: ak.mean(_raw(synthetic_dataset[p]).nJet) for p in ("signal", "ttbar")}
    assert njet["ttbar"] > njet["signal"] + 2
    met = {p: np.median(_raw(synthetic_dataset[p]).MET_pt) for p in ("signal", "ttbar")}
    assert met["ttbar"] > 2 * met["signal"]


def test_qcd_muons_are_soft_and_non_isolated(synthetic_dataset: dict[str, Path]) -> None:
    sig, qcd = _raw(synthetic_dataset["signal"]), _raw(synthetic_dataset["qcd"])
    iso_sig = np.median(ak.to_numpy(ak.flatten(sig.Muon_pfRelIso04_all[:, :1])))
    iso_qcd = np.median(ak.to_numpy(ak.flatten(qcd.Muon_pfRelIso04_all[:, :1])))
    assert iso_qcd > 5 * iso_sig
    assert np.median(ak.to_numpy(ak.flatten(qcd.Muon_pt[:, :1]))) < 20


# ----------------------------------------------------------------- dataset & errors


def test_generate_dataset_paths(tmp_path: Path) -> None:
    paths = generate_dataset(tmp_path, n_events={"signal": 10, "qcd": 20}, seed=2)
    assert list(paths) == ["signal", "qcd"]
    assert [uproot.open(p)["Events"].num_entries for p in paths.values()] == [10, 20]
    assert paths["qcd"] == tmp_path / "qcd.root"
    every = generate_dataset(tmp_path / "all", n_events=5)
    assert set(every) == set(PROCESSES)
    assert all(meta["xsec_pb"] > 0 and meta["description"] for meta in PROCESSES.values())


def test_unknown_process_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"'ttbarr'.*did you mean 'ttbar'") as info:
        generate_sample(tmp_path / "x.root", "ttbarr", 10, seed=1)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="n_events"):
        generate_sample(tmp_path / "x.root", "signal", -1, seed=1)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, MemoryError])
def test_an_interrupted_write_leaves_neither_a_partial_nor_a_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: type[BaseException]
) -> None:
    import diffhep.io.generate as gen

    blocks = gen._blocks

    def interrupted(process: str, n_events: int, seed: int):
        first = next(blocks(process, n_events, seed))
        yield first  # written (chunk_size below), then the interrupt
        raise exc

    monkeypatch.setattr(gen, "_blocks", interrupted)
    with pytest.raises(exc):
        generate_sample(tmp_path / "signal.root", "signal", 3 * BLOCK_SIZE, seed=1, chunk_size=1000)
    assert list(tmp_path.iterdir()) == []

    # A file written before stays as it was.
    monkeypatch.setattr(gen, "_blocks", blocks)
    before = generate_sample(tmp_path / "signal.root", "signal", 10, seed=1).read_bytes()
    monkeypatch.setattr(gen, "_blocks", interrupted)
    with pytest.raises(exc):
        generate_sample(tmp_path / "signal.root", "signal", 3 * BLOCK_SIZE, seed=1, chunk_size=1000)
    assert [p.name for p in tmp_path.iterdir()] == ["signal.root"]
    assert (tmp_path / "signal.root").read_bytes() == before
