"""Fuzz the ROOT reader: a small generated file, truncated, with flipped bytes or zeroed ranges.

Entry points: :func:`diffhep.io.read.read_events` and
:func:`~diffhep.io.read.iterate_events` (every branch, by name), ``diffhep validate
--output DIR`` on a config reading the file, and, with ``--fuzz-long`` only (each
run compiles for seconds), ``diffhep run --output DIR``.

A read that succeeds must give the undamaged file's events, except where a damaged
byte lies inside a basket stored uncompressed: ROOT keeps no checksum there, so a
changed number cannot be seen by any reader (counted as "changed in an
uncompressed basket"). Compressed baskets carry zlib's checksum.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import awkward as ak
import pytest
import uproot
from hypothesis import given
from hypothesis import strategies as st

from diffhep.io.generate import generate_sample
from diffhep.io.read import iterate_events, read_events

CONFIG = (
    "name: damaged\nlumi_pb: 1.0\nsamples:\n  dy: {role: signal, files: [dy.root], xsec_pb: 1.0, weight: genWeight}\n"
    "parameters:\n  cut: {init: 20, bounds: [0, 100], slope: 1.0}\nobjects:\n  muons: {collection: Muon, cuts: pt > 5}\n"
    "regions:\n  sr: {select: count(muons) >= 1 and MET_pt > cut, observable: MET_pt,"
    " binning: {bins: 4, range: [0, 200]}, bandwidth: 0}\n"
)


class Good:
    """The undamaged file: its bytes, branches, events and the byte ranges of its uncompressed baskets."""

    def __init__(self, path: Path) -> None:
        self.data = path.read_bytes()
        with uproot.open(path) as file:
            tree = file["Events"]
            self.branches = list(tree.keys())
            self.raw = []
            for branch in tree.values():
                seeks, sizes = branch.member("fBasketSeek"), branch.member("fBasketBytes")
                if branch.compressed_bytes == branch.uncompressed_bytes:
                    self.raw += [(int(seeks[i]), int(seeks[i] + sizes[i])) for i in range(branch.num_baskets)]
        self.events = ak.to_list(read_events(path, branches=self.branches))

    def in_raw_basket(self, offsets: list[int]) -> bool:
        return any(lo <= offset < hi for offset in offsets for lo, hi in self.raw)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Good:
    return Good(generate_sample(tmp_path_factory.mktemp("fuzz_root") / "dy.root", "dy", 200, seed=1))


DAMAGE = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=3)),
    st.tuples(st.just("zero"), st.floats(0, 1, exclude_max=True), st.integers(1, 64)),
)


def damage(data: bytes, action: tuple) -> tuple[bytes, list[int]]:
    """The damaged bytes and the offsets changed (none for a truncation)."""
    if action[0] == "truncate":
        return data[: int(action[1] * len(data))], []
    out = bytearray(data)
    if action[0] == "zero":
        start = int(action[1] * len(data))
        changed = [i for i in range(start, min(start + action[2], len(data))) if out[i]]
        out[start : start + action[2]] = bytes(len(out[start : start + action[2]]))
        return bytes(out), changed
    for where, mask in action[1]:
        out[int(where * len(data))] ^= mask
    return bytes(out), [int(where * len(data)) for where, _ in action[1]]


def _same_or_raw(good: Good, events: list, changed: list[int], case) -> None:
    if events != good.events:
        assert good.in_raw_basket(changed), f"different events, no damaged byte in an uncompressed basket: {changed}"
        case.outcome("changed in an uncompressed basket")


def test_damaged_files_read(fuzz, good: Good) -> None:
    @fuzz.settings(examples=20)
    @given(DAMAGE)
    def check(action: tuple) -> None:
        data, changed = damage(good.data, action)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "dy.root"
            path.write_bytes(data)
            with fuzz.case("root files: read_events") as case:
                events = ak.to_list(read_events(path, branches=good.branches))
                _same_or_raw(good, events, changed, case)
            with fuzz.case("root files: iterate_events") as case:
                batches = iterate_events(path, branches=good.branches, step_size=64)
                events = [event for batch in batches for event in ak.to_list(batch)]
                _same_or_raw(good, events, changed, case)

    check()


def _command(fuzz, good: Good, command: str, action: tuple) -> None:
    data, _ = damage(good.data, action)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "dy.root").write_bytes(data)
        (Path(folder) / "config.yaml").write_text(CONFIG)
        output = Path(folder) / "out"
        argv = [command, str(Path(folder) / "config.yaml"), "--output", str(output)]
        fuzz.cli(f"root files: {command}", [*argv, "--quiet"] if command == "run" else argv, output=output)


def test_damaged_files_validate(fuzz, good: Good) -> None:
    @fuzz.settings(examples=8)
    @given(DAMAGE)
    def check(action: tuple) -> None:
        _command(fuzz, good, "validate", action)

    check()


def test_damaged_files_run(fuzz, good: Good) -> None:
    if fuzz.multiplier == 1:
        pytest.skip("--fuzz-long only: a run that reads the file compiles for seconds")

    @fuzz.settings(examples=1)
    @given(DAMAGE)
    def check(action: tuple) -> None:
        _command(fuzz, good, "run", action)

    check()
