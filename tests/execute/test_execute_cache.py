"""The chunk cache is keyed on the code that prepares the chunks: an edited plugin is a cache miss."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from diffhep.config import FUNCTIONS, load_plugins
from diffhep.errors import InputError
from diffhep.execute import ChunkCache, plan_chunks
from diffhep.io.generate import generate_sample

PLUGIN = """\
from diffhep.config import register

@register("cache_test_shift")
def cache_test_shift(x):
    return x + {shift}
"""


@pytest.fixture
def chunk(tmp_path):
    (only,) = plan_chunks(str(generate_sample(tmp_path / "s.root", "signal", 20, seed=1)), chunk_size=100)
    return only


def _prepare(chunk):
    """What a prepare step using the plugin stores (the plugin applied on the host)."""
    return {"x": FUNCTIONS["cache_test_shift"](np.arange(chunk.n_events, dtype=float))}


def test_an_edited_plugin_is_a_cache_miss(tmp_path, chunk):
    plugin = tmp_path / "shift_plugin.py"
    try:
        plugin.write_text(PLUGIN.format(shift=0))
        load_plugins([plugin])
        first = ChunkCache(tmp_path / "cache", version="v1")
        assert first.get(chunk, _prepare)["x"][0] == 0.0 and first.misses == 1
        again = ChunkCache(tmp_path / "cache", version="v1")
        assert again.get(chunk, _prepare)["x"][0] == 0.0 and again.hits == 1  # same code: a hit

        plugin.write_text(PLUGIN.format(shift=100))  # edited: imported again by the loader
        load_plugins([plugin])
        edited = ChunkCache(tmp_path / "cache", version="v1")
        assert edited.key(chunk) != first.key(chunk)
        assert edited.load(chunk) is None
        assert edited.get(chunk, _prepare)["x"][0] == 100.0 and edited.misses == 1

        # A copy sent to a worker keys as its original (the digests travel with it).
        assert pickle.loads(pickle.dumps(edited)).key(chunk) == edited.key(chunk)
    finally:
        FUNCTIONS.pop("cache_test_shift", None)


def test_explicit_sources_key_the_cache(tmp_path, chunk):
    source = tmp_path / "prepare.py"
    source.write_text("one")
    cache = ChunkCache(tmp_path / "cache", version="v1", sources=[source])
    cache.store(chunk, {"x": np.zeros(3)})
    assert ChunkCache(tmp_path / "cache", version="v1", sources=[source]).load(chunk) is not None
    source.write_text("two")
    assert ChunkCache(tmp_path / "cache", version="v1", sources=[source]).load(chunk) is None
    with pytest.raises(InputError, match="cache source .*missing.py cannot be read"):
        ChunkCache(tmp_path / "cache", version="v1", sources=[tmp_path / "missing.py"])


def test_entries_are_mapped_read_only_and_aligned_so_the_cpu_step_copies_nothing(tmp_path, chunk):
    """Format 2: each leaf is a read-only view of the memory-mapped file at a 64-byte-aligned address, so
    ``jax.device_put`` on the CPU uses the file's pages as the device buffer (no copy); every dtype, shape
    (0-d, empty, 2-d) and static field comes back."""
    import jax

    from diffhep.jagged import Jagged

    cache = ChunkCache(tmp_path / "cache", version="v1")
    jagged = Jagged(
        fields={"pt": np.linspace(1.0, 2.0, 5, dtype=np.float32)},
        segment_ids=np.array([0, 0, 1, 2, 2], dtype=np.int32),
        local_index=np.array([0, 1, 0, 0, 1], dtype=np.int32),
        n_events=3,
        max_count=2,
    )
    data = {"jets": jagged, "w": np.arange(7, dtype=np.float32), "flag": np.array([True, False, True]), "n": np.int64(3),
            "empty": np.zeros((0, 4), dtype=np.int16), "grid": np.arange(12, dtype=np.uint8).reshape(3, 4)}  # fmt: skip
    cache.store(chunk, data)
    loaded = cache.load(chunk)
    assert jax.tree.structure(loaded) == jax.tree.structure(data)
    assert loaded["jets"].n_events == 3 and loaded["jets"].max_count == 2
    for got, want in zip(jax.tree.leaves(loaded), jax.tree.leaves(data)):
        assert got.dtype == np.asarray(want).dtype and got.shape == np.shape(want)
        np.testing.assert_array_equal(got, want)
        assert not got.flags.writeable
        if got.size:
            assert got.ctypes.data % 64 == 0
    if jax.default_backend() == "cpu":
        weights = loaded["w"]
        assert jax.device_put(weights).unsafe_buffer_pointer() == weights.ctypes.data  # no copy


def test_damaged_entries_are_misses_and_object_arrays_are_refused(tmp_path, chunk):
    cache = ChunkCache(tmp_path / "cache", version="v1")
    path = cache.store(chunk, {"x": np.arange(1000.0)})
    whole = path.read_bytes()
    for damaged in (whole[: len(whole) // 2], b"", b"PK\x03\x04 an npz of format 1"):
        path.write_bytes(damaged)
        assert cache.load(chunk) is None
    assert cache.get(chunk, lambda c: {"x": np.ones(2)})["x"].tolist() == [1.0, 1.0] and cache.misses == 1
    assert cache.load(chunk)["x"].tolist() == [1.0, 1.0]  # rewritten whole
    with pytest.raises(InputError, match="leaf 0 has dtype object"):
        cache.store(chunk, {"x": np.array([None, 1], dtype=object)})
    assert cache.load(chunk)["x"].tolist() == [1.0, 1.0]  # the failed write left the entry as it was
    assert not list((tmp_path / "cache").glob(".*.tmp"))


def test_a_tagged_entry_is_a_second_form_of_the_chunk(tmp_path, chunk):
    cache = ChunkCache(tmp_path / "cache", version="v1")
    cache.store(chunk, {"x": np.arange(3.0)})
    assert cache.load(chunk, "padded-1") is None
    cache.store(chunk, {"x": np.arange(4.0)}, "padded-1")
    assert cache.load(chunk)["x"].tolist() == [0.0, 1.0, 2.0] and cache.load(chunk, "padded-1")["x"].size == 4
    assert cache.path(chunk) != cache.path(chunk, "padded-1") != cache.path(chunk, "padded-2")


def test_prefetch_asks_for_an_entry_that_exists(tmp_path, chunk):
    cache = ChunkCache(tmp_path / "cache", version="v1")
    assert not cache.prefetch(chunk)  # nothing stored yet
    cache.store(chunk, {"x": np.arange(3.0)})
    assert cache.prefetch(chunk) == hasattr(__import__("os"), "posix_fadvise")
    assert not cache.prefetch(chunk, "padded-1")
