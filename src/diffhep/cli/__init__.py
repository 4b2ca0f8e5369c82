"""The ``diffhep`` command line: thin commands over library functions, in pipeline order.

* ``diffhep new NAME --from TEMPLATE`` (:mod:`~diffhep.cli.new`): copy a template analysis;
* ``diffhep generate`` (:mod:`~diffhep.cli.generate`): synthetic NanoAOD samples, alone or for a config;
* ``diffhep validate CONFIG`` (:mod:`~diffhep.cli.validate`): the config, and every file, tree and branch it names;
* ``diffhep run CONFIG`` (:mod:`~diffhep.cli.run`): the analysis at given cut values, evaluated with pyhf;
* ``diffhep optimize CONFIG`` (:mod:`~diffhep.cli.optimize`): the checkpointed optimisation job;
* ``diffhep bench agc`` (:mod:`~diffhep.cli.bench`): AGC-style event rates against plain Awkward.

:mod:`diffhep.execute.compile_cache` keeps XLA's compiled programs on disk for the
commands that compile (``run``, ``optimize``, ``bench``): the second run of an
analysis does not compile it again.

:mod:`~diffhep.cli.common` holds what the commands share (the one-line-error
parser, config loading, tables); :mod:`~diffhep.cli.__main__` makes
``python -m diffhep.cli`` the same as ``diffhep``.

Every command has ``--help`` with examples and exits non-zero with one line
``error: ...`` for problems the user can fix (a :class:`diffhep.errors.DiffhepError`,
a usage error, an interrupt), never a traceback; set ``DIFFHEP_DEBUG=1`` to see
the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from diffhep.cli import bench, generate, new, optimize, run, validate
from diffhep.cli.common import Parser
from diffhep.errors import DiffhepError

__all__ = ["main", "build_parser"]

#: Command modules in the order ``diffhep --help`` lists them; each has ``add_parser(sub)``.
COMMANDS = (new, generate, validate, run, optimize, bench)


def build_parser() -> Parser:
    """The ``diffhep`` parser with every subcommand."""
    parser = Parser(
        prog="diffhep",
        description="Differentiable HEP analyses: ragged events, relaxed cuts, JAX likelihoods.",
        epilog="examples:\n  diffhep new myana --from dimuon\n  diffhep generate --config myana/config.yaml\n"
        "  diffhep validate myana/config.yaml\n  diffhep optimize myana/config.yaml --output work/myana\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``diffhep`` console script; returns the exit status."""
    args = None
    try:
        args = build_parser().parse_args(argv)
        if hasattr(args, "no_compile_cache"):  # the commands that compile: run, optimize, bench
            from diffhep.execute import compile_cache  # deferred: JAX loads when a command runs

            folder, explicit = compile_cache.resolve(args.compile_cache, args.no_compile_cache)
            compile_cache.enable(folder, explicit=explicit)
            status = int(args.func(args) or 0)
            compile_cache.report(quiet=getattr(args, "quiet", False))  # after success only: errors stay one line
            return status
        return int(args.func(args) or 0)
    except DiffhepError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # A command may say how to continue (``args.on_interrupt``, set once it knows).
        hint = getattr(args, "on_interrupt", None) or "files already written are complete"
        print(f"error: interrupted; {hint}", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, permission denied, ...: the user's environment, one line
        if os.environ.get("DIFFHEP_DEBUG"):
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug, but still one line (DIFFHEP_DEBUG=1 for the traceback)
        if os.environ.get("DIFFHEP_DEBUG"):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {_one_line(exc)} "
            "(this is a bug in diffhep; rerun with DIFFHEP_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
