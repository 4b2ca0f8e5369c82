"""Configured analyses chunk by chunk (``execution:``): streaming and Dask equal the in-memory analysis.

Two configs on small generated samples:

* ``tests/configs/chunked_agc.yaml``, the AGC selection with a union of
  leptons, trijet candidates and every kind of variation (scale, seeded
  smearing, event weight, other files), with an empty file and uneven chunks;
  its objective is set to ``asimov_significance`` (closed form) for the
  comparison of gradients at 1e-10: with a profiled fit inside the objective
  (``discovery_significance``), ``dZ/dH`` moves by ~1e-7 relative when the
  histograms move by 1e-15 (the fit's tolerance), so forward-mode-then-chain-rule
  and reverse mode agree only to ~1e-8 even in memory;
* the dimuon template (pair candidates with their runs) for the command line:
  one ``diffhep optimize`` that streams (``auto`` with memory short, chunks of 400
  events) gives the final cuts, histograms and workspace of the same optimisation
  run in memory through the library (the in-memory command line is tested in
  tests/cli and tests/templates; ``--execution streaming`` itself with ``diffhep run``
  in tests/engine/test_collection_shapes.py and test_nonfinite_inputs.py).

The Dask cluster is a 2-worker ``LocalCluster(processes=False)``: worker
processes would each import JAX and compile the step again (minutes on the
2 loaded cores of the test machine); the tasks, the futures kept on workers
and the summation tree are the same.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import uproot
import yaml

from diffhep.cli import main
from diffhep.config import load_config
from diffhep.engine import chunked
from diffhep.engine.chunked import ChunkedAnalysis
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.errors import DiffhepError
from diffhep.execute import ExecutionSettings, streaming
from diffhep.histogram import Histogram
from diffhep.io.generate import generate_sample
from diffhep.io.generate_agc import generate_agc_sample
from diffhep.optimize.run import objective_and_grad, run_optimization
from diffhep.optimize.settings import OptimizerSettings

HERE = Path(__file__).resolve().parents[1]  # tests/
AGC_CONFIG = HERE / "configs" / "chunked_agc.yaml"
DIMUON = HERE.parent / "analyses" / "dimuon" / "config.yaml"
#: Events per AGC sample; ttbar also reads an empty file.
AGC_EVENTS = {"ttbar": 1500, "single_top_tW": 500, "wjets": 1200, "ttbar_alt": 900}
#: Uneven chunks: 500 x 3 and an empty one (ttbar), 600 x 2 (wjets), 500 (tW), 450 x 2 (alternative ttbar).
CHUNK_SIZE = 700
CUTS = {"lepton_pt_min": 28.0, "jet_pt_min": 27.0, "btag_min": 0.45}
SLOPE = 1.5


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def agc(tmp_path_factory):
    """The AGC test config on generated samples: ``(config, in-memory analysis, its data, reference)``."""
    folder = tmp_path_factory.mktemp("chunked_agc")
    config = yaml.safe_load(AGC_CONFIG.read_text())
    for name, sample in config["samples"].items():
        path = generate_agc_sample(folder / f"{name}.root", sample["generate"]["process"], AGC_EVENTS[name], seed=1)
        sample["files"] = [str(path)]
    config["samples"]["ttbar"]["files"].append(str(generate_agc_sample(folder / "empty.root", "ttbar", 0, seed=3)))
    alt = generate_agc_sample(folder / "ttbar_alt.root", "ttbar_alt", AGC_EVENTS["ttbar_alt"], seed=2)
    config["systematics"]["ttbar_model"]["up"]["files"] = [str(alt)]
    config["objective"] = {"name": "asimov_significance"}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with jax.enable_x64(True):
        loaded = load_config(folder / "config.yaml")
        memory = ConfiguredAnalysis.from_config(loaded.data, base=loaded.base_dir)
        data = memory.load()

        def objective(cuts, data, slope):  # memory.objective, with its histograms: one compiled program
            soft = memory.soft_histograms(cuts, data, slope)
            return memory.figure_of_merit(soft), soft

        (value, soft), grad = jax.jit(jax.value_and_grad(objective, has_aux=True))(CUTS, data, SLOPE)
        hard = memory.hard_histograms(CUTS)  # in the analysis's order (a jitted function's dicts come out sorted)
        reference = {
            "value": float(value),
            "grad": {k: float(v) for k, v in grad.items()},
            "soft": {
                r: {k: Histogram(np.asarray(soft[r][k].counts), np.asarray(soft[r][k].sumw2)) for k in hs}
                for r, hs in hard.items()
            },  # fmt: skip
            "hard": hard,
            "cutflow": memory.cutflow(CUTS, data),
        }
    return loaded, memory, reference


def _settings(**kw) -> ExecutionSettings:
    return ExecutionSettings(**{"mode": "streaming", "chunk_size": CHUNK_SIZE, **kw})


def assert_same(chunked_analysis: ChunkedAnalysis, reference: dict) -> None:
    """Value, gradient, soft and hard histograms and cutflow equal the in-memory ones."""
    result = chunked_analysis.value_and_grad(CUTS, SLOPE)
    assert float(result.value) == pytest.approx(reference["value"], rel=1e-10)
    for name, g in reference["grad"].items():
        assert float(result.grad[name]) == pytest.approx(g, rel=1e-10, abs=1e-12 * abs(reference["value"]))
    soft = chunked_analysis.program.assemble(result.histograms)
    hard = chunked_analysis.hard_histograms(CUTS)
    assert list(soft) == list(reference["soft"]) and list(hard) == list(reference["hard"])
    for region, samples in reference["soft"].items():
        assert list(soft[region]) == list(samples)  # nominal samples, then variations, as in memory
        for key, h in samples.items():
            scale = max(float(np.max(np.abs(h.counts))), 1e-12)
            np.testing.assert_allclose(soft[region][key].counts, h.counts, rtol=1e-10, atol=1e-12 * scale)
            np.testing.assert_allclose(soft[region][key].sumw2, h.sumw2, rtol=1e-10, atol=1e-12 * scale**2)
            ref = reference["hard"][region][key]
            np.testing.assert_allclose(hard[region][key].counts, ref.counts, rtol=1e-10, atol=1e-12 * scale)
    flow = chunked_analysis.cutflow(CUTS)
    assert list(flow) == list(reference["cutflow"])
    for sample, rows in reference["cutflow"].items():
        assert [r["step"] for r in flow[sample]] == [r["step"] for r in rows]
        for got, want in zip(flow[sample], rows):
            assert got["hard"] == pytest.approx(want["hard"], rel=1e-10, abs=1e-9)
            assert got["soft"] == pytest.approx(want["soft"], rel=1e-10, abs=1e-9)


def test_streaming_equals_in_memory(agc, monkeypatch):
    """Streamed with the default settings: value, gradient, soft and hard histograms and cutflow equal the
    in-memory ones; each chunk is read once and kept prepared in a temporary folder (later passes read no
    ROOT file, and map the chunks padded by the first step), removed with the job."""
    config, memory, reference = agc
    with ChunkedAnalysis(memory, config.data, settings=_settings()) as streamed:
        streamed.load()
        sizes = {}
        for c in streamed.chunks:
            sizes.setdefault(c.dataset, []).append(c.n_events)
        assert sizes["ttbar"] == [500, 500, 500, 0] and sizes["wjets"] == [600, 600]
        assert sizes["ttbar/ttbar_model/up"] == [450, 450] and "ttbar/jet_res/up" in sizes
        scratch, cache = Path(streamed.scratch), streamed.executor.cache
        n_chunks = sum(c.n_events > 0 for c in streamed.chunks)
        assert_same(streamed, reference)  # the passes: sizes (reads), step, hard histograms, cutflow
        assert len(streamed.executor.signatures) == 1  # every chunk padded to one shape: one compiled program
        # each chunk read once, kept prepared, and kept padded to its program's shape
        assert len(list(scratch.glob("*.chunk"))) == 2 * n_chunks and cache.misses == n_chunks
        monkeypatch.setattr("diffhep.engine.chunk_prepare.read_chunk", lambda *a: 1 / 0)
        monkeypatch.setattr("diffhep.engine.chunk_padding.pad_sample_data", lambda *a, **k: 1 / 0)
        for _ in range(2):  # later steps read no ROOT file and pad nothing: they map the padded chunks
            assert float(streamed.value_and_grad(CUTS, SLOPE).value) == pytest.approx(reference["value"], rel=1e-10)
        assert cache.misses == n_chunks and cache.hits == 5 * n_chunks
    assert not scratch.exists()  # removed with the job


def test_streaming_without_reuse_reads_every_pass(agc, monkeypatch):
    """``cache: false`` (``reuse`` off): no folder, every pass reads the chunks again, the same numbers."""
    from diffhep.engine import chunk_prepare

    config, memory, reference = agc
    reads = []
    read_chunk = chunk_prepare.read_chunk
    with ChunkedAnalysis(memory, config.data, settings=_settings(reuse=False)) as streamed:
        streamed.load()
        assert streamed.executor.cache is None and streamed.scratch is None
        monkeypatch.setattr(chunk_prepare, "read_chunk", lambda *a: reads.append(1) or read_chunk(*a))
        result = streamed.value_and_grad(CUTS, SLOPE)
        assert len(reads) == 2 * sum(c.n_events > 0 for c in streamed.chunks)  # the sizes pass, then the step
    assert float(result.value) == pytest.approx(reference["value"], rel=1e-10)
    for name, g in reference["grad"].items():
        assert float(result.grad[name]) == pytest.approx(g, rel=1e-10, abs=1e-12 * abs(reference["value"]))


def test_streaming_with_a_cache_reads_no_root_file_the_second_time(agc, tmp_path, monkeypatch):
    config, memory, reference = agc
    settings = _settings(cache=tmp_path / "cache")  # the chunks (and compiled program) of the test above
    with ChunkedAnalysis(memory, config.data, settings=settings) as first:
        first.load()
        value = float(first.value_and_grad(CUTS, SLOPE).value)
        assert first.executor.cache.misses == sum(c.n_events > 0 for c in first.chunks)
    contractions = len(streaming._CONTRACTIONS)
    with ChunkedAnalysis(memory, config.data, settings=settings) as second:
        second.load()
        monkeypatch.setattr("diffhep.engine.chunk_prepare.read_chunk", lambda *a: 1 / 0)
        assert float(second.value_and_grad(CUTS, SLOPE).value) == value
        assert second.executor.cache.misses == 0
    # a new analysis of the same config finds the objective's compiled contraction again (equal objective_fn)
    assert second.program.objective_fn == first.program.objective_fn and len(streaming._CONTRACTIONS) == contractions
    assert value == pytest.approx(reference["value"], rel=1e-10)


def test_dask_equals_in_memory(agc, no_persistent_cache):
    distributed = pytest.importorskip("distributed")
    config, memory, reference = agc
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0", silence_logs=logging.CRITICAL
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        with ChunkedAnalysis(memory, config.data, settings=_settings(mode="dask"), client=client) as on_dask:
            on_dask.load()
            held = client.who_has([f for _, f in on_dask.executor._data])
            assert len({w for ws in held.values() for w in ws}) == 2  # chunks spread over both workers
            assert_same(on_dask, reference)


# -- the command line ------------------------------------------------------------------
@pytest.fixture(scope="module")
def dimuon(tmp_path_factory) -> Path:
    """The dimuon template with small samples (uneven chunks of 400 events) and a 2-step optimiser."""
    folder = tmp_path_factory.mktemp("chunked_dimuon")
    config = yaml.safe_load(DIMUON.read_text())
    for name, sample in config["samples"].items():
        n = {"signal": 600, "dy": 1000, "ttbar": 500, "qcd": 900}[name]
        sample["files"] = [str(generate_sample(folder / f"{name}.root", sample["generate"]["process"], n, seed=2))]
        sample.pop("generate")
    config["optimizer"].update(steps=2, checkpoint_every=1, scan={"points": 2, "width": 0.2})
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def assert_close_tree(got, want, where: str) -> None:
    """JSON ``got`` equals ``want`` (dicts, lists, arrays, strings), numbers to 1e-10 relative."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), where
        for key in want:
            assert_close_tree(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, (list, tuple)) or (isinstance(want, np.ndarray | jax.Array) and np.ndim(want) > 0):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close_tree(g, w, f"{where}[{i}]")
    elif isinstance(want, str) or want is None or isinstance(want, bool):
        assert got == want, where
    else:
        assert got == pytest.approx(float(want), rel=1e-10, abs=1e-12), where


