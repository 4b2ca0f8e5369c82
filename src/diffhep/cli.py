"""The ``diffhep`` command line: thin commands over library functions.

Every command exits non-zero with a one-line ``error: ...`` for problems the
user can fix (a :class:`diffhep.errors.DiffhepError`), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from diffhep.errors import DiffhepError

__all__ = ["main"]

EXAMPLES_GENERATE = """examples:
  diffhep generate --output work/data                 # default sizes, all processes
  diffhep generate --output data --events 100000 --process signal --seed 7
"""

EXAMPLES_DEMO = """examples:
  diffhep demo                                        # generate, optimise, evaluate with pyhf
  diffhep demo --config configs/demo.yaml             # the same, settings from YAML
  diffhep demo --steps 50 --output results/quick
"""


def _generate(args: argparse.Namespace) -> int:
    from diffhep.analysis.job import DEFAULT_EVENTS
    from diffhep.io import PROCESSES, generate_dataset

    processes = args.process or list(DEFAULT_EVENTS)
    for p in processes:
        if p not in PROCESSES:
            raise DiffhepError(f"unknown process {p!r}; choose from {', '.join(PROCESSES)}")
    n = {p: (args.events if args.events is not None else DEFAULT_EVENTS[p]) for p in processes}
    paths = generate_dataset(args.output, n_events=n, seed=args.seed)
    for name, path in paths.items():
        print(f"{name:<8} {n[name]:>10,} events -> {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from dataclasses import replace

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffhep",
        description="Differentiable HEP analyses: ragged events, relaxed cuts, JAX likelihoods.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser(
        "generate", help="write synthetic NanoAOD ROOT files",
        epilog=EXAMPLES_GENERATE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument("--output", default="work/data", help="folder for the ROOT files")
    g.add_argument("--events", type=int, default=None, help="events per process (default: demo sizes)")
    g.add_argument("--process", action="append", help="process to generate (repeatable; default all)")
    g.add_argument("--seed", type=int, default=1)
    g.set_defaults(func=_generate)

    d = sub.add_parser(
        "demo", help="run the default dimuon cut optimisation end to end",
        epilog=EXAMPLES_DEMO, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("--workdir", default="work/data", help="folder for the generated data (reused)")
    d.add_argument("--output", default="work/results", help="folder for results.json, workspace.json, plots")
    d.add_argument("--config", help="YAML job settings (see configs/demo.yaml); options below override it")
    d.add_argument("--steps", type=int, default=None, help="optimiser steps (default 150)")
    d.add_argument("--learning-rate", type=float, default=None, help="Adam learning rate (default 0.05)")
    d.add_argument("--seed", type=int, default=None, help="generator seed (default 1)")
    d.add_argument("--quiet", action="store_true", help="no progress output")
    d.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``diffhep`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DiffhepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; files already written are complete", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
