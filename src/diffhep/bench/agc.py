"""The AGC-style throughput benchmark of a configured ttbar analysis (``diffhep bench agc``).

For each requested number of generated NanoAOD events it measures, after a
warm-up call (JIT compilation excluded), the median wall time of ``repeat`` calls of

* ``hard_forward``: from the ROOT files to the hard-cut histograms in diffhep
  (a fresh :meth:`ConfiguredAnalysis.load` and :meth:`hard_histograms`);
* ``hard_forward_plain``: the same selection in plain Awkward/NumPy, in the same
  process: :func:`diffhep.examples.ttbar.hard_selection` (the AGC's code) on
  :func:`diffhep.io.read_events` and ``numpy.histogram``;
* ``step_memory``: one optimisation step (value and gradient, Optax update) on
  all events in memory (:func:`diffhep.optimize.run.compiled_step`; the load is
  timed apart as ``load_memory``);
* ``step_streaming``: the same step chunk by chunk, every chunk read and
  prepared again (:class:`~diffhep.engine.chunked.ChunkedAnalysis`, ``cache: false``);
* ``step_streaming_cached``: the same, the prepared chunks loaded from the
  on-disk cache written by the first pass (the default of streaming jobs);
* ``step_dask``: the same step on Dask workers holding the prepared chunks (a
  LocalCluster of ``workers`` workers, or ``scheduler``).

When the in-memory job would not fit (the estimate of ``execution: auto``),
``hard_forward`` is measured streaming (one pass: read, structure,
histograms) and ``step_memory`` is skipped, with the reason in ``skipped``.
The plain baseline runs chunk by chunk at every size, as the AGC does.

Each measurement is a dict in the shape of the AGC's metrics: ``entries``
(events), ``walltime`` (s, median), ``num_workers``, ``chunksize``,
``bytesread`` (compressed bytes of the branches read per call),
``event_rate_khz`` and ``event_rate_per_worker_khz``, ``peak_rss_bytes`` (of this process
during the measurement), ``device``, and ``first_call_walltime`` (s: the warm-up call, so
for a step its compilation; the markdown table shows it as "first call"). ``ratios`` divide each event rate by the
plain Awkward one. Samples are generated once per size into the work folder.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import yaml

from diffhep.config import load_config
from diffhep.config.templates import template_root
from diffhep.engine import loading
from diffhep.engine.chunked import ChunkedAnalysis
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.errors import ConfigError, DiffhepError
from diffhep.examples import ttbar
from diffhep.execute import ExecutionSettings
from diffhep.execute.settings import available_memory, choose_mode
from diffhep.io.generate_agc import AGC_PROCESSES, generate_agc_sample
from diffhep.io.generate_agc import SCHEMA_VERSION as AGC_SCHEMA_VERSION
from diffhep.io.read import iterate_events, num_entries
from diffhep.optimize.bounds import to_unconstrained
from diffhep.optimize.run import chunked_step, compiled_step
from diffhep.optimize.settings import OptimizerSettings
from diffhep.outputs import write_json

__all__ = ["prepare_config", "run_benchmark", "markdown_table", "DEFAULT_CONFIG"]

#: Beside generated files: file name -> the settings it was generated with (as ``diffhep generate --config``).
MANIFEST = "diffhep-generated.json"

#: The AGC ttbar template (installed with diffhep, or ``analyses/ttbar`` of the source checkout).
DEFAULT_CONFIG = template_root() / "ttbar" / "config.yaml"


# -- samples -------------------------------------------------------------------
def prepare_config(config_path: Path, events: int, folder: Path, *, variations: bool = False, seed: int = 1) -> Path:
    """A copy of the config whose samples are ``events`` generated AGC events in all, in ``folder``.

    Events are shared between the samples in proportion to their ``generate:
    {events}``; files named by ``histosys`` variations (``ttbar_ME_var.root``) are
    generated with as many events as the sample. Without ``variations``, the
    ``histosys`` systematics are dropped (the plain Awkward baseline has none).
    The copy names its files by absolute paths: it lives in ``folder``, and a
    path relative to the working directory would be read relative to it. A file
    generated before is reused only when it was generated with the same process,
    event count, seed and generator version (:func:`_generated`).
    """

    folder = Path(folder).resolve()
    config = yaml.safe_load(Path(config_path).read_text())
    for correction in (config.get("corrections") or {}).values():  # the copy lives in folder: absolute paths
        correction["file"] = str(Path(config_path).resolve().parent / correction["file"])
    samples = config.get("samples") or {}
    weights = {k: float((s.get("generate") or {}).get("events", 1)) for k, s in samples.items()}
    total = sum(weights.values())
    counts = {k: max(1, int(round(events * w / total))) for k, w in weights.items()}
    counts[max(counts, key=counts.get)] += events - sum(counts.values())  # exactly `events` in all
    folder.mkdir(parents=True, exist_ok=True)
    for name, sample in samples.items():
        process = (sample.get("generate") or {}).get("process", name)
        if process not in AGC_PROCESSES:
            raise ConfigError(
                f"sample {name!r}: process {process!r} is not an AGC process ({', '.join(AGC_PROCESSES)})"
            )
        sample["files"] = [str(_generated(folder / f"{name}.root", process, counts[name], seed, generate_agc_sample))]
        sample.pop("generate", None)
    systematics = config.get("systematics") or {}
    for name in list(systematics):
        syst = systematics[name]
        if syst.get("type") == "histosys" and not variations:
            del systematics[name]
            continue
        for direction in ("up", "down"):
            variation = syst.get(direction) or {}
            if variation.get("files"):
                stem = Path(variation["files"][0]).stem
                n = counts[(syst.get("samples") or list(samples))[0]]
                variation["files"] = [str(_generated(folder / f"{stem}.root", stem, n, seed + 1, generate_agc_sample))]
    config.pop("execution", None)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _generated(path: Path, process: str, n: int, seed: int, generate: Callable[..., Path]) -> Path:
    """``path``, generated unless the manifest beside it records it with these settings and it holds ``n`` events.

    The manifest (:data:`MANIFEST`, the layout ``diffhep generate --config`` writes)
    records per file the generator, process, events, seed and the generator's
    :data:`~diffhep.io.generate_agc.SCHEMA_VERSION`: a file of another seed,
    process or generator version, or one the manifest does not know, is generated again.
    """
    settings = {"generator": "agc", "process": process, "events": int(n), "seed": int(seed),
                "schema_version": AGC_SCHEMA_VERSION}  # fmt: skip
    if path.is_file() and _read_manifest(path.parent).get(path.name) == settings:
        try:
            if num_entries(str(path), tree="Events") == n:
                return path
        except Exception:  # noqa: BLE001 - a broken file is generated again
            pass
    generate(path, process, n, seed=seed)
    manifest = _read_manifest(path.parent)  # again: other samples share the folder
    manifest[path.name] = settings
    write_json(path.parent / MANIFEST, manifest)
    return path


# -- measuring -------------------------------------------------------------------
class _PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 20 ms)."""

    def __enter__(self) -> _PeakRSS:
        import psutil

        self._process, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def _time(
    function: Callable[[], Any], repeat: int, *, warmup: bool = True
) -> tuple[list[float], int, dict[str, float | None]]:
    """Wall times of ``repeat`` calls after one warm-up call, the peak RSS during them, and
    ``{"first_call_walltime": s}``: the warm-up call's wall time (compilation included)."""
    first = None
    if warmup:
        start = time.perf_counter()
        jax.block_until_ready(function())
        first = time.perf_counter() - start
    times = []
    with _PeakRSS() as rss:
        for _ in range(repeat):
            start = time.perf_counter()
            jax.block_until_ready(function())
            times.append(time.perf_counter() - start)
    return times, rss.peak, {"first_call_walltime": first}