@pytest.fixture(scope="module")
def streamed(dimuon, tmp_path_factory):
    """``diffhep optimize`` of the dimuon template with memory short (``auto`` streams, chunks of 400 events):
    ``(results.json, stderr)``."""
    from diffhep.execute import settings

    streamed = tmp_path_factory.mktemp("optimize_streamed")
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, jax.enable_x64(True), contextlib.redirect_stderr(err):
        patch.setattr(settings, "available_memory", lambda: 1000)  # bytes: nothing fits
        assert main(["optimize", str(dimuon), "--output", str(streamed), "--chunk-size", "400"]) == 0, err.getvalue()
    return streamed, err.getvalue()


def test_optimize_streaming_gives_the_in_memory_cuts(dimuon, streamed, tmp_path):
    """``diffhep optimize`` streaming (steps, evaluations, scan and outputs chunk by chunk)
    ends at the cuts of the same optimisation in memory, with its histograms, workspace and soft objective.

    The in-memory side runs at the library level (``run_optimization``, the hard histograms, the
    workspace, the objective's compiled program), not as a second ``diffhep optimize``: the in-memory
    command line is tested in tests/cli and tests/templates. Equal workspaces give equal pyhf
    significances; the streamed job's own pyhf numbers are checked finite here.
    """
    streamed, _ = streamed
    b = json.loads((streamed / "results.json").read_text())
    loaded = load_config(dimuon)
    memory = ConfiguredAnalysis.from_config(loaded.data, base=loaded.base_dir)
    data = memory.load()
    settings = OptimizerSettings.from_config(loaded.data["optimizer"])
    opt = run_optimization(
        memory, data, settings, output=tmp_path / "memory", progress=False, config_hash=loaded.config_hash
    )
    soft, dtype = {}, jnp.result_type(float)  # evaluate()'s call of the steps' program
    for stage, cuts in (("before", opt.initial), ("after", opt.values)):
        args = ({k: jnp.asarray(v, dtype) for k, v in cuts.items()}, data, jnp.asarray(settings.slope_end, dtype))
        soft[stage] = float(objective_and_grad(memory)(*args)[0])
    hard = {"before": memory.hard_histograms(opt.initial), "after": memory.hard_histograms(opt.values)}
    workspace = memory.workspace(hard["after"])
    assert b["steps"] == opt.steps == 2 and b["initial"] == pytest.approx(opt.initial, rel=1e-12)
    for name, value in opt.values.items():
        assert b["final"][name] == pytest.approx(value, rel=1e-9)
    assert b["final"] != b["initial"]
    for stage in ("before", "after"):
        assert b["significance"]["soft"][stage] == pytest.approx(soft[stage], rel=1e-9)
        assert np.isfinite(b["significance"]["hard_pyhf"][stage]) and b["significance"]["hard_pyhf"][stage] > 0
        for region, hs in hard[stage].items():
            got = b["yields"][stage][region]  # nominal samples
            assert got == pytest.approx({k: float(np.sum(hs[k].counts)) for k in got}, rel=1e-10), (stage, region)
    assert_close_tree(json.loads((streamed / "workspace.json").read_text()), workspace, "workspace")
    with uproot.open(streamed / "histograms.root") as written:  # the hard histograms bin by bin, before and after
        for stage, folder in (("before", "initial/"), ("after", "")):
            for region, hs in hard[stage].items():
                for key in b["yields"][stage][region]:
                    h, want = written[f"{folder}{region}_{key}"], hs[key]
                    scale = max(float(np.max(np.abs(want.counts))), 1e-12)
                    np.testing.assert_allclose(h.values(), want.counts, rtol=1e-10, atol=1e-12 * scale)
                    np.testing.assert_allclose(h.variances(), want.sumw2, rtol=1e-10, atol=1e-12 * scale**2)
    assert sorted(p.name for p in (streamed / "checkpoints").iterdir()) == sorted(
        p.name for p in (tmp_path / "memory" / "checkpoints").iterdir()
    )


