"""``diffhep optimize CONFIG``: the checkpointed cut-optimisation job (:func:`diffhep.workflow.job.run_job`).

Optimise with a progress bar, checkpoint every N steps (``--resume`` continues
from the last one), evaluate the initial and the optimised cuts with hard cuts
and standard pyhf, scan around the optimum, and write ``results.json``,
``workspace.json``, ``histograms.root``, ``cabinetry_config.yml``, the plots and ``report.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from diffhep.cli.common import (
    add_command,
    add_execution_options,
    check_output,
    default_output,
    executed_analysis,
    execution_settings,
    files_listing,
    fit_lines,
    load,
    number,
    observed_lines,
    say,
    table,
)
from diffhep.cli.validate import check_files
from diffhep.errors import DiffhepError

EXAMPLES = """
  diffhep optimize analyses/dimuon/config.yaml                    # outputs in work/dimuon/optimize
  diffhep optimize myana/config.yaml --output work/myana --steps 50
  diffhep optimize myana/config.yaml --output work/myana --resume # continue from the last checkpoint
  diffhep optimize myana/config.yaml --execution streaming --chunk-size 100000   # one chunk in memory at a time
  diffhep optimize myana/config.yaml --scheduler tcp://10.0.0.1:8786             # on a Dask cluster
  diffhep optimize myana/config.yaml --unblind                    # then show the signal regions' data too
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    o = add_command(
        sub,
        "optimize",
        help="optimise the cut values (checkpointed, resumable) and report",
        description="Optimise the cuts of CONFIG with its optimizer settings: progress bar, checkpoints "
        "every optimizer.checkpoint_every steps, early stopping, a clear stop on a non-finite objective; "
        "then hard-cut pyhf significance before and after, and a scan around the optimum.",
        examples=EXAMPLES,
        func=run,
    )
    o.add_argument("config", metavar="CONFIG", help="the analysis config (YAML)")
    o.add_argument(
        "--output",
        default=None,
        help="output folder (default work/<analysis>/optimize); a new run first removes the outputs and "
        "checkpoints of a previous run there (results.json first), so the folder never mixes two runs; "
        "with --resume they are kept and the run continues",
    )
    o.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint in OUTPUT/checkpoints (same result as uninterrupted)",
    )
    o.add_argument("--steps", type=int, default=None, help="optimiser steps (default: optimizer.steps of the config)")
    o.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        metavar="RATE",
        help="a constant learning rate > 0, in place of optimizer.learning_rate of the config (a schedule too)",
    )
    o.add_argument(
        "--seed", type=int, default=None, metavar="N", help="random seed >= 0 (default: optimizer.seed of the config)"
    )
    o.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    o.add_argument(
        "--unblind",
        action="store_true",
        help="after optimising, show the data (role: data samples) of the signal regions too and report the "
        "observed numbers; the optimisation itself never sees data (Asimov)",
    )
    add_execution_options(o)


def run(args: argparse.Namespace) -> int:
    from diffhep.optimize.settings import OptimizerSettings  # deferred: JAX loads when the command runs
    from diffhep.workflow.job import run_job  # deferred: JAX loads when the command runs

    config = load(args.config)
    # The command line's values and the output folder are checked before any event is read.
    settings = OptimizerSettings.from_config(config.data.get("optimizer")).override(
        steps=args.steps, learning_rate=args.learning_rate, seed=args.seed
    )
    output = check_output(Path(args.output) if args.output else default_output(config, "optimize"))
    execution = execution_settings(config, args)
    analysis = executed_analysis(config, execution)
    check_files(config)
    if args.resume:
        _check_resume(output, analysis, settings, config.config_hash, quiet=args.quiet)
    args.on_interrupt = (
        f"checkpoints are in {output / 'checkpoints'}; continue with: "
        f"diffhep optimize {args.config} --output {output} --resume"
    )
    try:
        results = run_job(
            analysis,
            settings,
            output,
            config_hash=config.config_hash,
            resume=args.resume,
            progress=not args.quiet,
            unblind=args.unblind,
        )
    finally:
        if hasattr(analysis, "close"):
            analysis.close()
    print(summary(results, analysis, settings))
    print(files_listing(output, results.get("files", {})))
    return 0


def _check_resume(output: Path, analysis: Any, settings: Any, config_hash: str, *, quiet: bool) -> None:
    """Refuse, before any event is read, a resume whose checkpoint was written with other settings or config.

    Names each difference (:func:`diffhep.optimize.run.check_resume`); says so
    when there is nothing to resume.
    """
    from diffhep.optimize.run import check_resume  # deferred: JAX loads when the command runs

    checkpoint = check_resume(output, analysis, settings, config_hash=config_hash)
    previous = output / "results.json"
    if previous.is_file():
        try:
            written = json.loads(previous.read_text(encoding="utf-8")).get("config_hash")
        except (OSError, ValueError, AttributeError):
            written = None
        if written and written != config_hash:
            raise DiffhepError(
                f"--resume: {output} holds the job of another config (hash {written[:12]}, this "
                f"config {config_hash[:12]}); choose another --output or drop --resume"
            )
    if checkpoint is None:
        say(f"note: no checkpoint in {output / 'checkpoints'}; starting from step 0", quiet=quiet)


