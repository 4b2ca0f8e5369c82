"""``diffhep demo``: the built-in dimuon cut optimisation end to end (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from diffhep.cli.common import add_command
from diffhep.errors import DiffhepError

EXAMPLES = """
  diffhep demo                                        # generate, optimise, evaluate with pyhf
  diffhep demo --config configs/demo.yaml             # the same, settings from YAML
  diffhep demo --steps 50 --output results/quick
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = add_command(
        sub, "demo", help="run the default dimuon cut optimisation end to end",
        description="Generate the dimuon samples (reused when present), optimise three cuts, "
        "evaluate with hard cuts and pyhf, and write results.json, workspace.json and a plot.",
        examples=EXAMPLES, func=run,
    )
    d.add_argument("--workdir", default="work/data", help="folder for the generated data (reused)")
    d.add_argument("--output", default="work/results", help="folder for results.json, workspace.json, plots")
    d.add_argument("--config", help="YAML job settings (see configs/demo.yaml); options below override it")
    d.add_argument("--steps", type=int, default=None, help="optimiser steps (default 150)")
    d.add_argument("--learning-rate", type=float, default=None, help="Adam learning rate (default 0.05)")
    d.add_argument("--seed", type=int, default=None, help="generator seed (default 1)")
    d.add_argument("--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    from diffhep.analysis.job import JobSettings, run_job, summary
    from diffhep.analysis.settings import load_settings

    settings = load_settings(args.config) if args.config else JobSettings()
    overrides = {k: getattr(args, k) for k in ("steps", "seed", "learning_rate") if getattr(args, k) is not None}
    settings = replace(settings, **overrides)
    if settings.steps < 1:
        raise DiffhepError(f"--steps must be >= 1, got {settings.steps}")
    results = run_job(args.workdir, args.output, settings, quiet=args.quiet)
    print(summary(results))
    print(f"\noutputs written to {args.output}/ (results.json, workspace.json, mass_before_after.png)")
    return 0
