"""Streaming value-and-gradient over chunks (diffhep.execute) against the in-memory AGC ttbar step.

The dataset helpers here are also used by ``test_execute_dask.py``.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffhep.errors import InputError
from diffhep.examples import ttbar
from diffhep.execute import (
    Chunk,
    ChunkCache,
    ChunkedStep,
    ReadAndPrepare,
    bucket,
    pad_to_buckets,
    plan_chunks,
    streaming_value_and_grad,
)
from diffhep.infer import asimov_significance
from diffhep.io import read_events
from diffhep.io.generate_agc import generate_agc_sample
from diffhep.jagged import from_awkward

SLOPES = {c.name: c.slope for c in ttbar.CUTS}
THETA = {"lepton_pt_min": 28.0, "jet_pt_min": 31.0, "btag_min": 0.55}
NORMS = {"ttbar": 2e-3, "background": 7e-3}
#: Uneven chunks (700, 760 events) and an empty file; sizes chosen so that every
#: chunk pads to one power-of-two shape (one compiled program: compiling the
#: ttbar step takes seconds per shape on a CPU core).
CHUNK_SIZE = 760
PAD = partial(pad_to_buckets, resolution=1)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def make_files(folder: Path) -> dict[str, list[Path]]:
    """Three ttbar files (2100, 1520, 0 events) and a second ttbar sample standing in for a background."""
    return {
        "ttbar": [
            generate_agc_sample(folder / "tt_a.root", "ttbar", 2100, seed=1),
            generate_agc_sample(folder / "tt_b.root", "ttbar", 1520, seed=2),
            generate_agc_sample(folder / "tt_empty.root", "ttbar", 0, seed=3),
        ],
        "background": [generate_agc_sample(folder / "bkg.root", "ttbar", 1400, seed=4)],
    }


def histograms(theta, data):
    """The differentiable step of one chunk: ``{"4j1b", "4j2b"}`` soft histograms."""
    return ttbar.soft_histograms(data, theta, SLOPES)


def objective(h):
    """Asimov significance of ttbar over the background in both regions (25 + 25 bins)."""
    s = jnp.concatenate([h["ttbar"][r].counts for r in ttbar.REGIONS])
    b = jnp.concatenate([h["background"][r].counts for r in ttbar.REGIONS]) + 1.0
    return asimov_significance(s, b, 0.1 * b)


PREPARE = ReadAndPrepare(ttbar.prepare, ttbar.branches(), {d: (n,) for d, n in NORMS.items()})


def in_memory_reference(files: dict[str, list[Path]]):
    """``(value, grad, histograms)`` from one ``ttbar.prepare`` of all events and ``jax.value_and_grad``."""
    events = {d: read_events(f, branches=ttbar.branches()) for d, f in files.items()}
    data = ttbar.prepare(ak.concatenate(list(events.values())), 1.0)
    weights = {}
    start = 0
    for dataset, ev in events.items():
        mask = np.zeros(len(data.base_weight))
        mask[start : start + len(ev)] = NORMS[dataset]
        weights[dataset] = data.base_weight * mask
        start += len(ev)

    def run(theta):
        h = {d: histograms(theta, dataclasses.replace(data, base_weight=w)) for d, w in weights.items()}
        return objective(h), h

    (value, hists), grad = jax.jit(jax.value_and_grad(run, has_aux=True))(THETA)
    return value, grad, hists


def assert_same_step(result, reference, rtol=1e-10):
    value, grad, hists = reference
    np.testing.assert_allclose(result.value, value, rtol=rtol)
    for name in THETA:
        np.testing.assert_allclose(result.grad[name], grad[name], rtol=rtol, atol=1e-12 * abs(grad[name]))
    for dataset, regions in hists.items():
        for region, h in regions.items():
            got = result.histograms[dataset][region]
            np.testing.assert_allclose(got.counts, h.counts, rtol=rtol, atol=1e-14 * float(h.counts.max()))
            np.testing.assert_allclose(got.sumw2, h.sumw2, rtol=rtol, atol=1e-14 * float(h.sumw2.max()))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_files(tmp_path_factory.mktemp("agc"))


@pytest.fixture(scope="module")
def reference(files):
    with jax.enable_x64(True):
        return in_memory_reference(files)


@pytest.fixture(scope="module")
def chunks(files):
    return plan_chunks(files, chunk_size=CHUNK_SIZE)


def test_plan_is_uneven_with_an_empty_chunk(chunks):
    sizes = [(Path(c.file).name, c.n_events) for c in chunks]
    expected = [("tt_a.root", 700)] * 3 + [("tt_b.root", 760)] * 2 + [("tt_empty.root", 0)]
    assert sizes == expected + [("bkg.root", 700)] * 2
    assert [c.dataset for c in chunks] == ["ttbar"] * 6 + ["background"] * 2


def test_streaming_equals_in_memory(chunks, reference, monkeypatch):
    def prepare(chunk):  # reading and preparing build host data (ttbar.prepare goes through jnp); allowed
        with jax.transfer_guard_host_to_device("allow"):
            return PREPARE(chunk)

    step = ChunkedStep(histograms, chunks, prepare=prepare, pad=PAD)
    copies = []
    device_put = jax.device_put
    monkeypatch.setattr(jax, "device_put", lambda x, *a, **k: copies.append(1) or device_put(x, *a, **k))
    with jax.transfer_guard_host_to_device("disallow"):  # on a GPU: no copy but the explicit ones below
        result = step.value_and_grad(objective, THETA)
    assert len(copies) == 1 + sum(c.n_events > 0 for c in chunks)  # theta, then each chunk once
    assert_same_step(result, reference)
    assert all(abs(float(g)) > 0 for g in result.grad.values())
    assert len(step.signatures) == 1  # seven chunks, one compiled program


def test_cached_pass_reads_no_root_file(chunks, reference, tmp_path, monkeypatch):
    cache = ChunkCache(tmp_path / "cache", version="ttbar-test-1")
    run = partial(streaming_value_and_grad, histograms, objective, chunks, THETA, prepare=PREPARE, pad=PAD)
    first = run(cache=cache)
    assert (cache.hits, cache.misses) == (0, 7)
    assert len(list((tmp_path / "cache").glob("*.chunk"))) == 7

    import uproot

    def no_root(*args, **kwargs):
        raise AssertionError("a ROOT file was opened on the cached pass")

    monkeypatch.setattr(uproot, "open", no_root)
    asked = []
    prefetch = cache.prefetch
    monkeypatch.setattr(cache, "prefetch", lambda c, *a: asked.append(c) or prefetch(c, *a))
    second = run(cache=cache)
    assert (cache.hits, cache.misses) == (7, 7)
    assert asked == [c for c in chunks if c.n_events > 0][1:]  # each chunk asked for before the one before it runs
    np.testing.assert_array_equal(second.value, first.value)
    for name in THETA:
        np.testing.assert_array_equal(second.grad[name], first.grad[name])
    assert_same_step(second, reference)
    other = ChunkCache(tmp_path / "cache", version="ttbar-test-2")
    assert other.load(chunks[0]) is None  # another version never reads these entries


def test_generic_step_matches_jax_grad_with_an_all_empty_dataset():
    x = np.linspace(0.0, 10.0, 40)
    chunks = [Chunk("a", "x", "t", 0, 20), Chunk("a", "x", "t", 20, 20), Chunk("b", "x", "t", 20, 40)]
    chunks.append(Chunk("none", "x", "t", 0, 0))

    def hist(theta, d):
        w = jax.nn.sigmoid(d["x"] - theta["lo"]) * jax.nn.sigmoid(theta["hi"] - d["x"])
        return {"n": jnp.sum(w), "m": (jnp.sum(w * d["x"]), jnp.sum(w[:, None] * jnp.eye(2)[d["i"]], 0))}

    def obj(h):
        return h["a"]["n"] ** 2 / (1.0 + h["b"]["n"]) + h["a"]["m"][0] * h["b"]["m"][1].sum() + h["none"]["n"]

    def prepare(c):
        return {"x": x[c.start : c.stop], "i": np.arange(c.start, c.stop) % 2}

    theta = {"lo": 2.5, "hi": 7.0}
    result = streaming_value_and_grad(hist, obj, chunks, theta, prepare=prepare, pad=None)

    def direct(t):
        h = {"a": hist(t, prepare(Chunk("a", "x", "t", 0, 20))), "b": hist(t, prepare(chunks[2]))}
        h["none"] = jax.tree.map(jnp.zeros_like, h["a"])
        return obj(h)

    value, grad = jax.jit(jax.value_and_grad(direct))(theta)
    np.testing.assert_allclose(result.value, value, rtol=1e-13)
    for name in theta:
        np.testing.assert_allclose(result.grad[name], grad[name], rtol=1e-12)
    assert float(result.histograms["none"]["n"]) == 0.0


def test_padding_keeps_a_valid_structure():
    array = ak.Array([[{"pt": 5.0}, {"pt": 3.0}], [], [{"pt": 7.0}, {"pt": 1.0}, {"pt": 0.5}]])
    jets = from_awkward(array)
    data = {"jets": jets, "weight": jnp.array([1.0, 2.0, 3.0]), "table": jnp.arange(4.0)}
    padded = pad_to_buckets(data, resolution=1)
    j = padded["jets"]
    assert (j.n_events, j.n_objects, j.max_count) == (4, 8, 4)
    ids, local = np.asarray(j.segment_ids), np.asarray(j.local_index)
    assert np.all(np.diff(ids) >= 0) and np.all(local < j.max_count) and ids.max() < j.n_events
    np.testing.assert_array_equal(padded["weight"], [1.0, 2.0, 3.0, 0.0])
    np.testing.assert_array_equal(padded["table"], np.arange(4.0))  # not an event or object axis
    np.testing.assert_allclose(j.sum(j.pt)[:3], jets.sum(jets.pt))
    assert [bucket(n, 1) for n in (1, 5, 8, 9)] == [1, 8, 8, 16]


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "200k"])
def test_bad_chunk_size_is_one_line(files, bad):
    with pytest.raises(InputError, match="chunk_size must be a positive whole number") as err:
        plan_chunks(files, chunk_size=bad)
    assert "\n" not in str(err.value)


def test_bad_inputs_are_one_line(tmp_path, files):
    with pytest.raises(InputError, match="file not found"):
        plan_chunks({"ttbar": tmp_path / "missing.root"})
    with pytest.raises(InputError, match="no input files"):
        plan_chunks({"ttbar": []})
    with pytest.raises(InputError, match="no datasets"):
        plan_chunks({})
    with pytest.raises(InputError, match="no chunks"):
        ChunkedStep(histograms, [], prepare=PREPARE)
    empty = plan_chunks({"ttbar": files["ttbar"][2]})
    with pytest.raises(InputError, match="all 1 chunks are empty"):
        ChunkedStep(histograms, empty, prepare=PREPARE)
    with pytest.raises(InputError, match="must be a scalar"):
        ChunkedStep(histograms, plan_chunks(files), prepare=PREPARE).sums({"jet_pt_min": [1.0, 2.0]})
    with pytest.raises(InputError, match="power of two"):
        bucket(10, resolution=3)
    with pytest.raises(InputError, match="cache version"):
        ChunkCache(tmp_path, version="")
    with pytest.raises(InputError, match="no prepare arguments for dataset 'other'"):
        PREPARE(Chunk("other", str(files["ttbar"][0]), "Events", 0, 10))


MEMORY_SCRIPT = """
import json, sys
from functools import partial
import jax
jax.config.update("jax_enable_x64", True)
sys.path.insert(0, {tests!r})
from test_execute_streaming import PREPARE, THETA, histograms, objective
from diffhep.execute import ChunkedStep, pad_to_buckets, plan_chunks

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

def step(copies):
    chunks = plan_chunks({{"ttbar": [{path!r}] * copies}}, chunk_size={chunk})
    return ChunkedStep(histograms, chunks, prepare=PREPARE, pad=partial(pad_to_buckets, resolution=1)
                       ).value_and_grad(objective_one, THETA)

def objective_one(h):
    return sum((x.counts ** 2).sum() for x in h["ttbar"].values())

step(1)  # compile
reset_peak(); step(1); one = peak_mb()
reset_peak(); step(10); ten = peak_mb()
print(json.dumps({{"one": one, "ten": ten}}))
"""


def test_peak_memory_does_not_grow_with_events(tmp_path):
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
    path = generate_agc_sample(tmp_path / "tt.root", "ttbar", 8000, seed=5)
    script = MEMORY_SCRIPT.format(tests=str(Path(__file__).resolve().parent), path=str(path), chunk=2000)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    peaks = json.loads(out.stdout.strip().splitlines()[-1])
    assert peaks["ten"] < 1.2 * peaks["one"], peaks
