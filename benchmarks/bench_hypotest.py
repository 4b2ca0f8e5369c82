"""Side-by-side timings of an asymptotic CLs hypotest: pyhf (NumPy, JAX backends) vs diffhep.

Run from the repository root::

    .venv/bin/python benchmarks/bench_hypotest.py                  # the published workspaces, ~2-3 min on 2 cores
    .venv/bin/python benchmarks/bench_hypotest.py --workspaces 3lrj --repeats 20
    .venv/bin/python benchmarks/bench_hypotest.py --workspaces synthetic --scan 50   # the old synthetic benchmark

Workspaces (``--workspaces``; files in ``benchmarks/workspaces/``, see the
README there for their origin; HEPData records are CC0):

* ``1lbb``: ATLAS SUSY-2019-08 (1Lbb), background-only workspace with the
  published signal patch ``C1N2_Wh_hbb_550_200`` applied (8 channels, 14 bins,
  126 parameters);
* ``3lrj``: ATLAS SUSY-2018-06 (3L RJ mimic), with the published patch
  ``ERJR_200p0_50p0`` (4 channels of 1 bin, 70 parameters). pyhf's default
  SLSQP stops at the initial point on this one (its free-fit NLL is ~54 units
  above the minimum), so its CLs is not the likelihood's: the ``free-fit NLL``
  column shows it;
* ``synthetic``: ``hepdata_like`` from ``tests/workspace_factory.py`` (2
  channels, 14 samples, ~100 parameters); with ``--scan N`` also a scan of N
  signal hypotheses (a new model per point; pyhf as a loop within
  ``--pyhf-scan-budget`` seconds, scaled up; diffhep as a loop and as one
  jit-compiled call ``vmap``-ed in chunks of ``--chunk``).

Measured, after one first call (shown apart, includes compilation) and with
``block_until_ready``: ``hypotest(1.0, data, model, test_stat="qtilde")`` with
the expected band by pyhf with its NumPy backend (one call: there is nothing
to compile), with its JAX backend (each with pyhf's default scipy optimizer),
and by ``diffhep.infer.hypotest``. The table gives the median and the fastest
call; the CLs of every method and the NLL of its free fit to the data are
printed next to the times, and the load average before and after the run
(the ratios within one run are what compares on a shared machine).

Everything runs in float64. This is a script that prints ratios measured side
by side in one run; it is not a test and asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax

# Before any JAX array exists: pyhf's JAX backend and diffhep both run in float64.
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jsonpatch  # noqa: E402
import numpy as np  # noqa: E402
import pyhf  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from workspace_factory import CHANNELS_2, hepdata_like  # noqa: E402

from diffhep.infer import hypotest  # noqa: E402
from diffhep.infer.hypotest import FIT_NAMES  # noqa: E402
from diffhep.likelihood import from_workspace, observed_data  # noqa: E402

warnings.filterwarnings("ignore", message="jsonschema.RefResolver is deprecated", category=DeprecationWarning)
warnings.filterwarnings("ignore", message="The JAX backend is deprecated", category=DeprecationWarning)

POI_TEST = 1.0


class Timing(NamedTuple):
    """Wall times of one measured function, seconds.

    Attributes:
        first_s: the first call, including compilation.
        samples_s: the calls after it.
    """

    first_s: float
    samples_s: list[float]

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples_s) if self.samples_s else self.first_s

    def as_dict(self) -> dict:
        return {"first_call_s": self.first_s, "median_s": self.median_s, "samples_s": self.samples_s}


def measure(fn: Callable[[], Any], repeats: int, *, budget_s: float | None = None) -> tuple[Timing, Any]:
    """First call, then ``repeats`` calls (fewer once ``budget_s`` is used up); returns the last output."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    samples: list[float] = []
    for _ in range(repeats):
        if budget_s is not None and samples and sum(samples) + samples[-1] > budget_s:
            break
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        samples.append(time.perf_counter() - t0)
    return Timing(first, samples), out


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# Workspace and signal hypotheses
# ----------------------------------------------------------------------------


