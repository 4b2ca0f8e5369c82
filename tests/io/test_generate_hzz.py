"""Synthetic H->ZZ*->4l samples: schema of the tutorial file, determinism, atomic writes, physics."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
import vector

from diffhep.errors import InputError
from diffhep.examples import hzz
from diffhep.io import HZZ_PROCESSES, generate_common, generate_hzz_dataset, generate_hzz_sample, read_events
from diffhep.io import generate_hzz as gen

vector.register_awkward()

COUNTS = {"higgs": 4_000, "zz": 3_000, "zjets": 6_000, "ttbar_4l": 3_000}


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate_hzz_dataset(tmp_path_factory.mktemp("hzz"), COUNTS, seed=5)


@pytest.fixture(scope="module")
def events(samples: dict[str, Path]) -> dict[str, ak.Array]:
    return {p: read_events(path, tree="events") for p, path in samples.items()}


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(generate_common, "BLOCK_SIZE", 1_000)
    return 1_000


def _raw(path: Path) -> ak.Array:
    return uproot.open(path)["events"].arrays(library="ak")


def _leptons(ev: ak.Array) -> ak.Array:
    """Muons then electrons as Momentum4D, with ``is_muon`` and ``iso``."""
    parts = [
        ak.zip(
            {
                "px": c.Px,
                "py": c.Py,
                "pz": c.Pz,
                "E": c.E,
                "iso": c.Iso,
                "is_muon": ak.full_like(c.Charge, mu, dtype=bool),
            },
            with_name="Momentum4D",
        )
        for c, mu in ((ev.Muon, True), (ev.Electron, False))
    ]
    return ak.concatenate(parts, axis=1)


# ------------------------------------------------------------------ schema


def test_schema_matches_the_tutorial_file(samples: dict[str, Path], data_file) -> None:
    real = uproot.open(data_file("uproot-HZZ.root"))["events"].typenames()
    for process, path in samples.items():
        types = uproot.open(path)["events"].typenames()
        assert list(types) == gen.BRANCHES, process
        assert types == {b: real[b] for b in types}, process
    assert set(hzz.BRANCHES) <= set(gen.BRANCHES)
    empty = uproot.open(generate_hzz_sample(samples["zz"].parent / "empty.root", "zz", 0, seed=1))["events"]
    assert empty.num_entries == 0 and empty.typenames() == types


def test_collections_are_consistent(events: dict[str, ak.Array]) -> None:
    for process, ev in events.items():
        for name in ("Muon", "Electron", "Jet"):
            c = ev[name]
            assert ak.all(ev[f"N{name}"] == ak.num(c, axis=1)), (process, name)
            pt = np.hypot(c.Px, c.Py)
            assert ak.all(pt[:, 1:] <= pt[:, :-1] * (1 + 1e-6)), (process, name)
            p = np.sqrt(c.Px**2 + c.Py**2 + c.Pz**2)
            assert ak.all(c.E >= p * (1 - 1e-6)), (process, name)
        for lep in (ev.Muon, ev.Electron):
            assert set(np.unique(ak.to_numpy(ak.flatten(lep.Charge)))) <= {-1, 1}
            assert ak.all(lep.Iso >= 0)
        assert ak.all(np.hypot(ev.Jet.Px, ev.Jet.Py) > 30)
        assert ak.all(ev.EventWeight > 0)


# ---------------------------------------------------------------- determinism and atomic writes


def test_same_seed_same_arrays_any_chunk_size(tmp_path: Path, small_blocks: int) -> None:
    a = _raw(generate_hzz_sample(tmp_path / "a.root", "higgs", 2_321, seed=3))
    b = _raw(generate_hzz_sample(tmp_path / "b.root", "higgs", 2_321, seed=3, chunk_size=700))
    assert a.fields == b.fields and all(ak.array_equal(a[f], b[f]) for f in a.fields)
    c = _raw(generate_hzz_sample(tmp_path / "c.root", "higgs", 2_321, seed=4))
    assert not ak.array_equal(a.Muon_Px, c.Muon_Px)


class Interrupted(BaseException):
    """Like KeyboardInterrupt, but cannot stop the test session."""


def test_interrupted_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_blocks: int
) -> None:
    original = gen._MAKERS["zz"]

    def fail_on_second_block(rng: np.random.Generator, n: int, first: int) -> dict:
        if first >= small_blocks:
            raise Interrupted
        return original(rng, n, first)

    monkeypatch.setitem(gen._MAKERS, "zz", fail_on_second_block)
    with pytest.raises(Interrupted):
        generate_hzz_sample(tmp_path / "zz.root", "zz", small_blocks + 1, seed=1, chunk_size=100)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ physics


def test_higgs_four_lepton_mass_peaks_at_125(events: dict[str, ak.Array]) -> None:
    leptons = _leptons(events["higgs"])
    four = leptons[ak.num(leptons, axis=1) == 4]
    assert len(four) > 0.3 * COUNTS["higgs"]
    m4l = ak.to_numpy((four[:, 0] + four[:, 1] + four[:, 2] + four[:, 3]).mass)
    counts, edges = np.histogram(m4l, bins=np.arange(80.0, 300.0, 2.0))
    assert 120 <= edges[np.argmax(counts)] < 130
    assert np.mean(np.abs(m4l - 125) < 5) > 0.9
    n_mu = ak.to_numpy(ak.sum(four.is_muon, axis=1))
    shares = [np.mean(n_mu == k) for k in (4, 2, 0)]  # 4mu, 2e2mu, 4e
    assert shares[1] > max(shares[0], shares[2]) and min(shares) > 0.15


def test_backgrounds_look_like_backgrounds(events: dict[str, ak.Array]) -> None:
    cuts = {p.name: p.init for p in hzz.CUTS}
    zz = np.asarray(hzz.hard_selection(events["zz"], cuts, 1.0)[0])  # (a masked array)
    assert np.median(zz) > 180 and np.mean((zz > 120) & (zz < 130)) < 0.05
    iso = {p: np.median(ak.to_numpy(ak.flatten(_leptons(events[p]).iso))) for p in ("higgs", "zjets", "ttbar_4l")}
    assert iso["zjets"] > 2 * iso["higgs"] and iso["ttbar_4l"] > 2 * iso["higgs"]


def test_hard_selection_prefers_higgs(events: dict[str, ak.Array]) -> None:
    cuts = {p.name: p.init for p in hzz.CUTS}
    eff, m4l, selected = {}, {}, {}
    for p, ev in events.items():
        mass, _, cutflow = hzz.hard_selection(ev, cuts, 1.0)
        assert np.all(np.diff(cutflow) <= 0)
        m4l[p], selected[p], eff[p] = np.asarray(mass), cutflow[-1], cutflow[-1] / cutflow[0]
    assert 0.25 < eff["higgs"] < 0.7 and abs(np.median(m4l["higgs"]) - 125) < 2
    assert eff["higgs"] > 10 * eff["zjets"] > 0 and eff["higgs"] > 10 * eff["ttbar_4l"] > 0
    # Tighter isolation removes the fakes much faster than the Higgs signal.
    tight = {**cuts, "iso_max": 2.0}
    kept = {p: hzz.hard_selection(events[p], tight, 1.0)[2][-1] / selected[p] for p in ("higgs", "zjets")}
    assert kept["higgs"] > 0.5 and kept["zjets"] < 0.5 * kept["higgs"]


# ------------------------------------------------------------------ API


def test_dataset_and_errors(tmp_path: Path) -> None:
    every = generate_hzz_dataset(tmp_path, 10, seed=2)
    assert list(every) == list(HZZ_PROCESSES)
    assert all(meta["xsec_pb"] > 0 and meta["description"] for meta in HZZ_PROCESSES.values())
    with pytest.raises(InputError, match=r"'higs'.*did you mean 'higgs'"):
        generate_hzz_sample(tmp_path / "x.root", "higs", 10, seed=1)
    with pytest.raises(InputError, match="n_events"):
        generate_hzz_sample(tmp_path / "x.root", "zz", 1.5, seed=1)  # type: ignore[arg-type]
