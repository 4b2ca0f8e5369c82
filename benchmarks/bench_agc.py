"""Side-by-side timings of the AGC-like ttbar selection: diffhep vs Awkward-JAX vs hard cuts.

Run from the repository root::

    .venv/bin/python benchmarks/bench_agc.py                  # 1e5 and 1e6 events
    .venv/bin/python benchmarks/bench_agc.py --events 20000 --repeats 2 --json agc.json

The selection is :mod:`diffhep.examples.ttbar` (one lepton, >= 4 jets, b-tags;
``HT`` in region 4j1b and the mass of the highest-pT b-tagged trijet in 4j2b)
on generated AGC NanoAOD (:mod:`diffhep.io.generate_agc`: ttbar 40 %, W+jets
40 %, single top t-channel 20 %; about 5.5 jets per event, muons and
electrons). For every dataset size it measures the median wall time,
after warm-up and with ``block_until_ready``, of

* **diffhep**: jitted value and gradient w.r.t. the three cuts of
  ``sum_bins s / sqrt(b + sumw2_b + 1)`` over both regions' soft histograms;
* **Awkward-JAX**: the same number and gradient written with Awkward Arrays on
  the (deprecated) JAX backend, eagerly: sigmoid weights with Awkward ufuncs,
  the joint jet count as a loop over padded jet positions, trijet member
  weights by jagged integer indexing, the ordered choice through a flat
  ``jnp.cumsum``, dense-kernel KDE histograms;
* **hard**: :func:`ttbar.hard_selection` (the AGC's Awkward code) plus
  ``hist.Hist`` fills, what a non-differentiable analysis runs per cut point.

Everything runs in float64 (Awkward's JAX backend turns on x64). This script
prints ratios measured in one run; it is not a test and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import awkward as ak  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.scipy.special import ndtr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import Timing, log, machine, measure, rel_diff  # noqa: E402

from diffhep.examples import ttbar  # noqa: E402
from diffhep.histogram import Histogram, hard_hist  # noqa: E402
from diffhep.io import AGC_PROCESSES, Sample, generate_agc_dataset, load_sample, normalisation  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SEED = 11
FRACTIONS = {"ttbar": 0.4, "wjets": 0.4, "single_top_t_chan": 0.2}
FLAVOURS = ("Muon", "Electron")
LUMI_PB = 3378.0  # the AGC's
SIGNAL = "ttbar"
AWKWARD_BUDGET_S = 120.0


def objective(hists: Mapping[str, Mapping[str, Histogram]]) -> jax.Array:
    """``sum over regions and bins of s / sqrt(b + sumw2_b + 1)``."""
    total = 0.0
    for region in ttbar.REGIONS:
        s = hists[SIGNAL][region].counts
        b = sum(h[region].counts for name, h in hists.items() if name != SIGNAL)
        var = sum(h[region].sumw2 for name, h in hists.items() if name != SIGNAL)
        total = total + jnp.sum(s / jnp.sqrt(b + var + 1.0))
    return total


# ----------------------------------------------------------------------------
# The Awkward-JAX baseline
# ----------------------------------------------------------------------------


def _sigmoid(z):
    """``sigmoid(z)`` with Awkward ufuncs, overflow-free for any ``z``."""
    return np.exp(-(np.maximum(-z, 0.0) + np.log1p(np.exp(-np.abs(z)))))


def _kde(x: jax.Array, w: jax.Array, edges: np.ndarray, bandwidth: float) -> Histogram:
    cdf = ndtr((jnp.asarray(edges)[None, :] - x[:, None]) / bandwidth)
    frac = cdf[:, 1:] - cdf[:, :-1]
    return Histogram(counts=w @ frac, sumw2=(w * w) @ frac)


class AwkwardSample:
    """One sample on Awkward's JAX backend (structure from the same static inputs)."""

    def __init__(self, events: ak.Array, data: ttbar.TtbarData):
        to_jax = lambda a: ak.to_backend(ak.values_astype(a, np.float64), "jax")  # noqa: E731
        leptons = ttbar._identified_leptons(events, FLAVOURS)
        jets = ttbar._jets(events)
        self.lep_pt = to_jax(leptons)
        self.jet_pt = to_jax(jets.pt)
        self.jet_btag = to_jax(jets.btag)
        self.max_jets = int(ak.max(ak.num(jets, axis=1), initial=0))
        tri = ttbar._trijets(jets)
        # Static: the member indices of the pT-ordered trijets (ak.combinations
        # on the JAX backend returned empty lists at 1e5 events, so the members
        # are gathered with jagged integer indexing instead).
        self.members = [ak.to_backend(tri[f], "jax") for f in ("i1", "i2", "i3")]
        counts = ak.to_numpy(ak.num(tri, axis=1))
        self.segment = np.repeat(np.arange(len(counts)), counts)
        self.first = np.concatenate([[0], np.cumsum(counts)])[:-1]
        self.tri_mass = jnp.asarray(ak.to_numpy(ak.flatten(tri.mass)))
        self.base = data.base_weight
        self.bandwidth = data.bandwidth

    def histograms(self, cuts, slopes) -> dict[str, Histogram]:
        # Exactly one lepton: P1 = prod(q) * sum(w/q), in logs without overflow.
        z = slopes["lepton_pt_min"] * (self.lep_pt - cuts["lepton_pt_min"])
        log_q = -(np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z))))
        log_p0 = ak.sum(log_q, axis=1)
        one_lepton = ak.sum(np.exp(z + log_p0), axis=1)
        w_sel = _sigmoid(slopes["jet_pt_min"] * (self.jet_pt - cuts["jet_pt_min"]))
        tagged = _sigmoid(slopes["btag_min"] * (self.jet_btag - cuts["btag_min"]))
        w_tag = w_sel * tagged
        # Joint count (>= 4 selected, 1 or >= 2 tagged) as a loop over jet positions.
        sel_cols = ak.fill_none(ak.pad_none(w_sel, self.max_jets, axis=1, clip=True), 0.0)
        tag_cols = ak.fill_none(ak.pad_none(w_tag, self.max_jets, axis=1, clip=True), 0.0)
        poly = {(i, j): (1.0 if (i, j) == (0, 0) else 0.0) for i in range(5) for j in range(3)}
        for k in range(self.max_jets):
            s, t = sel_cols[:, k], tag_cols[:, k]
            none, untagged = 1.0 - s, s - t
            new: dict = {}
            for (i, j), v in poly.items():
                for (di, dj), f in (((0, 0), none), ((1, 0), untagged), ((1, 1), t)):
                    key = (min(i + di, 4), min(j + dj, 2))
                    new[key] = new[key] + v * f if key in new else v * f
            poly = new
        r1 = ak.to_jax(one_lepton * poly[(4, 1)])
        r2 = ak.to_jax(one_lepton * poly[(4, 2)])
        ht = ak.to_jax(ak.sum(w_sel * self.jet_pt, axis=1))
        h_ht = _kde(ht, self.base * r1, ttbar.REGIONS["4j1b"][1], self.bandwidth)
        # Trijets: member weights via ak.combinations, sorted by the static pT order.
        wa, wb, wc = (w_sel[i] for i in self.members)
        ta, tb, tc = (tagged[i] for i in self.members)
        p = wa * wb * wc * (1.0 - (1.0 - ta) * (1.0 - tb) * (1.0 - tc))
        p = ak.to_jax(ak.flatten(p))
        log_q = jnp.log1p(-p)
        inclusive = jnp.cumsum(log_q)
        exclusive = inclusive - log_q
        before = exclusive - exclusive[self.first][self.segment] if len(p) else exclusive
        chosen = p * jnp.exp(before)
        w = chosen * (self.base * r2)[self.segment]
        h_m = _kde(self.tri_mass, w, ttbar.REGIONS["4j2b"][1], self.bandwidth)
        return {"4j1b": h_ht, "4j2b": h_m}