def workspace() -> dict:
    """Two channels, 14 samples, ~100 parameters (see tests/workspace_factory.py)."""
    return hepdata_like(channels=CHANNELS_2, n_normsys=64, n_histosys=24)


class Published(NamedTuple):
    """A published likelihood: background-only workspace plus one signal patch (files in benchmarks/workspaces/)."""

    origin: str
    background: str
    patch: str


WORKSPACES = REPO / "benchmarks" / "workspaces"
PUBLISHED = {
    "1lbb": Published(
        "ATLAS SUSY-2019-08 (1Lbb), HEPData ins1755298, doi:10.17182/hepdata.90607.v4/r3; signal C1N2_Wh_hbb_550_200",
        "atlas_susy_2019_08_1Lbb_BkgOnly.json.gz",
        "atlas_susy_2019_08_1Lbb_patch_C1N2_Wh_hbb_550_200.json.gz",
    ),
    "3lrj": Published(
        "ATLAS SUSY-2018-06 (3L RJ mimic), HEPData doi:10.17182/hepdata.91127.v2/r3; signal ERJR_200p0_50p0",
        "atlas_susy_2018_06_3LRJmimic_BkgOnly.json.gz",
        "atlas_susy_2018_06_3LRJmimic_patch.ERJR_200p0_50p0.json",
    ),
}


def _read_json(path: Path) -> Any:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return json.load(f)


def published_workspace(name: str) -> dict:
    """The background-only workspace ``name`` with its signal patch applied (jsonpatch, as ``pyhf cls --patch``)."""
    entry = PUBLISHED[name]
    spec = _read_json(WORKSPACES / entry.background)
    return jsonpatch.apply_patch(spec, _read_json(WORKSPACES / entry.patch))


def signal_paths(ws: dict) -> list[tuple[int, int]]:
    return [
        (c, s)
        for c, channel in enumerate(ws["channels"])
        for s, sample in enumerate(channel["samples"])
        if sample["name"] == "signal"
    ]


def signal_factors(n_points: int, nbins: int) -> np.ndarray:
    """Per point and bin, the factor applied to the signal: an overall scale and a tilt, shape ``(n, bins)``."""
    scale = np.linspace(0.3, 3.0, n_points)[:, None]
    tilt = np.linspace(-0.5, 0.5, n_points)[:, None] * np.linspace(-1.0, 1.0, nbins)[None, :]
    return scale * (1.0 + tilt)


def with_signal(ws: dict, paths: list[tuple[int, int]], factors: list[Any]) -> dict:
    """A copy of ``ws`` whose signal samples are multiplied bin by bin by ``factors`` (one per path)."""
    out = copy.copy(ws)
    out["channels"] = [dict(ch, samples=list(ch["samples"])) for ch in ws["channels"]]
    for (c, s), factor in zip(paths, factors):
        sample = dict(out["channels"][c]["samples"][s])
        sample["data"] = jnp.asarray(ws["channels"][c]["samples"][s]["data"]) * factor
        out["channels"][c]["samples"][s] = sample
    return out


def plain(ws: dict) -> dict:
    """JSON numbers only (for pyhf)."""
    return json.loads(json.dumps(ws, default=lambda x: np.asarray(x).tolist()))


# ----------------------------------------------------------------------------
# The three implementations
# ----------------------------------------------------------------------------


def pyhf_runner(backend: str, ws_dict: dict) -> tuple[Callable[[], Any], Callable[[dict], Callable[[], Any]]]:
    """``(single call, factory of calls for another workspace)`` on a pyhf backend (default optimizer)."""
    pyhf.set_backend(backend)

    def prepare(spec: dict) -> Callable[[], Any]:
        ws = pyhf.Workspace(spec)
        model = ws.model()
        data = pyhf.tensorlib.astensor(ws.data(model))

        def call() -> Any:
            return pyhf.infer.hypotest(
                POI_TEST, data, model, test_stat="qtilde", return_expected_set=True, return_calculator=True
            )

        call.model, call.data = model, data  # type: ignore[attr-defined]
        return call

    return prepare(ws_dict), prepare


