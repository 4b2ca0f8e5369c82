"""The end-to-end job: generate -> read -> prepare -> optimise -> evaluate hard -> write.

This is what ``diffhep demo`` (and ``make demo``) runs on the embedded default:
data written by the project's own generator, so nothing outside the repository
is needed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jax

import optax

import diffhep
from diffhep.analysis import dimuon
from diffhep.analysis.evaluate import evaluate_hard, workspace
from diffhep.analysis.pipeline import Setup, soft_significance
from diffhep.analysis.plots import plot_before_after
from diffhep.io import PROCESSES, Sample, generate_dataset, load_sample, normalisation
from diffhep.io.generate import SCHEMA_VERSION
from diffhep.optimize import optimize
from diffhep.outputs import write_json

__all__ = ["JobSettings", "DEFAULT_EVENTS", "ensure_dataset", "run_job"]

#: Generated events per process for the default job (enough MC that the
#: statistical uncertainty matters, small enough for a 2-core laptop).
DEFAULT_EVENTS = {"signal": 20_000, "dy": 60_000, "ttbar": 40_000, "qcd": 60_000}


@dataclass
class JobSettings:
    """Settings of the default optimisation job.

    Attributes:
        lumi_pb: integrated luminosity, pb^-1.
        steps: optimiser steps.
        learning_rate: Adam learning rate on the unconstrained cut variables.
        seed: generator seed.
        n_events: events generated per process.
        setup: the fit setup (binning, systematics, KDE bandwidth).
    """

    lumi_pb: float = 10_000.0
    steps: int = 150
    learning_rate: float = 0.05
    seed: int = 1
    n_events: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_EVENTS))
    setup: Setup = field(default_factory=Setup)


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def ensure_dataset(workdir: Path, n_events: Mapping[str, int], seed: int, *, quiet: bool = False) -> dict[str, Path]:
    """Generate the dataset into ``workdir`` unless the same one is already there."""
    key = hashlib.sha256(
        json.dumps(
            {"n": dict(n_events), "seed": seed, "v": diffhep.__version__, "schema": SCHEMA_VERSION},
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    manifest = workdir / "manifest.json"
    if manifest.exists():
        stored = json.loads(manifest.read_text())
        paths = {k: Path(v) for k, v in stored.get("files", {}).items()}
        if stored.get("key") == key and all(p.exists() for p in paths.values()):
            _log(f"reusing generated data in {workdir}", quiet)
            return paths
    _log(f"generating {sum(n_events.values()):,} events into {workdir} ...", quiet)
    t0 = time.perf_counter()
    paths = generate_dataset(workdir, n_events=dict(n_events), seed=seed)
    write_json(manifest, {"key": key, "files": {k: str(p) for k, p in paths.items()}})
    _log(f"  done in {time.perf_counter() - t0:.1f} s", quiet)
    return {k: Path(v) for k, v in paths.items()}


def run_job(
    workdir: str | Path,
    output: str | Path,
    settings: JobSettings | None = None,
    *,
    quiet: bool = False,
) -> dict:
    """Run the default dimuon cut optimisation end to end and write its outputs.

    Writes ``results.json``, ``workspace.json`` and ``mass_before_after.png``
    into ``output`` (atomically) and returns the results dictionary.
    """
    settings = settings or JobSettings()
    workdir, output = Path(workdir), Path(output)
    files = ensure_dataset(workdir, settings.n_events, settings.seed, quiet=quiet)

    setup = settings.setup
    _log("reading samples and computing static structure ...", quiet)
    events, norms, data = {}, {}, {}
    for name, path in files.items():
        sample = Sample(name=name, files=(str(path),), xsec_pb=PROCESSES[name]["xsec_pb"])
        norms[name] = normalisation(sample, settings.lumi_pb)
        events[name] = load_sample(sample, dimuon.BRANCHES)
        data[name] = dimuon.prepare(
            events[name], norms[name], edges=setup.edges, bandwidth=setup.bandwidth
        )

    params = dimuon.CUTS
    slopes = {p.name: p.slope for p in params}

    def loss(cuts, data):
        return -soft_significance(data, cuts, slopes, setup)

    soft_z = jax.jit(lambda cuts, data: soft_significance(data, cuts, slopes, setup))
    initial = {p.name: p.init for p in params}
    z_soft_before = float(soft_z(initial, data))

    _log(f"optimising {len(params)} cuts for {settings.steps} steps (Adam) ...", quiet)
    result = optimize(
        loss, params, data, steps=settings.steps,
        optimizer=optax.adam(settings.learning_rate), progress=not quiet,
    )
    final = result.values
    z_soft_after = float(soft_z(final, data))

    _log("evaluating with hard cuts and pyhf ...", quiet)
    hard_before = evaluate_hard(events, norms, initial, setup)
    hard_after = evaluate_hard(events, norms, final, setup)

    results = {
        "diffhep_version": diffhep.__version__,
        "seed": settings.seed,
        "lumi_pb": settings.lumi_pb,
        "events_generated": dict(settings.n_events),
        "parameters": {p.name: {"unit": p.unit, "low": p.low, "high": p.high, "slope": p.slope}
                       for p in params},
        "initial": initial,
        "final": final,
        "objective": "expected discovery significance Z0 (Asimov, q0, profiled nuisances)",
        "history": result.history,
        "stopped": result.stopped,
        "significance": {
            "soft": {"before": z_soft_before, "after": z_soft_after},
            "hard_pyhf": {"before": hard_before.significance, "after": hard_after.significance},
        },
        "yields": {"before": hard_before.yields, "after": hard_after.yields},
    }
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "workspace.json", workspace(hard_after.spec))
    plot_before_after(
        output / "mass_before_after.png", hard_before.hists, hard_after.hists,
        signal=setup.signal, z_before=hard_before.significance, z_after=hard_after.significance,
    )
    write_json(output / "results.json", results)
    return results


def summary(results: dict) -> str:
    """A short human-readable table of the job's results."""
    lines = ["", f"{'cut':<14}{'initial':>10}{'optimised':>12}"]
    for name in results["initial"]:
        unit = results["parameters"][name]["unit"]
        lines.append(f"{name:<14}{results['initial'][name]:>10.2f}{results['final'][name]:>12.2f}  {unit}")
    s = results["significance"]
    lines += [
        "",
        f"{'significance Z0':<24}{'before':>8}{'after':>8}",
        f"{'relaxed (soft cuts)':<24}{s['soft']['before']:>8.3f}{s['soft']['after']:>8.3f}",
        f"{'pyhf (hard cuts)':<24}{s['hard_pyhf']['before']:>8.3f}{s['hard_pyhf']['after']:>8.3f}",
    ]
    if results.get("stopped"):
        lines.append(f"note: {results['stopped']}")
    return "\n".join(lines)


