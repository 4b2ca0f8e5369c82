"""Side-by-side timings of one diffhep optimisation step and its baselines.

Run from the repository root::

    .venv/bin/python benchmarks/bench_step.py                      # 1e5 and 1e6 events
    .venv/bin/python benchmarks/bench_step.py --events 20000 --repeats 2
    .venv/bin/python benchmarks/bench_step.py --json bench.json

For every dataset size (events summed over the four processes: signal 20%,
dy 30%, ttbar 20%, qcd 30%) it generates the ntuples once (cached under
``--workdir``), reads them, prepares the static structure and measures the
median wall time, after warm-up and with ``block_until_ready``, of

* **diffhep step**: one jitted optimiser step (:func:`make_step`, below) with
  ``optax.adam`` on the unconstrained cut variables of
  :mod:`diffhep.optimize.bounds`: value and gradient of
  :func:`diffhep.examples.dimuon_fit.soft_significance` (soft weights -> KDE
  histograms -> HistFactory likelihood -> profiled Z0, negated) w.r.t. the
  three cuts, then the Adam update;
* **diffhep soft+hist**: jitted value and gradient w.r.t. the cuts of
  ``sum_bins s / sqrt(b + sumw2_b + 1)`` on the soft KDE histograms;
* **Awkward-JAX soft+hist**: the same number and gradient written with
  Awkward Arrays on the (deprecated) JAX backend, eager (it cannot be jitted);
* **hard fill**: :func:`dimuon.hard_selection` on Awkward/NumPy plus a
  ``hist.Hist`` fill per sample, what a non-differentiable analysis does.

The whole script runs in 64-bit floats: Awkward's JAX backend switches JAX to
x64 when it is registered, so diffhep is measured in the same dtype.
This is a script that prints ratios measured side by side in one run; it is
not a test and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax

# Before any JAX array exists: everything below runs in float64 (see docstring).
jax.config.update("jax_enable_x64", True)

import awkward as ak  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.scipy.special import ndtr  # noqa: E402

import diffhep  # noqa: E402
from diffhep.config.parameters import CutParameter  # noqa: E402
from diffhep.examples import dimuon  # noqa: E402
from diffhep.examples.dimuon_fit import Setup, soft_histograms, soft_significance  # noqa: E402
from diffhep.histogram import Histogram, hard_hist  # noqa: E402
from diffhep.io import PROCESSES, Sample, generate_dataset, load_sample, normalisation  # noqa: E402
from diffhep.io.generate import SCHEMA_VERSION  # noqa: E402
from diffhep.optimize.bounds import from_unconstrained, to_unconstrained  # noqa: E402

warnings.filterwarnings("ignore", message="The JAX backend is deprecated", category=DeprecationWarning)

REPO = Path(__file__).resolve().parents[1]
#: Share of the requested events given to each process.
FRACTIONS = {"signal": 0.2, "dy": 0.3, "ttbar": 0.2, "qcd": 0.3}
#: Wall-clock budget for the measured repeats of the (slow) Awkward-JAX baseline, s.
AWKWARD_BUDGET_S = 120.0
SEED = 1
#: Integrated luminosity, pb^-1 (10 fb^-1, as in the dimuon template).
LUMI_PB = 10_000.0


# ----------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------


class Timing(NamedTuple):
    """Wall times of one measured function, seconds.

    Attributes:
        first_s: the first (warm-up) call, including JIT compilation or eager
            per-operation compilation.
        samples_s: the measured calls after warm-up.
        requested: repeats asked for (``len(samples_s)`` may be fewer when a
            time budget cut the run short).
    """

    first_s: float
    samples_s: list[float]
    requested: int

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples_s)

    def as_dict(self) -> dict:
        return {
            "median_ms": 1e3 * self.median_s,
            "first_call_ms": 1e3 * self.first_s,
            "samples_ms": [1e3 * t for t in self.samples_s],
            "repeats": len(self.samples_s),
            "requested_repeats": self.requested,
        }


def measure(fn: Callable[[], Any], repeats: int, *, budget_s: float | None = None) -> Timing:
    """Call ``fn`` once to warm up, then ``repeats`` times; block on JAX outputs.

    With ``budget_s``, stop early (after at least one measured call) once the
    measured calls have used up the budget.
    """
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    samples: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        samples.append(time.perf_counter() - t0)
        if budget_s is not None and sum(samples) + samples[-1] > budget_s:
            break
    return Timing(first, samples, repeats)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_step(
    loss_fn: Callable[[dict[str, jax.Array], Any], jax.Array],
    params: Sequence[CutParameter],
    optimizer: optax.GradientTransformation,
) -> Callable:
    """The jitted step ``(u, opt_state, data) -> (u, opt_state, loss, grad)``.

    ``u`` are the unconstrained cut variables; the loss sees the cut values
    ``from_unconstrained(params, u)``, inside their bounds by construction.
    """

    def loss_u(u: dict[str, jax.Array], data: Any) -> jax.Array:
        return loss_fn(from_unconstrained(params, u), data)

    @jax.jit
    def step(u, opt_state, data):
        loss, grad = jax.value_and_grad(loss_u)(u, data)
        updates, opt_state = optimizer.update(grad, opt_state, u)
        return optax.apply_updates(u, updates), opt_state, loss, grad

    return step


# ----------------------------------------------------------------------------
# The objective shared by diffhep soft+hist and the Awkward-JAX baseline
# ----------------------------------------------------------------------------


def hist_objective(hists: Mapping[str, Histogram], signal: str = "signal") -> jax.Array:
    """``sum_bins s / sqrt(b + sumw2_b + 1)``: a scalar of every histogram count and sumw2."""
    s = hists[signal].counts
    b = sum(h.counts for name, h in hists.items() if name != signal)
    var_b = sum(h.sumw2 for name, h in hists.items() if name != signal)
    return jnp.sum(s / jnp.sqrt(b + var_b + 1.0))


# ----------------------------------------------------------------------------
# (a) the same soft cuts and histograms with Awkward's JAX backend, eager
# ----------------------------------------------------------------------------


class AwkwardInputs(NamedTuple):
    """One sample for the Awkward-JAX baseline.

    ``muon_pt`` and ``jet_pt`` are ``events * var * float64`` Awkward Arrays on
    the JAX backend (GeV); ``met`` is a flat Awkward-JAX array (GeV). ``mass``
    and ``base_weight`` are the static dimuon mass (GeV) and the normalised,
    opposite-charge-masked weight, taken from :func:`dimuon.prepare` (structure
    is computed once in either approach).
    """

    muon_pt: ak.Array
    jet_pt: ak.Array
    met: ak.Array
    mass: jax.Array
    base_weight: jax.Array


def to_awkward_jax(events: ak.Array, data: dimuon.DimuonData) -> AwkwardInputs:
    def jaxify(array: ak.Array) -> ak.Array:
        return ak.to_backend(ak.values_astype(array, np.float64), "jax")

    return AwkwardInputs(
        muon_pt=jaxify(events.Muon.pt),
        jet_pt=jaxify(events.Jet.pt),
        met=jaxify(events.MET_pt),
        mass=data.mass,
        base_weight=data.base_weight,
    )


def _log_sigmoid_below(z: ak.Array) -> ak.Array:
    """``log(1 - sigmoid(z)) = -softplus(z)`` with Awkward ufuncs, finite for any ``z``.

    Written out because Awkward cannot dispatch ``jax.nn`` functions, and the
    naive ``1 / (1 + exp(z))`` overflows (NaN gradients) at steep slopes.
    """
    return -(np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z))))


def awkward_weights(inp: AwkwardInputs, cuts: Mapping[str, jax.Array], slopes: Mapping[str, float]) -> jax.Array:
    """The soft event weights of :func:`dimuon.soft_weights`, written with Awkward-JAX.

    With ``z = slope * (pt - cut)``, ``w = sigmoid(z)`` passes and ``q = 1 - w``
    fails. ``P0 = prod q = exp(sum log q)`` and
    ``P1 = sum_i w_i prod_{j != i} q_j = sum_i exp(z_i + log P0)`` (since
    ``w/q = exp(z)``), whose exponent is ``<= 0``: no overflow and no division
    by a ``q`` that has rounded to 0. ``P(>= 2 muons) = 1 - P0 - P1``.
    """
    z_mu = slopes["muon_pt_min"] * (inp.muon_pt - cuts["muon_pt_min"])
    log_p0 = ak.sum(_log_sigmoid_below(z_mu), axis=1)
    p0 = np.exp(log_p0)
    p1 = ak.sum(np.exp(z_mu + log_p0), axis=1)  # log_p0 broadcasts into the muon lists
    two_muons = 1.0 - p0 - p1
    z_jet = slopes["jet_pt_veto"] * (inp.jet_pt - cuts["jet_pt_veto"])
    no_jet = np.exp(ak.sum(_log_sigmoid_below(z_jet), axis=1))
    met_ok = np.exp(_log_sigmoid_below(slopes["met_max"] * (inp.met - cuts["met_max"])))
    return inp.base_weight * ak.to_jax(two_muons * no_jet * met_ok)


def awkward_kde(x: jax.Array, weights: jax.Array, edges: jax.Array, bandwidth: float) -> Histogram:
    """Weighted Gaussian-kernel histogram in plain ``jax.numpy`` (independent of diffhep's)."""
    cdf = ndtr((edges[None, :] - x[:, None]) / bandwidth)
    frac = cdf[:, 1:] - cdf[:, :-1]
    return Histogram(
        counts=jnp.sum(weights[:, None] * frac, axis=0), sumw2=jnp.sum((weights * weights)[:, None] * frac, axis=0)
    )


def awkward_objective(cuts, inputs: Mapping[str, AwkwardInputs], slopes, setup: Setup) -> jax.Array:
    edges = jnp.asarray(setup.edges)
    hists = {
        name: awkward_kde(inp.mass, awkward_weights(inp, cuts, slopes), edges, setup.bandwidth)
        for name, inp in inputs.items()
    }
    return hist_objective(hists, setup.signal)


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------


def split_events(total: int) -> dict[str, int]:
    counts = {name: int(round(total * f)) for name, f in FRACTIONS.items()}
    counts["qcd"] += total - sum(counts.values())
    return counts


def ensure_dataset(folder: Path, counts: Mapping[str, int], seed: int) -> dict[str, Path]:
    """Generate the ntuples into ``folder`` with :func:`diffhep.io.generate_dataset`, or reuse them.

    A ``manifest.json`` records the event counts, seed, diffhep version and
    generator schema; the files are reused only when all of them match and
    every file exists.
    """
    key = {"n": dict(counts), "seed": seed, "diffhep": diffhep.__version__, "schema": SCHEMA_VERSION}
    manifest = folder / "manifest.json"
    if manifest.exists():
        stored = json.loads(manifest.read_text())
        paths = {name: Path(p) for name, p in stored.get("files", {}).items()}
        if stored.get("key") == key and set(paths) == set(counts) and all(p.exists() for p in paths.values()):
            log(f"reusing generated data in {folder}")
            return paths
    log(f"generating {sum(counts.values()):,} events into {folder} ...")
    t0 = time.perf_counter()
    paths = generate_dataset(folder, n_events=dict(counts), seed=seed)
    manifest.write_text(json.dumps({"key": key, "files": {name: str(p) for name, p in paths.items()}}, indent=2))
    log(f"  done in {time.perf_counter() - t0:.1f} s")
    return {name: Path(p) for name, p in paths.items()}


class Prepared(NamedTuple):
    events: dict[str, ak.Array]
    norms: dict[str, float]
    data: dict[str, dimuon.DimuonData]
    read_s: float
    prepare: Timing


def load(workdir: Path, total: int, lumi_pb: float, prepare_repeats: int) -> Prepared:
    counts = split_events(total)
    files = ensure_dataset(workdir / f"events_{total}", counts, SEED)
    t0 = time.perf_counter()
    events, norms = {}, {}
    for name, path in files.items():
        sample = Sample(name=name, files=(str(path),), xsec_pb=PROCESSES[name]["xsec_pb"])
        norms[name] = normalisation(sample, lumi_pb)
        events[name] = load_sample(sample, dimuon.BRANCHES)
    read_s = time.perf_counter() - t0

    def prepare_all():
        return {name: dimuon.prepare(ev, norms[name]) for name, ev in events.items()}

    timing = measure(prepare_all, prepare_repeats)
    return Prepared(events, norms, prepare_all(), read_s, timing)


# ----------------------------------------------------------------------------
# One dataset size
# ----------------------------------------------------------------------------


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def bench_size(total: int, args: argparse.Namespace) -> dict:
    setup = Setup()
    params = dimuon.CUTS
    slopes = {p.name: p.slope for p in params}
    start = {p.name: jnp.asarray(p.init, dtype=jnp.float64) for p in params}
    hard_cuts = {p.name: float(p.init) for p in params}

    log(f"\n=== {total:,} events ===")
    prep = load(args.workdir, total, LUMI_PB, max(1, min(3, args.repeats)))
    data = prep.data
    n_muons = sum(d.muons.n_objects for d in data.values())
    n_jets = sum(d.jets.n_objects for d in data.values())
    log(f"read {prep.read_s:.2f} s, prepare {prep.prepare.median_s:.2f} s ({n_muons:,} muons, {n_jets:,} jets)")
    timings: dict[str, Timing] = {}

    # diffhep step: what the optimiser runs per iteration.
    optimizer = optax.adam(0.05)
    step = make_step(lambda cuts, d: -soft_significance(d, cuts, slopes, setup), params, optimizer)
    u = to_unconstrained(params, {p.name: p.init for p in params})
    opt_state = optimizer.init(u)
    log("diffhep step (first call compiles) ...")
    timings["diffhep_step"] = measure(lambda: step(u, opt_state, data), args.repeats)
    _, _, step_loss, _ = step(u, opt_state, data)

    # diffhep soft cuts + KDE histograms, value and gradient w.r.t. the cuts.
    soft_hist = jax.jit(
        jax.value_and_grad(lambda cuts, d: hist_objective(soft_histograms(d, cuts, slopes, setup), setup.signal))
    )
    log("diffhep soft+hist ...")
    timings["diffhep_soft_hist"] = measure(lambda: soft_hist(start, data), args.repeats)
    value_dh, grad_dh = soft_hist(start, data)

    breakdown = {}
    if args.breakdown:
        # Where the step's time goes: weights only, and the step's forward pass.
        weights_only = jax.jit(
            jax.value_and_grad(lambda cuts, d: sum(jnp.sum(dimuon.soft_weights(x, cuts, slopes)) for x in d.values()))
        )
        forward = jax.jit(lambda cuts, d: soft_significance(d, cuts, slopes, setup))
        log("diffhep breakdown: weights only, significance forward ...")
        breakdown["diffhep_weights_only"] = measure(lambda: weights_only(start, data), args.repeats)
        breakdown["diffhep_significance_forward"] = measure(lambda: forward(start, data), args.repeats)

    # (a) Awkward JAX backend, eager.
    t0 = time.perf_counter()
    inputs = {name: to_awkward_jax(prep.events[name], data[name]) for name in data}
    to_jax_s = time.perf_counter() - t0
    ak_vg = jax.value_and_grad(lambda cuts: awkward_objective(cuts, inputs, slopes, setup))
    log(f"Awkward-JAX soft+hist, eager (budget {AWKWARD_BUDGET_S:.0f} s) ...")
    timings["awkward_jax_soft_hist"] = measure(lambda: ak_vg(start), args.repeats, budget_s=AWKWARD_BUDGET_S)
    value_ak, grad_ak = ak_vg(start)

    # (b) hard cuts with Awkward on NumPy, filled into hist.Hist.
    def hard_fill():
        out = {}
        for name, ev in prep.events.items():
            mass, weight = dimuon.hard_selection(ev, hard_cuts, prep.norms[name])
            out[name] = hard_hist(mass, weight, setup.edges, name="mass")
        return out

    log("hard fill ...")
    timings["hard_fill"] = measure(hard_fill, args.repeats)

    value_rel = rel_diff(value_ak, value_dh)
    grad_rel = {k: rel_diff(grad_ak[k], grad_dh[k]) for k in grad_dh}
    med = {k: t.median_s for k, t in timings.items()}
    return {
        "events": total,
        "events_per_process": split_events(total),
        "muons": n_muons,
        "jets": n_jets,
        "read_s": prep.read_s,
        "prepare": prep.prepare.as_dict(),
        "awkward_to_jax_backend_s": to_jax_s,
        "timings": {k: t.as_dict() for k, t in timings.items()},
        "breakdown": {k: t.as_dict() for k, t in breakdown.items()},
        "ratios": {
            "awkward_jax_over_diffhep_soft_hist": med["awkward_jax_soft_hist"] / med["diffhep_soft_hist"],
            "diffhep_step_over_hard_fill": med["diffhep_step"] / med["hard_fill"],
            "diffhep_soft_hist_over_hard_fill": med["diffhep_soft_hist"] / med["hard_fill"],
        },
        "agreement": {
            "objective_diffhep": float(value_dh),
            "objective_awkward_jax": float(value_ak),
            "objective_rel_diff": value_rel,
            "grad_diffhep": {k: float(v) for k, v in grad_dh.items()},
            "grad_awkward_jax": {k: float(v) for k, v in grad_ak.items()},
            "grad_rel_diff": grad_rel,
        },
        "step_loss": float(step_loss),
    }


# ----------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_devices": [str(d) for d in jax.devices()],
        "awkward": ak.__version__,
        "numpy": np.__version__,
        "diffhep": diffhep.__version__,
        "jax_enable_x64": bool(jax.config.jax_enable_x64),
    }