def bench_pyhf(backend: str, ws_dict: dict, repeats: int) -> dict:
    log(f"pyhf {backend}: single hypotest ...")
    try:
        call, prepare = pyhf_runner(backend, ws_dict)
        timing, out = measure(call, repeats)
    except Exception as err:  # report any failure of the backend instead of stopping
        return {"ok": False, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    cls_obs, band, calculator = out
    free_fit = calculator.fitted_pars.free_fit_to_data
    free_nll = -float(call.model.logpdf(free_fit, call.data)[0])  # type: ignore[attr-defined]
    return {
        "ok": True,
        "timing": timing,
        "cls": float(cls_obs),
        "cls_exp": [float(x) for x in band],
        "free_nll": free_nll,
        "prepare": prepare,
    }


def bench_diffhep(ws_dict: dict, repeats: int) -> dict:
    log("diffhep: single hypotest ...")
    model = from_workspace(ws_dict)
    data = observed_data(ws_dict, model)
    timing, out = measure(lambda: hypotest(POI_TEST, data, model, test_stat="qtilde"), repeats)
    return {
        "ok": True,
        "timing": timing,
        "cls": float(out.cls_obs),
        "cls_exp": [float(x) for x in out.cls_exp],
        "free_nll": float(out.status.nll[0]),
        "iterations": [int(x) for x in out.status.n_iterations],
    }


def bench_scan(ws_dict: dict, n_points: int, pyhf_results: dict[str, dict], budget_s: float, chunk: int) -> dict:
    paths = signal_paths(ws_dict)
    nbins = {c: len(ws_dict["channels"][c]["samples"][s]["data"]) for c, s in paths}
    factors = {c: signal_factors(n_points, nbins[c]) for c, _ in paths}
    specs = [with_signal(ws_dict, paths, [factors[c][i] for c, _ in paths]) for i in range(n_points)]

    # pyhf: a loop of hypotests, one new model per point (built beforehand, not timed), on each
    # working backend for about budget_s / 2; the faster per point is scaled to the full scan
    per_backend: dict[str, dict] = {}
    for name, result in pyhf_results.items():
        if not result["ok"]:
            continue
        backend = name.split()[-1]
        log(f"scan: pyhf {backend} loop ...")
        pyhf.set_backend(backend)
        cls, samples = [], []
        for spec in specs:
            call = result["prepare"](plain(spec))  # building the model is not timed
            t0 = time.perf_counter()
            cls.append(float(jax.block_until_ready(call())[0]))
            samples.append(time.perf_counter() - t0)
            if sum(samples) > budget_s / 2:
                break
        per_backend[backend] = {"cls": cls, "per_point_s": sum(samples) / len(samples), "measured": len(samples)}
    backend = min(per_backend, key=lambda b: per_backend[b]["per_point_s"])
    pyhf_cls = per_backend[backend]["cls"]
    measured = per_backend[backend]["measured"]
    pyhf_total = per_backend[backend]["per_point_s"] * n_points

    # diffhep: stacked yields -> one jit-compiled call, vmapped over chunks of ``chunk`` points
    log(f"scan: diffhep batched (one jitted call, vmapped in chunks of {chunk}) ...")
    model = from_workspace(ws_dict)
    data = observed_data(ws_dict, model)
    stacked = [jnp.asarray(factors[c]) for c, _ in paths]

    def one(*point_factors: jax.Array) -> tuple[jax.Array, jax.Array]:
        m = from_workspace(with_signal(ws_dict, paths, list(point_factors)), validate=False)
        result = hypotest(POI_TEST, data, m)
        return result.cls_obs, result.cls_exp

    batched = jax.jit(lambda *xs: jax.lax.map(lambda x: one(*x), xs, batch_size=chunk))
    batch_timing, (cls_batched, _) = measure(lambda: batched(*stacked), 3)

    log("scan: diffhep loop of single calls ...")
    models = [from_workspace(spec, validate=False) for spec in specs]

    def loop() -> list[Any]:
        return [hypotest(POI_TEST, data, m).cls_obs for m in models]

    loop_timing, cls_loop = measure(loop, 2)
    agreement = float(np.max(np.abs(np.asarray(cls_batched)[:measured] / np.asarray(pyhf_cls) - 1.0)))
    batched_vs_loop = float(np.max(np.abs(np.asarray(cls_batched) - np.asarray([float(x) for x in cls_loop]))))
    return {
        "points": n_points,
        "pyhf_backend": backend,
        "pyhf_per_backend": {b: {k: v for k, v in r.items() if k != "cls"} for b, r in per_backend.items()},
        "pyhf_measured_points": measured,
        "pyhf_total_s": pyhf_total,
        "chunk": chunk,
        "batched": batch_timing,
        "loop": loop_timing,
        "max_rel_diff_vs_pyhf": agreement,
        "max_abs_diff_batched_vs_loop": batched_vs_loop,
    }


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:10.1f}"