# ----------------------------------------------------------------------------


def ensure_agc_dataset(folder: Path, counts: dict[str, int]) -> dict[str, Path]:
    """Generate the AGC NanoAOD samples into ``folder`` unless the same ones are there."""
    stamp = folder / "generated.json"
    key = {"counts": counts, "seed": SEED}
    paths = {k: folder / f"{k}.root" for k in counts}
    if stamp.exists() and json.loads(stamp.read_text()) == key and all(p.exists() for p in paths.values()):
        log(f"reusing generated data in {folder}")
        return paths
    log(f"generating {sum(counts.values()):,} AGC NanoAOD events into {folder} ...")
    paths = generate_agc_dataset(folder, counts, seed=SEED)
    stamp.write_text(json.dumps(key))
    return paths


def bench_size(total: int, args: argparse.Namespace) -> dict:
    counts = {k: int(round(total * f)) for k, f in FRACTIONS.items()}
    counts["wjets"] += total - sum(counts.values())
    log(f"\n=== {total:,} events ===")
    files = ensure_agc_dataset(args.workdir / f"agc_nanoaod_{total}", counts)
    lumi = LUMI_PB
    t0 = time.perf_counter()
    events, norms = {}, {}
    for name, path in files.items():
        sample = Sample(
            name=name,
            files=(str(path),),
            xsec_pb=AGC_PROCESSES[name]["xsec_pb"],
            tree="Events",
            weight_branch="genWeight",
        )
        norms[name] = normalisation(sample, lumi)
        events[name] = load_sample(sample, ttbar.branches(FLAVOURS))
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = {k: ttbar.prepare(ev, norms[k], flavours=FLAVOURS) for k, ev in events.items()}
    jax.block_until_ready(data)
    prepare_s = time.perf_counter() - t0
    n_jets = sum(d.jets.n_objects for d in data.values())
    n_tri = sum(d.trijets.n_objects for d in data.values())
    log(f"read {read_s:.1f} s, prepare {prepare_s:.1f} s ({n_jets:,} jets, {n_tri:,} trijets)")

    slopes = {p.name: p.slope for p in ttbar.CUTS}
    cuts = {p.name: jnp.asarray(p.init) for p in ttbar.CUTS}
    hard_cuts = {p.name: float(p.init) for p in ttbar.CUTS}
    timings: dict[str, Timing] = {}

    diff = jax.jit(
        jax.value_and_grad(lambda c, d: objective({k: ttbar.soft_histograms(v, c, slopes) for k, v in d.items()}))
    )
    log("diffhep (first call compiles) ...")
    timings["diffhep"] = measure(lambda: diff(cuts, data), args.repeats)
    value, grad = diff(cuts, data)
    # The same step in float32 (the inputs and cuts cast; what a GPU runs), against the float64 one.
    to32 = lambda x: x.astype(jnp.float32) if jnp.issubdtype(getattr(x, "dtype", int), jnp.floating) else x  # noqa: E731
    data32 = jax.tree.map(to32, data)
    cuts32 = {k: jnp.asarray(v, jnp.float32) for k, v in cuts.items()}
    log("diffhep float32 (first call compiles) ...")
    timings["diffhep_f32"] = measure(lambda: diff(cuts32, data32), args.repeats)
    value32, grad32 = diff(cuts32, data32)
    f32_diff = {"objective": rel_diff(value32, value), "grad": max(rel_diff(grad32[k], grad[k]) for k in grad)}
    data32 = None  # free the float32 copy before the next measurements (the lambda above holds its cell)
    # XLA's buffer assignment of the compiled step: temporaries beside the inputs.
    memory = diff.lower(cuts, data).compile().memory_analysis()
    input_bytes = sum(x.nbytes for x in jax.tree.leaves(data))
    log(f"step temporaries {memory.temp_size_in_bytes / 1e6:.0f} MB for {input_bytes / 1e6:.0f} MB of inputs")

    def hard():
        out = {}
        for k, ev in events.items():
            sel = ttbar.hard_selection(ev, hard_cuts, norms[k], flavours=FLAVOURS)
            out[k] = {r: hard_hist(x, w, ttbar.REGIONS[r][1])[1] for r, (x, w) in sel.items()}
        return out

    log("hard cuts + hist fill ...")
    timings["hard"] = measure(hard, args.repeats)

    if args.awkward_max_events is not None and total > args.awkward_max_events:
        log("Awkward-JAX (eager): skipped (--awkward-max-events)")
        awk_error = f"skipped above {args.awkward_max_events:,} events (--awkward-max-events)"
        return _result(
            total,
            n_jets,
            n_tri,
            read_s,
            prepare_s,
            float("nan"),
            timings,
            awk_error,
            memory,
            input_bytes,
            value,
            grad,
            np.nan,
            {k: np.nan for k in grad},
            f32_diff,
        )
    log("Awkward-JAX (eager) ...")
    t0 = time.perf_counter()
    awk = {k: AwkwardSample(ev, data[k]) for k, ev in events.items()}
    to_backend_s = time.perf_counter() - t0
    awk_fn = jax.value_and_grad(lambda c: objective({k: a.histograms(c, slopes) for k, a in awk.items()}))
    try:
        timings["awkward_jax"] = measure(lambda: awk_fn(cuts), args.repeats, budget_s=AWKWARD_BUDGET_S)
        a_value, a_grad = awk_fn(cuts)
        awk_error = None
    except Exception as err:  # the deprecated backend fails on large inputs; report, don't stop
        awk_error = f"{type(err).__name__}: {' '.join(str(err).split())[:160]}"
        log(f"Awkward-JAX failed: {awk_error}")
        a_value, a_grad = np.nan, {k: np.nan for k in grad}

    return _result(
        total,
        n_jets,
        n_tri,
        read_s,
        prepare_s,
        to_backend_s,
        timings,
        awk_error,
        memory,
        input_bytes,
        value,
        grad,
        a_value,
        a_grad,
        f32_diff,
    )