def _bytes_read(files: Mapping[str, Sequence[str]], branches: Mapping[str, set[str]]) -> int:
    """Compressed bytes of ``branches[key]`` in ``files[key]`` (what reading them fetches)."""
    import uproot

    total = 0
    for key, paths in files.items():
        for path in paths:
            with uproot.open(path) as f:
                tree = f["Events"]
                for b in branches[key]:
                    if b in tree:
                        total += int(tree[b].compressed_bytes)
    return total


def _device() -> dict[str, str]:
    d = jax.devices()[0]
    return {"platform": d.platform, "device_kind": d.device_kind}


def _record(name: str, executor: str, entries: int, times: list[float], peak: int, *, workers: int,
            chunksize: int | None, bytesread: int, **extra: Any) -> dict[str, Any]:  # fmt: skip
    wall = statistics.median(times)
    return {
        "measurement": name, "executor": executor, "entries": int(entries), "walltime": wall,
        "walltimes": times, "num_workers": workers, "chunksize": chunksize, "bytesread": int(bytesread),
        "event_rate_khz": entries / wall / 1e3, "event_rate_per_worker_khz": entries / wall / workers / 1e3,
        "peak_rss_bytes": int(peak), "device": _device(), **extra,
    }  # fmt: skip


def _plain(
    config: Mapping[str, Any], cuts: Mapping[str, float], chunk_size: int
) -> tuple[Callable[[], Any], int, dict]:
    """The plain Awkward/NumPy hard-cut analysis of the config's nominal samples: a callable and its bytes.

    As the AGC runs it: ``uproot.iterate`` over chunks of ``chunk_size`` events,
    the selection and ``numpy.histogram`` per chunk, histograms added up and
    scaled at the end (selection weights are linear in the normalisation), so
    memory does not grow with the events. Events are weighted as the sample's
    ``normalisation`` says: ``events`` (the AGC's, and the template's) counts each
    event once and scales by ``xsec * lumi / N``; ``weight`` weighs it by
    ``genWeight`` and scales by ``xsec * lumi / sum(genWeight)``. The generated
    samples are unweighted (``genWeight`` is a lognormal jitter around 1 and a few
    negative signs), so the two agree up to that jitter.
    """

    cuts = {**{c.name: float(c.init) for c in ttbar.CUTS}, **cuts}  # AGC values for cuts the config lacks
    edges = {r: _edges(spec["binning"]) for r, spec in config["regions"].items()}
    branches = sorted(set(ttbar.BRANCHES))
    files = {k: list(s["files"]) for k, s in config["samples"].items()}

    def run() -> dict:
        out = {}
        for name, sample in config["samples"].items():
            by_events = sample.get("normalisation", "weight") == "events"
            sum_w, hists = 0.0, {r: np.zeros(len(e) - 1) for r, e in edges.items()}
            for events in iterate_events(files[name], tree=config.get("tree", "Events"), branches=branches,
                                         step_size=chunk_size):  # fmt: skip
                if by_events:
                    sum_w += len(events)
                else:
                    sum_w += float(np.sum(np.asarray(events.genWeight, dtype=np.float64)))
                for region, (x, w) in ttbar.hard_selection(events, cuts, 1.0).items():
                    if region in edges:
                        hists[region] += np.histogram(x, bins=edges[region], weights=None if by_events else w)[0]
            norm = sample["xsec_pb"] * config["lumi_pb"] / sum_w
            out.update({(region, name): h * norm for region, h in hists.items()})
        return out

    return run, _bytes_read(files, {k: set(branches) for k in files}), files


