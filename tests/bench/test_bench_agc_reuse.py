"""``diffhep bench agc`` reuses a generated file only when it was generated with the same settings."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import pytest
import uproot

from diffhep.bench import agc as bench_agc

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "bench_tiny.yaml"


@pytest.fixture
def generated(monkeypatch):
    """The names of the files the prepare_config calls generated."""
    calls: list[str] = []
    generate = bench_agc.generate_agc_sample

    def counting(path, process, n, *, seed):
        calls.append(Path(path).name)
        return generate(path, process, n, seed=seed)

    monkeypatch.setattr(bench_agc, "generate_agc_sample", counting)
    return calls


def _events(path: Path) -> ak.Array:
    with uproot.open(path) as f:
        return f["Events"].arrays(["Jet_pt", "genWeight"])


def test_files_are_reused_only_with_the_same_seed_process_events_and_generator(tmp_path, generated, monkeypatch):
    folder = tmp_path / "events_300"
    bench_agc.prepare_config(CONFIG, 300, folder, seed=1)
    assert sorted(generated) == ["ttbar.root", "wjets.root"]
    first = _events(folder / "ttbar.root")

    generated.clear()
    bench_agc.prepare_config(CONFIG, 300, folder, seed=1)
    assert generated == []  # the same settings: both reused

    bench_agc.prepare_config(CONFIG, 300, folder, seed=2)
    assert sorted(generated) == ["ttbar.root", "wjets.root"]  # another seed: both generated again
    assert not ak.array_equal(_events(folder / "ttbar.root"), first)

    # Another process for a sample (same name, same number of events): that file generated again.
    generated.clear()
    other = tmp_path / "other.yaml"
    other.write_text(CONFIG.read_text().replace("{process: wjets,", "{process: single_top_tW,"))
    bench_agc.prepare_config(other, 300, folder, seed=2)
    assert generated == ["wjets.root"]

    # Another version of the generator: both generated again.
    generated.clear()
    monkeypatch.setattr(bench_agc, "AGC_SCHEMA_VERSION", bench_agc.AGC_SCHEMA_VERSION + 1)
    bench_agc.prepare_config(CONFIG, 300, folder, seed=2)
    assert sorted(generated) == ["ttbar.root", "wjets.root"]

    # A file of the right size that the record does not know (written by something else): generated again.
    generated.clear()
    (folder / bench_agc.MANIFEST).unlink()
    bench_agc.prepare_config(CONFIG, 300, folder, seed=2)
    assert sorted(generated) == ["ttbar.root", "wjets.root"]