def report(info: dict, single: dict[str, dict], scan: dict | None, repeats: dict[str, int]) -> str:
    reference = single["diffhep"]["timing"].median_s
    lines = [
        f"workspace {info['name']}: {info['origin']}",
        f"  {info['channels']} channels, {info['samples']} samples, {info['npars']} parameters, {info['nbins']} bins; "
        f"POI {info['poi']} tested at {POI_TEST}, qtilde, asymptotics, expected band",
        f"  machine: {info['machine']}; jax {jax.__version__}, pyhf {pyhf.__version__}; float64",
        "single hypotest (CLs obs + expected band), wall times",
        f"{'method':<14}{'first call ms':>14}{'median ms':>11}{'min ms':>10}{'repeats':>9}{'median / diffhep':>18}"
        f"{'CLs obs':>13}{'CLs exp':>13}{'free-fit NLL':>15}",
    ]
    for name, res in single.items():
        if not res["ok"]:
            lines.append(f"{name:<14}  FAILED: {res['error']}")
            continue
        t = res["timing"]
        fastest_call = min(t.samples_s) if t.samples_s else t.first_s
        lines.append(
            f"{name:<14}{_ms(t.first_s):>14}{_ms(t.median_s):>11}{_ms(fastest_call):>10}{len(t.samples_s):>9}"
            f"{t.median_s / reference:>18.1f}{res['cls']:>13.6g}{res['cls_exp'][2]:>13.6g}{res['free_nll']:>15.6f}"
        )
    if single["diffhep"]["ok"]:
        lines.append(f"diffhep Newton steps per fit ({', '.join(FIT_NAMES)}): {single['diffhep']['iterations']}")
    ok = [n for n in single if n != "diffhep" and single[n]["ok"]]
    if ok:
        fastest = min(ok, key=lambda n: single[n]["timing"].median_s)
        best = min(min(single[n]["timing"].samples_s or [single[n]["timing"].first_s]) for n in ok)
        lines.append(
            f"steady state: diffhep is {single[fastest]['timing'].median_s / reference:.1f}x faster than pyhf's fastest "
            f"backend ({fastest}) by medians, {best / reference:.1f}x against pyhf's single fastest call"
        )
    lines.append(
        f"(measured calls after the first: pyhf numpy {repeats['numpy']} (0: the first call is the time), "
        f"pyhf jax {repeats['jax']}, diffhep {repeats['diffhep']})"
    )
    if scan is None:
        return "\n".join(lines)
    lines += [
        "",
        f"scan of {scan['points']} signal hypotheses (a new model per point)",
        f"{'method':<34}{'first call s':>13}{'total s':>10}{'per point ms':>14}{'total / batched':>17}",
    ]
    batched = scan["batched"].median_s
    for backend, r in scan["pyhf_per_backend"].items():
        total = r["per_point_s"] * scan["points"]
        note = "" if r["measured"] == scan["points"] else f"  (measured {r['measured']} points, scaled up)"
        lines.append(
            f"{'pyhf ' + backend + ' loop':<34}{'':>13}{total:>10.1f}{1e3 * r['per_point_s']:>14.1f}"
            f"{total / batched:>17.0f}{note}"
        )
    rows = (
        ("diffhep loop of single calls", scan["loop"]),
        (f"diffhep one call, vmap x{scan['chunk']}", scan["batched"]),
    )
    for name, timing in rows:
        total = timing.median_s
        lines.append(
            f"{name:<34}{timing.first_s:>13.2f}{total:>10.2f}{1e3 * total / scan['points']:>14.1f}{total / batched:>17.1f}"
        )
    lines.append(
        f"CLs agreement: batched vs pyhf {scan['pyhf_backend']} max rel. diff {scan['max_rel_diff_vs_pyhf']:.1e}; "
        f"batched vs diffhep loop max abs. diff {scan['max_abs_diff_batched_vs_loop']:.1e}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workspaces",
        nargs="+",
        default=list(PUBLISHED),
        choices=[*PUBLISHED, "synthetic"],
        help="workspaces to test (default: the published ones; 'synthetic' is tests/workspace_factory.py's)",
    )
    parser.add_argument("--repeats", type=int, default=10, help="measured diffhep calls after the first (default 10)")
    parser.add_argument(
        "--pyhf-repeats", type=int, default=2, help="measured pyhf JAX calls after the first (default 2)"
    )
    parser.add_argument(
        "--numpy-repeats", type=int, default=0, help="pyhf NumPy calls after the first (default 0: the first is it)"
    )
    parser.add_argument(
        "--scan", type=int, default=0, help="signal hypotheses in a scan on 'synthetic' (default 0: none)"
    )
    parser.add_argument(
        "--pyhf-scan-budget", type=float, default=24.0, help="seconds for pyhf's scan loops (both backends)"
    )
    parser.add_argument(
        "--chunk", type=int, default=10, help="signal points per vmapped chunk of the batched call (default 10)"
    )
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    repeats = {"numpy": args.numpy_repeats, "jax": args.pyhf_repeats, "diffhep": args.repeats}
    texts, out = [], {}
    for name in args.workspaces:
        ws_dict = workspace() if name == "synthetic" else published_workspace(name)
        model = from_workspace(ws_dict)
        config = model.config
        info = {
            "name": name,
            "origin": "tests/workspace_factory.py hepdata_like" if name == "synthetic" else PUBLISHED[name].origin,
            "channels": len(config.channels),
            "samples": len(config.samples),
            "npars": config.npars,
            "nbins": config.nmaindata,
            "poi": config.poi_name,
            "machine": machine,
        }
        log(f"== {name}: {info['origin']}")
        single = {
            "pyhf numpy": bench_pyhf("numpy", ws_dict, args.numpy_repeats),
            "pyhf jax": bench_pyhf("jax", ws_dict, args.pyhf_repeats),
            "diffhep": bench_diffhep(ws_dict, args.repeats),
        }
        scan = None
        if name == "synthetic" and args.scan:
            pyhf_results = {n: single[n] for n in ("pyhf numpy", "pyhf jax")}
            scan = bench_scan(ws_dict, args.scan, pyhf_results, args.pyhf_scan_budget, min(args.chunk, args.scan))
        pyhf.set_backend("numpy")
        texts.append(report(info, single, scan, repeats))
        out[name] = {
            "info": info,
            "single": {
                k: ({kk: (vv.as_dict() if isinstance(vv, Timing) else vv) for kk, vv in v.items() if kk != "prepare"})
                for k, v in single.items()
            },
            "scan": {k: (v.as_dict() if isinstance(v, Timing) else v) for k, v in (scan or {}).items()},
        }
    load_after = os.getloadavg()
    print("\n\n".join(texts))
    print(
        f"\nload average (1, 5, 15 min) before {load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f}, "
        f"after {load_after[0]:.1f} {load_after[1]:.1f} {load_after[2]:.1f} on {os.cpu_count()} cores "
        f"({'idle' if max(load_before[0], load_after[0]) < 0.5 else 'NOT idle: ratios within this run still compare'})"
    )
    print(f"total wall time {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