def _result(
    total,
    n_jets,
    n_tri,
    read_s,
    prepare_s,
    to_backend_s,
    timings,
    awk_error,
    memory,
    input_bytes,
    value,
    grad,
    a_value,
    a_grad,
    f32_diff,
) -> dict:
    med = {k: t.median_s for k, t in timings.items()}
    return {
        "events": total,
        "jets": n_jets,
        "trijets": n_tri,
        "read_s": read_s,
        "prepare_s": prepare_s,
        "awkward_to_jax_backend_s": to_backend_s,
        "timings": {k: t.as_dict() for k, t in timings.items()},
        "awkward_jax_error": awk_error,
        "memory": {"input_bytes": int(input_bytes), "step_temp_bytes": int(memory.temp_size_in_bytes)},
        "ratios": {
            "awkward_jax_over_diffhep": med["awkward_jax"] / med["diffhep"] if "awkward_jax" in med else None,
            "diffhep_over_hard": med["diffhep"] / med["hard"],
            "diffhep_f32_over_hard": med["diffhep_f32"] / med["hard"],
        },
        "float32_rel_diff": f32_diff,
        "agreement": {
            "objective_diffhep": float(value),
            "objective_awkward_jax": float(a_value),
            "objective_rel_diff": rel_diff(value, a_value),
            "grad_rel_diff": {k: rel_diff(grad[k], a_grad[k]) for k in grad},
        },
    }