def _edges(binning: Mapping[str, Any]) -> np.ndarray:
    if "edges" in binning:
        return np.asarray(binning["edges"], dtype=np.float64)
    lo, hi = binning["range"]
    return np.linspace(float(lo), float(hi), int(binning["bins"]) + 1)


def _analysis_bytes(analysis: Any) -> int:
    """Compressed bytes of the branches a :class:`ConfiguredAnalysis` reads for all its samples and variations."""

    files, branches = {}, {}
    for key, sample, variation in analysis.variants():
        files[key] = loading.expand_files(list(variation.files or sample.files))
        branches[key] = set(loading.required_branches(analysis.branch_plan, analysis.object_defs, sample, variation)[0])
    return _bytes_read(files, branches)


def run_benchmark(
    config_path: Path,
    events: int,
    workdir: Path,
    *,
    chunk_size: int = 200_000,
    workers: int = 2,
    scheduler: str | None = None,
    repeat: int = 3,
    processes: bool = True,
    variations: bool = False,
    in_memory: bool | None = None,
    only: Sequence[str] | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """All measurements at one size; returns ``{"events", "config", "measurements": [...], "ratios", "skipped"}``.

    ``in_memory``: run the in-memory measurements (``None``: when ``execution:
    auto`` would, i.e. the estimated footprint fits in half the available
    memory; otherwise the hard-cut forward pass is measured streaming and the
    in-memory step is listed in ``skipped`` with the reason). ``only``: the measurements to run (names of
    :data:`MEASUREMENTS`; default all); ratios to the plain pass need ``hard_forward_plain`` among them.
    """
    wanted = set(MEASUREMENTS if only is None else only)

    log(f"{events} events: generating samples into {workdir} ...")
    path = prepare_config(config_path, events, workdir / f"events_{events}", variations=variations)
    config = load_config(path)
    cuts = {k: float(p["init"]) for k, p in config.data["parameters"].items()}
    settings = OptimizerSettings.from_config(config.data.get("optimizer"))
    n_events = sum(sum(_entries(f) for f in s["files"]) for s in config.data["samples"].values())
    out: list[dict[str, Any]] = []

    def build() -> ConfiguredAnalysis:
        return ConfiguredAnalysis.from_config(config)

    probe = build()
    analysis_bytes = _analysis_bytes(probe)
    skipped: dict[str, str] = {}
    if in_memory is None:
        mode, why = choose_mode(probe.input_bytes(), available_memory())
        in_memory = mode == "memory"
        if not in_memory:
            skipped["step_memory"] = why.replace("auto: streaming", "does not fit in memory")

    def streamed(**kw: Any) -> ChunkedAnalysis:
        return ChunkedAnalysis(build(), config, settings=ExecutionSettings(chunk_size=chunk_size, **kw))

    def hard() -> Any:
        if in_memory:
            analysis = build()
            analysis.load()
            return analysis.hard_histograms(cuts)
        with streamed(mode="streaming", reuse=False) as analysis:  # one pass: read, structure, histograms
            return analysis.hard_histograms(cuts)

    if "hard_forward" in wanted:
        log(f"  hard-cut forward analysis (diffhep, {'in memory' if in_memory else 'streaming'}) ...")
        times, peak, first = _time(hard, repeat)
        out.append(_record("hard_forward", "memory" if in_memory else "streaming", n_events, times, peak, workers=1,
                           chunksize=None if in_memory else chunk_size, bytesread=analysis_bytes, **first))  # fmt: skip
    if "hard_forward_plain" in wanted:
        log("  hard-cut forward analysis (plain Awkward/NumPy, chunk by chunk) ...")
        plain, plain_bytes, _ = _plain(config.data, cuts, chunk_size)
        times, peak, first = _time(plain, repeat)
        out.append(_record("hard_forward_plain", "memory", n_events, times, peak, workers=1, chunksize=chunk_size,
                           bytesread=plain_bytes, **first))  # fmt: skip

    params = tuple(probe.parameters)
    u = to_unconstrained(params, cuts)
    if in_memory and "step_memory" in wanted:
        log("  optimisation step, in memory ...")
        analysis = build()
        start = time.perf_counter()
        data = analysis.load()
        load_time = time.perf_counter() - start
        optimizer, step = compiled_step(analysis, settings)
        state = optimizer.init(u)
        slope = np.asarray(1.0, dtype=jax.numpy.result_type(float))
        times, peak, first = _time(lambda: step(u, state, data, slope)[2], repeat)
        out.append(_record("step_memory", "memory", n_events, times, peak, workers=1, chunksize=None, bytesread=0,
                           load_walltime=load_time, load_bytesread=analysis_bytes, **first))  # fmt: skip
        del data, analysis

    runs = [("step_streaming", "streaming", False), ("step_streaming_cached", "streaming", True),
            ("step_dask", "dask", False)]  # fmt: skip
    for name, mode, reuse in [run for run in runs if run[0] in wanted]:
        log(f"  optimisation step, {name.removeprefix('step_').replace('_', ', ')} ...")
        with streamed(mode=mode, scheduler=scheduler if mode == "dask" else None, workers=workers,
                      processes=processes, reuse=reuse) as chunked:  # fmt: skip
            start = time.perf_counter()
            chunked.load()
            setup = time.perf_counter() - start
            optimizer, cstep = chunked_step(chunked, settings)
            state = optimizer.init(u)
            times, peak, first = _time(lambda c=chunked, s=cstep, st=state: s(u, st, c, 1.0)[2], repeat)
            n_workers = 1
            if mode == "dask":
                n_workers = workers if scheduler else len(chunked.client().scheduler_info()["workers"])
            out.append(_record(
                name, mode, n_events, times, peak, workers=n_workers, chunksize=chunk_size,
                bytesread=analysis_bytes if name == "step_streaming" else 0, setup_walltime=setup,
                chunks=len(chunked.chunks), processes=processes if mode == "dask" else None, **first,
            ))  # fmt: skip
    plain_rate = next((m["event_rate_khz"] for m in out if m["measurement"] == "hard_forward_plain"), None)
    ratios = {
        m["measurement"]: m["event_rate_khz"] / plain_rate
        for m in out
        if plain_rate is not None and m["measurement"] != "hard_forward_plain"
    }
    return {"events": n_events, "config": str(path), "measurements": out, "ratios_to_plain": ratios,
            "skipped": skipped}  # fmt: skip


#: Every measurement, in the order they run (``only=`` and ``--only`` pick among them).
MEASUREMENTS = ("hard_forward", "hard_forward_plain", "step_memory", "step_streaming", "step_streaming_cached",
                "step_dask")  # fmt: skip


def _entries(path: str) -> int:

    return int(num_entries(path, tree="Events"))


def machine() -> dict[str, Any]:
    """CPU count, load average and platform of this machine."""
    import platform

    return {
        "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()), "platform": platform.platform(),
        "python": platform.python_version(), "jax": jax.__version__, "device": _device(),
        "x64": bool(jax.config.jax_enable_x64),
    }  # fmt: skip


def _ratio(name: str, ratio: float | None) -> str:
    if ratio is not None:
        return f"{ratio:.3g}"
    return "1" if name == "hard_forward_plain" else "-"  # the plain pass itself, or it was not measured


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown_table(report: Mapping[str, Any]) -> str:
    """The Markdown summary: one row per measurement and size."""
    m = report["machine"]
    load = f"load average {', '.join(f'{x:.2f}' for x in m['load_average'])} at the start"
    if m.get("load_average_end"):
        load += f" and {', '.join(f'{x:.2f}' for x in m['load_average_end'])} at the end"
    lines = [
        f"# AGC-style benchmark: `{report['config']}`",
        "",
        f"Machine: {m['cpu_count']} CPUs, {load}; device {m['device']['platform']} ({m['device']['device_kind']}); "
        f"{'float64' if m['x64'] else 'float32'}; median of {report['repeat']} calls after a warm-up.",
        "",
        "| events | measurement | executor | workers | chunk size | wall time (s) | first call (s) | rate (kHz) "
        "| rate / worker (kHz) | MB read | peak RSS (MB) | rate / plain Awkward |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = list(report.get("notes") or [])
    for size in report["results"]:
        ratios = size["ratios_to_plain"]
        for m in size["measurements"]:
            ratio = ratios.get(m["measurement"])
            lines.append(
                f"| {m['entries']} | {m['measurement']} | {m['executor']} | {m['num_workers']} | {m['chunksize'] or '-'} "
                f"| {m['walltime']:.3f} | {_seconds(m.get('first_call_walltime'))} | {m['event_rate_khz']:.2f} "
                f"| {m['event_rate_per_worker_khz']:.2f} "
                f"| {m['bytesread'] / 1e6:.2f} | {m['peak_rss_bytes'] / 1e6:.0f} | {_ratio(m['measurement'], ratio)} |"
            )
        notes += [
            f"{size['events']} events: {name} not measured: {why}" for name, why in (size.get("skipped") or {}).items()
        ]
    return "\n".join(lines + ([""] + [f"- {n}" for n in notes] if notes else [])) + "\n"


def config_or_fallback(requested: Path | None, fallback: Path) -> tuple[Path, str | None]:
    """The config to benchmark: ``requested``, else the AGC template if it validates, else ``fallback`` (and why)."""

    if requested is not None:
        return requested, None
    try:
        load_config(DEFAULT_CONFIG)
        return DEFAULT_CONFIG, None
    except DiffhepError as err:
        return (
            fallback,
            f"the AGC template {DEFAULT_CONFIG} does not validate ({' '.join(str(err).split())[:160]}); used {fallback}",
        )


def sizes(values: Sequence[str | float]) -> list[int]:
    """``["1e5", "2000"]`` -> ``[100000, 2000]`` (whole numbers >= 1), or a one-line error."""
    out = []
    for v in values:
        try:
            n = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"--events {v!r}: expected a number of events such as 1e5") from None
        if not (math.isfinite(n) and n >= 1 and n == int(n)):
            raise ConfigError(f"--events {v!r}: expected a whole number of events >= 1, such as 1e5")
        out.append(int(n))
    return out