def test_auto_streams_when_the_estimate_does_not_fit(dimuon, streamed):
    """``auto`` (no execution section) runs in memory here, and streams when memory is short (the job of
    ``streamed``, whose numbers equal the in-memory ones: the test above)."""
    from diffhep.cli.common import execution_settings, load

    _, err = streamed
    assert "auto: streaming (estimated" in err and ", chunks of 400 events" in err
    options = argparse.Namespace(execution=None, chunk_size=None, scheduler=None, workers=None)
    here = execution_settings(load(str(dimuon)), options)  # what `diffhep run` and `optimize` print and use
    assert here.mode == "memory" and here.describe().startswith("auto: in memory (estimated")


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_bad_execution_config_is_one_line(dimuon, tmp_path, capsys):
    config = yaml.safe_load(dimuon.read_text())
    for execution, expected in [
        ({"mode": "stream"}, "did you mean 'streaming'"),
        ({"chunk_size": 0}, "execution.chunk_size"),
        ({"mode": "dask", "scheduler": "not an address"}, "not a Dask scheduler address"),
        ({"mode": "streaming", "scheduler": "tcp://127.0.0.1:8786"}, "set mode: dask"),
    ]:
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump({**config, "execution": execution}, sort_keys=False))
        assert main(["optimize", str(path), "--output", str(tmp_path / "out")]) == 1
        assert expected in _error(capsys)