def report(info: dict, results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        "diffhep AGC-like selection benchmark: value+gradient per step vs baselines (medians)",
        f"machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"JAX {info['jax']} on {', '.join(info['jax_devices'])}; float64; repeats {args.repeats}",
    ]
    for r in results:
        t = r["timings"]
        a = r["agreement"]
        worst = max(a["grad_rel_diff"].values())
        lines += [
            "",
            f"--- {r['events']:,} events ({r['jets']:,} jets, {r['trijets']:,} trijets) ---",
            f"  one-time: read {r['read_s']:.1f} s, ttbar.prepare {r['prepare_s']:.1f} s, "
            f"to Awkward-JAX {r['awkward_to_jax_backend_s']:.1f} s",
            f"  diffhep (jit, value+grad)           {t['diffhep']['median_ms']:>10.1f} ms"
            f"  (first call {t['diffhep']['first_call_ms']:.0f} ms)",
            (
                f"  Awkward-JAX (eager, value+grad)     {t['awkward_jax']['median_ms']:>10.1f} ms"
                if "awkward_jax" in t
                else f"  Awkward-JAX (eager, value+grad)     FAILED: {r['awkward_jax_error']}"
            ),
            f"  diffhep float32 (jit, value+grad)   {t['diffhep_f32']['median_ms']:>10.1f} ms"
            f"  (objective {r['float32_rel_diff']['objective']:.1e}, gradient {r['float32_rel_diff']['grad']:.1e}"
            " relative to float64)",
            f"  hard cuts + hist fill (forward)     {t['hard']['median_ms']:>10.1f} ms",
            (
                f"  ratio Awkward-JAX / diffhep:        {r['ratios']['awkward_jax_over_diffhep']:>10.1f} x"
                if "awkward_jax" in t
                else "  ratio Awkward-JAX / diffhep:        n/a (baseline failed)"
            ),
            f"  ratio diffhep / hard forward:       {r['ratios']['diffhep_over_hard']:>10.2f} x"
            f"  (float32: {r['ratios']['diffhep_f32_over_hard']:.2f} x)",
            f"  memory: step temporaries {r['memory']['step_temp_bytes'] / 1e6:.0f} MB for "
            f"{r['memory']['input_bytes'] / 1e6:.0f} MB of inputs "
            f"({r['memory']['step_temp_bytes'] / r['memory']['input_bytes']:.1f} x; XLA buffer assignment)",
            (
                f"  agreement: objective rel diff {a['objective_rel_diff']:.1e}, gradient max rel diff {worst:.1e}"
                + ("" if a["objective_rel_diff"] < 1e-6 and worst < 1e-6 else "  <-- DISAGREE")
            )
            if "awkward_jax" in t
            else "  agreement: n/a (no Awkward-JAX result)",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=REPO / "work" / "bench")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--awkward-max-events",
        type=int,
        default=None,
        help="skip the Awkward-JAX baseline above this many events (at 1e6 it needs more than 24 GB)",
    )
    args = parser.parse_args(argv)
    ak.jax.register_and_check()
    info = machine()
    t0 = time.perf_counter()
    results = []
    for n in args.events:  # report and save each size as soon as it is measured (a later one may run out of memory)
        results.append(bench_size(n, args))
        print(report(info, results[-1:], args), flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2))
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