def _fit_failed(value: float | None) -> str:
    """A significance, or ``fit failed`` where pyhf gave none (``None`` in results.json)."""
    return "fit failed" if value is None else number(value)


def summary(results: dict[str, Any], analysis: Any, settings: Any) -> str:
    """Cuts before/after, soft and hard significance before/after, the scan comparison."""
    units = {p.name: p.unit for p in analysis.parameters}
    bounds = {p.name: f"[{number(p.low)}, {number(p.high)}]" for p in analysis.parameters}
    cuts = [
        (k, number(results["initial"][k]), number(results["final"][k]), bounds[k], units[k] or "-")
        for k in units
        if k in results["final"]
    ]
    z = results["significance"]
    sig = [
        (
            f"soft objective (slopes x{number(z['soft'].get('slope_scale', settings.slope_end))})",
            number(z["soft"]["before"]),
            number(z["soft"]["after"]),
        ),
        ("hard Z0 (step cuts, pyhf likelihood, best of two fits)", number(z["hard_pyhf"]["before"]),
         number(z["hard_pyhf"]["after"])),
    ]  # fmt: skip
    if "hard_poi_uncertainty" in z:  # objective poi_uncertainty: the measured quantity, hard cuts, pyhf
        sig.append(
            ("hard sigma(POI) (step cuts, pyhf: Asimov mu = 1, Hessian)", _fit_failed(z["hard_poi_uncertainty"]["before"]),
             _fit_failed(z["hard_poi_uncertainty"]["after"]))
        )  # fmt: skip
    if "pyhf_hypotest" in z:
        sig.append(
            ("hard Z0 (plain pyhf.infer.hypotest)", _fit_failed(z["pyhf_hypotest"]["before"]),
             _fit_failed(z["pyhf_hypotest"]["after"]))
        )  # fmt: skip
    resumed = "" if results.get("resumed_from") is None else f", resumed from step {results['resumed_from']}"
    lines = [
        f"{results['analysis']}: {results['steps']} steps of {settings.name}{resumed}; {results['stop_reason']}",
        table(("cut", "before", "after", "bounds", "unit"), cuts),
        table(("significance", "before", "after"), sig),
        "  hard Z0: pyhf's likelihood of the workspace at the better of pyhf's background-only fit and one "
        "started from diffhep's; plain pyhf.infer.hypotest: pyhf alone (equal where its fit converges)",
        *fit_lines(z.get("fits") or {}),
        *(line for stage, part in (results.get("observed") or {}).items() for line in observed_lines(part, stage)),
    ]
    stats = results.get("mc_statistics") or {}
    lines += mc_statistics_lines(stats.get("before"), stats.get("after"))
    scan = results.get("scan") or {}
    if scan:
        best = ", ".join(f"{k} = {number(v)}" for k, v in (scan.get("best") or {}).items())
        kind = "grid scan" if scan.get("kind") == "grid" else "random search"
        n = len(scan.get("points") or [])
        figure = scan.get("figure", "Z0")
        gain, z_opt = scan.get("gain"), scan.get("optimum_value")
        if gain is None or z_opt is None:
            verdict = "no comparison (a fit failed)"
        elif gain <= 0:
            verdict = "the optimiser's cuts are at least as good as every point scanned"
        elif gain <= 0.02 * (max(abs(z_opt), 1.0) if figure == "Z0" else abs(z_opt)):
            verdict = "the optimiser's cuts are within 2% of the best point scanned"
        else:
            verdict = "a scanned point is better: try more --steps or another learning rate"
        lines.append(
            f"{kind} around the optimum ({n} points): best hard {figure} {number(scan.get('best_value'))} "
            f"at {best}; optimiser {number(z_opt)} (brute force gains {number(gain)}): {verdict}"
        )
    return "\n".join(lines)


def _where(b: dict[str, Any]) -> str:
    return f"{b['region']} bin {b['bin']} [{number(b['low'])}, {number(b['high'])})"


def mc_statistics_lines(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """Lines on the background's MC statistics (:func:`diffhep.workflow.job.mc_statistics`): the emptiest
    bin before and after, and every bin with fewer effective MC events than the threshold after."""
    lines = []
    parts = [(label, part) for label, part in (("before", before), ("after", after)) if part]
    if not parts:
        return lines
    emptiest = [
        f"{label} {number(part['emptiest']['mc_events'], 3)} ({_where(part['emptiest'])})"
        for label, part in parts
        if part.get("emptiest") is not None
    ]
    if emptiest:
        lines.append("background MC events in the emptiest bin of the selection: " + "; ".join(emptiest))
    label, last = parts[-1]
    few = last.get("few") or []
    threshold = number(last.get("threshold"))
    if few:
        rows = [(_where(b), number(b["mc_events"], 3), number(b["background"]), number(b["signal"])) for b in few]
        lines.append(f"{len(few)} bins with fewer than {threshold} background MC events ({label}):")
        lines.append(table(("bin", "MC events", "background", "signal"), rows))
    else:
        lines.append(f"every bin has at least {threshold} background MC events ({label})")
    return lines