def test_bad_scheduler_is_one_line(dimuon, tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "out")
    assert main(["optimize", str(dimuon), "--output", out, "--scheduler", "nowhere"]) == 1
    assert "--scheduler 'nowhere' is not a Dask scheduler address" in _error(capsys)
    with pytest.raises(SystemExit) as usage:
        main(["optimize", str(dimuon), "--output", out, "--execution", "fast"])
    assert usage.value.code == 2 and "invalid choice: 'fast'" in _error(capsys)
    pytest.importorskip("distributed")
    monkeypatch.setattr(chunked, "CONNECT_TIMEOUT_S", 1.0)
    assert main(["run", str(dimuon), "--output", out, "--quiet", "--scheduler", "tcp://127.0.0.1:9"]) == 1
    assert "cannot connect to a Dask scheduler" in _error(capsys)


def test_settings_from_config_and_overrides(tmp_path):
    s = ExecutionSettings.from_config({"mode": "dask", "scheduler": "tcp://h:8786", "cache": "c"}, base=tmp_path)
    assert s.cache == tmp_path / "c" and s.override(mode="streaming").scheduler is None
    assert s.override(chunk_size=10).chunk_size == 10
    with pytest.raises(DiffhepError, match="--scheduler needs --execution dask"):
        s.override(mode="memory", scheduler="tcp://h:1")
    assert copy.deepcopy(s) == s
    off = ExecutionSettings.from_config({"mode": "streaming", "cache": False})
    assert (off.cache, off.reuse) == (None, False) and "read on every pass" in off.describe()
    assert ExecutionSettings.from_config({"mode": "streaming"}).reuse
    with pytest.raises(DiffhepError, match=r"execution.cache True: expected a folder .* or false"):
        ExecutionSettings.from_config({"cache": True})
