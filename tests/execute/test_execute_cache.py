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