LABELS = {
    "diffhep_step": "diffhep step (jit, value+grad of -Z0, adam)",
    "diffhep_soft_hist": "diffhep soft-cut + KDE hist (jit, value+grad)",
    "awkward_jax_soft_hist": "Awkward-JAX soft-cut + KDE hist (eager, value+grad)",
    "hard_fill": "hard cuts, Awkward/NumPy + hist.Hist fill",
    "diffhep_weights_only": "  breakdown: diffhep soft weights only (value+grad)",
    "diffhep_significance_forward": "  breakdown: diffhep Z0 forward only (no grad)",
}


def _row(label: str, t: dict) -> str:
    reps = f"{t['repeats']}" + ("" if t["repeats"] == t["requested_repeats"] else f" of {t['requested_repeats']}")
    return f"  {label:<54}{t['median_ms']:>11.2f}{t['first_call_ms']:>13.0f}{reps:>9}"


def report(info: dict, results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        "diffhep benchmark: one optimisation step vs baselines (medians after warm-up)",
        f"machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"JAX {info['jax']} on {', '.join(info['jax_devices'])}",
        f"python {info['python']}, awkward {info['awkward']}, numpy {info['numpy']}, diffhep {info['diffhep']}",
        "dtype: float64 everywhere (jax_enable_x64 set at start: Awkward's JAX backend requires it)",
        f"events split signal/dy/ttbar/qcd = 20/30/20/30 %, seed {SEED}, "
        f"cuts at their initial values, repeats {args.repeats}",
    ]
    for r in results:
        lines += [
            "",
            f"--- {r['events']:,} events ({r['muons']:,} muons, {r['jets']:,} jets) ---",
            f"  one-time: read {1e3 * r['read_s']:.0f} ms, dimuon.prepare (structure, all samples) "
            f"{r['prepare']['median_ms']:.0f} ms, to Awkward-JAX backend {1e3 * r['awkward_to_jax_backend_s']:.0f} ms",
            f"  {'':<54}{'median ms':>11}{'1st call ms':>13}{'repeats':>9}",
        ]
        for key, t in {**r["timings"], **r["breakdown"]}.items():
            lines.append(_row(LABELS[key], t))
        ratios = r["ratios"]
        a = r["agreement"]
        worst_grad = max(a["grad_rel_diff"].values())
        lines += [
            f"  ratio Awkward-JAX / diffhep (soft+hist):   {ratios['awkward_jax_over_diffhep_soft_hist']:>9.1f} x",
            f"  ratio diffhep step / hard fill:            {ratios['diffhep_step_over_hard_fill']:>9.2f} x",
            f"  ratio diffhep soft+hist / hard fill:       {ratios['diffhep_soft_hist_over_hard_fill']:>9.2f} x",
            f"  agreement Awkward-JAX vs diffhep: objective {a['objective_awkward_jax']:.10g} vs "
            f"{a['objective_diffhep']:.10g} (rel diff {a['objective_rel_diff']:.1e}), "
            f"gradient max rel diff {worst_grad:.1e}"
            + ("" if a["objective_rel_diff"] < 1e-6 and worst_grad < 1e-6 else "  <-- DISAGREE"),
        ]
        if any(t["repeats"] < t["requested_repeats"] for t in r["timings"].values()):
            lines.append(f"  note: Awkward-JAX repeats cut to fit its {AWKWARD_BUDGET_S:.0f} s budget")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events",
        type=int,
        nargs="+",
        default=[100_000, 1_000_000],
        help="total events per dataset, split over the processes (default: 1e5 1e6)",
    )
    parser.add_argument("--repeats", type=int, default=7, help="measured calls per timing (default: 7)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=REPO / "work" / "bench",
        help="where generated ntuples are cached (default: <repo>/work/bench, git-ignored)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write all numbers to this JSON file")
    parser.add_argument(
        "--no-breakdown", dest="breakdown", action="store_false", help="skip the extra diffhep stage timings"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or any(n < 100 for n in args.events):
        parser.error("--repeats must be >= 1 and every --events value >= 100")

    ak.jax.register_and_check()
    info = machine()
    t0 = time.perf_counter()
    results = [bench_size(n, args) for n in args.events]
    text = report(info, results, args)
    print(text)
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "repeats": args.repeats, "results": results}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
