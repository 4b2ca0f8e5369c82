"""Side-by-side rates of a toy-based CLs hypotest: pyhf's ``ToyCalculator`` (NumPy, JAX backends) vs diffhep.

Run from the repository root::

    .venv/bin/python benchmarks/toys.py                                  # long: pyhf fits each toy one by one (estimated ~30 min on 2 cores)
    .venv/bin/python benchmarks/toys.py --pyhf jax:20 --ntoys 20 1000    # shorter
    .venv/bin/python benchmarks/toys.py --pyhf jax:1 --ntoys 4 --repeats 1 --batch-size 4   # does it run?
    .venv/bin/python benchmarks/toys.py --model simple --pyhf numpy:200 jax:200 --ntoys 200 2000

The workspace (``--model hepdata``, the default) is ``bench_hypotest.py``'s:
``hepdata_like`` from ``tests/workspace_factory.py`` with two channels (11 bins,
14 samples, 103 parameters); ``--model simple`` is pyhf's 2-bin
``uncorrelated_background`` (3 parameters). One hypotest at ``mu = --poi`` with ``qtilde`` and the expected
band, ``ntoys`` toys per hypothesis (signal+background and background-only),
so ``2 * ntoys`` toys of two fits each; the rates below count toys of both
hypotheses (toys/s = ``2 * ntoys`` / wall time, the fits to the data included).

* **pyhf**: ``pyhf.infer.hypotest(..., calctype="toybased", ntoys=N,
  track_progress=False)`` on each backend given as ``--pyhf backend:N`` (default
  ``jax:100 numpy:10``: the NumPy backend has no gradients, SLSQP differentiates
  103 parameters numerically and one fit takes seconds), pyhf's default scipy
  optimizer, NumPy's global generator seeded with 0; the JAX backend is warmed up
  by a one-toy call first (its compilation is not timed). pyhf 0.7.6 calls
  ``percentile(..., interpolation=...)``, which NumPy 2.4 and JAX removed; the
  script patches both backends to ``method=`` (the same computation).
* **diffhep**: ``hypotest(..., calctype="toybased", ntoys=N, key=0,
  batch_size=B)`` for every ``B`` of ``--batch-size`` (default 5 and 20: on a
  CPU, ``vmap``-ed fits run until the slowest of the batch converges, and on the
  103-parameter model small batches are faster), every ``--ntoys`` and every
  pyhf ``N``; the first call (compilation of the batched fits) is shown apart,
  then the median of ``--repeats`` calls per size.

The ratio column is diffhep's rate over the fastest pyhf rate. The CLs values
are printed beside the speed: different toys, so they agree only within the
toys' statistical error (``+-``: the binomial error of ``CLsb``, scaled to CLs).
Everything runs in float64. With jaxlib 0.10 on a machine with 2 cores, the
``vmap``-ed fits of the 103-parameter model can hang for ever (a deadlock of
jaxlib's batched LAPACK kernels, see ``benchmarks/README.md``). This is a script that prints ratios measured side
by side in one run; it is not a test and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import jax

# Before any JAX array exists: pyhf's JAX backend and diffhep both run in float64.
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pyhf  # noqa: E402
from pyhf.tensor.jax_backend import jax_backend  # noqa: E402
from pyhf.tensor.numpy_backend import numpy_backend  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_hypotest import Timing, log, measure, workspace  # noqa: E402

from diffhep.infer import hypotest  # noqa: E402
from diffhep.likelihood import from_workspace, observed_data  # noqa: E402

warnings.filterwarnings("ignore", message="jsonschema.RefResolver is deprecated", category=DeprecationWarning)
warnings.filterwarnings("ignore", message="The JAX backend is deprecated", category=DeprecationWarning)


def _numpy_percentile(self, tensor_in, q, axis=None, interpolation="linear"):
    return np.percentile(tensor_in, q, axis=axis, method=interpolation)


def _jax_percentile(self, tensor_in, q, axis=None, interpolation="linear"):
    return jnp.percentile(tensor_in, q, axis=axis, method=interpolation)


numpy_backend.percentile = _numpy_percentile  # pyhf 0.7.6 on NumPy >= 2.4 and recent JAX (see the docstring)
jax_backend.percentile = _jax_percentile


def _plain(ws: dict) -> dict:
    return json.loads(json.dumps(ws, default=lambda x: np.asarray(x).tolist()))


def simple_workspace() -> dict:
    """pyhf's ``uncorrelated_background`` (2 bins, ``shapesys``), the model of ``tests/infer/test_infer_toys.py``."""
    spec = pyhf.simplemodels.uncorrelated_background([12.0, 11.0], [50.0, 52.0], [3.0, 7.0]).spec
    return {
        "channels": spec["channels"],
        "observations": [{"name": "singlechannel", "data": [51.0, 48.0]}],
        "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }


def _error(clsb: float, clb: float, ntoys: int) -> float:
    """Binomial standard error of ``CLsb`` with ``ntoys`` toys, as an error of ``CLs = CLsb / CLb``."""
    return float(np.sqrt(max(clsb * (1.0 - clsb), 1.0 / ntoys) / ntoys) / max(clb, 1.0 / ntoys))


def bench_pyhf(ws_dict: dict, backend: str, ntoys: int, poi: float) -> dict:
    log(f"pyhf {backend}: {ntoys} toys per hypothesis ...")
    try:
        pyhf.set_backend(backend)
        ws = pyhf.Workspace(ws_dict)
        model = ws.model()
        data = pyhf.tensorlib.astensor(ws.data(model))

        def call(n: int):
            return pyhf.infer.hypotest(
                poi,
                data,
                model,
                calctype="toybased",
                ntoys=n,
                return_tail_probs=True,
                return_expected_set=True,
                track_progress=False,
            )

        if backend == "jax":
            call(1)  # compile pyhf's JAX functions
        np.random.seed(0)
        t0 = time.perf_counter()
        cls, (clsb, clb), band = call(ntoys)
        wall = time.perf_counter() - t0
    except Exception as err:  # report a failing backend instead of stopping
        return {"ok": False, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    finally:
        pyhf.set_backend("numpy")
    return {
        "ok": True,
        "ntoys": ntoys,
        "wall_s": wall,
        "rate": 2 * ntoys / wall,
        "cls": float(cls),
        "clsb": float(clsb),
        "clb": float(clb),
        "cls_exp": [float(x) for x in band],
    }


def bench_diffhep(ws_dict: dict, sizes: list[int], batch_size: int, repeats: int, poi: float) -> dict:
    model = from_workspace(ws_dict)
    data = observed_data(ws_dict, model)
    out = {}
    for n in sizes:
        log(f"diffhep: {n} toys per hypothesis, batches of {batch_size} ...")

        def call(n: int = n):
            return hypotest(
                poi, data, model, calctype="toybased", ntoys=n, key=0, batch_size=batch_size, track_progress=False
            )

        timing, result = measure(call, repeats)
        out[(batch_size, n)] = {
            "timing": timing,
            "rate": 2 * n / timing.median_s,
            "cls": float(result.cls_obs),
            "clsb": float(result.clsb_obs),
            "clb": float(result.clb_obs),
            "cls_exp": [float(x) for x in result.cls_exp],
            "failed": [result.signal.n_failed, result.background.n_failed],
        }
    return out


def report(info: dict, pyhf_results: dict[str, dict], diffhep: dict[tuple[int, int], dict]) -> str:
    ok = {name: r for name, r in pyhf_results.items() if r["ok"]}
    fastest = max(ok.values(), key=lambda r: r["rate"])["rate"] if ok else float("nan")
    lines = [
        f"workspace: {info['channels']} channels, {info['samples']} samples, {info['npars']} parameters, "
        f"{info['nbins']} bins; POI {info['poi']} tested at {info['poi_test']}, qtilde, toys",
        f"machine: {info['machine']}; jax {jax.__version__}, pyhf {pyhf.__version__}; float64",
        "",
        f"{'method':<22}{'ntoys':>7}{'first call s':>14}{'wall s':>10}{'toys/s':>10}{'rate / pyhf':>13}"
        f"{'CLs obs':>18}{'CLs exp median':>16}",
    ]
    for name, r in pyhf_results.items():
        if not r["ok"]:
            lines.append(f"{name:<22}  FAILED: {r['error']}")
            continue
        error = _error(r["clsb"], r["clb"], r["ntoys"])
        lines.append(
            f"{name:<22}{r['ntoys']:>7}{'':>14}{r['wall_s']:>10.2f}{r['rate']:>10.2f}{r['rate'] / fastest:>13.2f}"
            f"{r['cls']:>11.4f} +-{error:.3f}{r['cls_exp'][2]:>16.4f}"
        )
    for (batch, n), r in diffhep.items():
        t: Timing = r["timing"]
        error = _error(r["clsb"], r["clb"], n)
        lines.append(
            f"{f'diffhep, batches of {batch}':<22}{n:>7}{t.first_s:>14.2f}{t.median_s:>10.2f}{r['rate']:>10.1f}{r['rate'] / fastest:>13.0f}"
            f"{r['cls']:>11.4f} +-{error:.3f}{r['cls_exp'][2]:>16.4f}"
        )
        if any(r["failed"]):
            lines.append(f"{'':<22}  toys whose fits did not converge (s+b, b): {r['failed']}")
    if ok:
        best = max(ok, key=lambda name: ok[name]["rate"])
        same = [key for key in diffhep if key[1] == ok[best]["ntoys"]]
        top = max(diffhep, key=lambda key: diffhep[key]["rate"])
        if same:
            key = max(same, key=lambda key: diffhep[key]["rate"])
            lines.append(
                f"at {key[1]} toys diffhep (batches of {key[0]}) is {diffhep[key]['rate'] / fastest:.0f}x pyhf's "
                f"fastest backend ({best}) by rate; its fastest run ({top[1]} toys, batches of {top[0]}) "
                f"{diffhep[top]['rate'] / fastest:.0f}x"
            )
    return "\n".join(lines)


def _pyhf_runs(text: list[str]) -> list[tuple[str, int]]:
    runs = []
    for item in text:
        backend, _, n = item.partition(":")
        if backend not in ("numpy", "jax") or not n.isdigit() or int(n) < 1:
            raise SystemExit(f"--pyhf takes backend:ntoys with backend numpy or jax, not {item!r}")
        runs.append((backend, int(n)))
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pyhf",
        nargs="*",
        default=["jax:100", "numpy:10"],
        help="pyhf runs as backend:ntoys (default jax:100 numpy:10)",
    )
    parser.add_argument(
        "--ntoys", type=int, nargs="+", default=[100, 1000], help="diffhep toys per hypothesis (and pyhf's)"
    )
    parser.add_argument(
        "--batch-size", type=int, nargs="+", default=[5, 20], help="diffhep toys per compiled call (default 5 20)"
    )
    parser.add_argument(
        "--model",
        choices=("hepdata", "simple"),
        default="hepdata",
        help="the workspace: bench_hypotest.py's (default) or pyhf's 2-bin uncorrelated_background",
    )
    parser.add_argument("--repeats", type=int, default=2, help="measured diffhep calls per size after the first")
    parser.add_argument("--poi", type=float, default=1.0, help="tested POI value (default 1)")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    args = parser.parse_args(argv)
    runs = _pyhf_runs(args.pyhf)
    t0 = time.perf_counter()

    ws_dict = _plain(workspace() if args.model == "hepdata" else simple_workspace())
    config = from_workspace(ws_dict).config
    info = {
        "channels": len(config.channels),
        "samples": len(config.samples),
        "npars": config.npars,
        "nbins": config.nmaindata,
        "poi": config.poi_name,
        "poi_test": args.poi,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
    }
    sizes = sorted(set(args.ntoys) | {n for _, n in runs})
    diffhep = {}
    for batch_size in args.batch_size:
        diffhep |= bench_diffhep(ws_dict, sizes, batch_size, args.repeats, args.poi)
    pyhf_results = {f"pyhf {backend}": bench_pyhf(ws_dict, backend, n, args.poi) for backend, n in runs}

    print(report(info, pyhf_results, diffhep))
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")
    if args.json:
        out = {
            "info": info,
            "pyhf": pyhf_results,
            "diffhep": [
                {"batch_size": batch, "ntoys": n}
                | {k: (v.as_dict() if isinstance(v, Timing) else v) for k, v in r.items()}
                for (batch, n), r in diffhep.items()
            ],
        }
        args.json.write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
