"""Helpers shared by the commands: the one-line-error parser, config loading, tables."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import textwrap
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from diffhep.config import Config, load_config
from diffhep.errors import ConfigError, DiffhepError, closest

if TYPE_CHECKING:  # pragma: no cover
    from diffhep.engine.configured import ConfiguredAnalysis

__all__ = [
    "Parser",
    "add_command",
    "load",
    "build_analysis",
    "observed_lines",
    "default_output",
    "parse_sets",
    "table",
    "number",
    "say",
    "files_listing",
    "check_output",
    "add_execution_options",
    "execution_settings",
    "executed_analysis",
]


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line ``error: ...`` (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {' '.join(message.split())} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def add_command(
    sub: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    description: str,
    examples: str,
    func: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """A subcommand with ``description``, an ``examples:`` epilog and ``func`` as its action."""
    parser = sub.add_parser(
        name,
        help=help,
        description=textwrap.fill(" ".join(description.split()), 88),
        epilog="examples:\n" + examples.strip("\n") + "\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func)
    return parser


def load(path: str | Path, *, plugins: bool = True) -> Config:
    """The validated config at ``path`` (schema and meaning checks); a ConfigError names FILE:LINE."""
    return load_config(path, plugins=plugins)


def build_analysis(config: Config) -> ConfiguredAnalysis:
    """The :class:`~diffhep.engine.configured.ConfiguredAnalysis` of a loaded config.

    The one :func:`execution_settings` built to estimate the input size, if any
    (taken, so that it is used once), else a new one.
    """
    built = _BUILT.pop(config, None)
    if built is not None:
        return built
    from diffhep.engine.configured import ConfiguredAnalysis  # deferred: JAX loads when the command runs

    return ConfiguredAnalysis.from_config(config)


#: config -> the analysis :func:`execution_settings` built for ``auto``, until :func:`build_analysis` takes it.
_BUILT: weakref.WeakKeyDictionary[Any, ConfiguredAnalysis] = weakref.WeakKeyDictionary()


def add_execution_options(parser: argparse.ArgumentParser) -> None:
    """``--execution``, ``--chunk-size``, ``--scheduler``, ``--workers``: override the config's ``execution:``."""
    g = parser.add_argument_group("execution (override the config's execution: section)")
    g.add_argument(
        "--execution",
        choices=("auto", "memory", "streaming", "dask"),
        default=None,
        help="all events in memory, one chunk at a time, or chunks kept on Dask workers; auto "
        "(the default): in memory unless the estimated footprint exceeds half the available memory",
    )
    g.add_argument(
        "--chunk-size", type=int, default=None, metavar="N", help="events per chunk (default 200000, as the AGC)"
    )
    g.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="Dask scheduler address such as tcp://10.0.0.1:8786 (implies --execution dask); default: a local cluster",
    )
    g.add_argument("--workers", type=int, default=None, metavar="N", help="local Dask cluster workers (default 2)")
    add_compile_cache_options(parser)


def add_compile_cache_options(parser: argparse.ArgumentParser) -> None:
    """``--compile-cache DIR`` and ``--no-compile-cache`` (:mod:`diffhep.execute.compile_cache`)."""
    g = parser.add_argument_group("compilation cache")
    g.add_argument(
        "--compile-cache",
        default=None,
        metavar="DIR",
        help="keep XLA's compiled programs in DIR for the next run (default: $DIFFHEP_COMPILE_CACHE, "
        "else $XDG_CACHE_HOME/diffhep/jax or ~/.cache/diffhep/jax)",
    )
    g.add_argument("--no-compile-cache", action="store_true", help="compile everything anew, store nothing")


def execution_settings(config: Config, args: argparse.Namespace) -> Any:
    """The config's :class:`~diffhep.execute.ExecutionSettings` with the command line's overrides.

    For ``auto`` it builds the analysis to estimate the input size and keeps it
    for :func:`executed_analysis` (the analysis is built once per command).
    """
    from diffhep.execute.settings import ExecutionSettings  # deferred: JAX loads when the command runs

    settings = ExecutionSettings.from_config(config.sections.execution, base=config.base_dir)
    settings = settings.override(
        mode=getattr(args, "execution", None),
        chunk_size=getattr(args, "chunk_size", None),
        scheduler=getattr(args, "scheduler", None),
        workers=getattr(args, "workers", None),
    )
    if settings.mode != "auto":
        return settings
    try:  # memory, unless the estimated footprint exceeds half the available memory
        analysis = build_analysis(config)
        _BUILT[config] = analysis  # built once: executed_analysis() takes this one
        size = analysis.input_bytes()
    except (DiffhepError, OSError, KeyError):  # a missing file or branch: reported by the file checks that follow
        size = 0
    return settings.resolve(size)


def executed_analysis(config: Config, settings: Any) -> Any:
    """The config's analysis: in memory, or a :class:`~diffhep.engine.chunked.ChunkedAnalysis` (close it)."""
    analysis = build_analysis(config)
    if settings.mode == "memory":
        return analysis
    sections = config.sections
    if sections.networks or sections.training.split != "none":  # the halves and the inputs are built in memory
        what = "network observables" if sections.networks else f"training.split: {sections.training.split}"
        where = ("execution", "mode") if (sections.execution or {}).get("mode") else ()
        raise sections.error(where, f"{what} run in memory only; use execution.mode: memory (got {settings.mode})")
    from diffhep.engine.chunked import ChunkedAnalysis  # deferred: JAX loads when the command runs

    return ChunkedAnalysis(analysis, config, settings=settings)


def default_output(config: Config, command: str) -> Path:
    """``work/<analysis name>/<command>`` under the current folder."""
    return Path("work") / config.sections.name / command


def parse_sets(items: Sequence[str] | None, parameters: Sequence[Any]) -> dict[str, float]:
    """``["name=value", ...]`` -> cut values: every parameter's init, overridden; checked against bounds."""

    known = {p.name: p for p in parameters}
    values = {p.name: float(p.init) for p in parameters}
    for item in items or ():
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"--set {item!r}: expected name=value, for example --set {next(iter(known), 'cut')}=30")
        if name not in known:
            valid = ", ".join(known) or "none"
            raise ConfigError(f"--set {item!r}: unknown parameter {name!r}{closest(name, known)}; valid: {valid}")
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"--set {item!r}: {text.strip()!r} is not a number") from None
        p = known[name]
        if not (math.isfinite(value) and p.low < value < p.high):
            unit = f" {p.unit}" if p.unit else ""
            raise ConfigError(
                f"--set {item!r}: {value:g}{unit} is outside the bounds of {name!r}, ({p.low:g}, {p.high:g})"
            )
        values[name] = value
    return values


def number(x: Any, digits: int = 4) -> str:
    """A number for a table: ``g`` format, ``nan`` and ``-`` for missing."""
    if x is None:
        return "-"
    try:
        value = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isfinite(value) and 1e4 <= abs(value) < 1e15:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


_NUMBER = re.compile(r"^(-|nan|inf|[-+]?[\d,]*\.?\d+(e[-+]?\d+)?)( / .*)?$")


def fit_lines(fits: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """Lines saying which hard-cut numbers did not come from a converged fit, per stage (``before``, ...).

    ``fits`` maps a stage to the ``fits`` record of :class:`~diffhep.optimize.scan.Significances`;
    nothing is printed where every fit converged and pyhf's own background-only fit was the best.
    """
    lines = []
    for stage, record in fits.items():
        if not record:
            continue
        prefix = f"  {stage}: " if stage else "  "
        hard, plain = record.get("hard_pyhf") or {}, record.get("pyhf_hypotest") or {}
        if not hard.get("converged", True):
            failed = "; ".join(f"{k}: {v}" for k, v in (hard.get("starts") or {}).items())
            lines.append(f"{prefix}hard Z0: no background-only fit converged ({failed})")
        elif hard.get("background_fit") not in (None, "pyhf's fit from pyhf's start"):
            lines.append(
                f"{prefix}hard Z0 at {hard['background_fit']} (pyhf's fit from its own start ended higher or failed)"
            )
        if not plain.get("converged", True):
            lines.append(f"{prefix}plain pyhf.infer.hypotest: fit failed ({plain.get('error')})")
        elif plain.get("note"):
            lines.append(f"{prefix}plain pyhf.infer.hypotest: {plain['note']}")
    return lines


def observed_lines(observed: Mapping[str, Any] | None, stage: str = "") -> list[str]:
    """Lines on the observations (the ``observed`` entry of the results, :mod:`diffhep.workflow.observed`):
    blinded, or the observed Z0, CLs and best-fit POI beside the expected ones; nothing for Asimov."""
    if not observed or observed.get("observations") == "asimov":
        return []
    kind, at = observed["observations"], f" ({stage})" if stage else ""
    if observed.get("blinded_regions"):
        shown = [r for r, what in observed["workspace_observations"].items() if what != "asimov"]
        return [
            f"observed{at}: blinded: the {kind} of the signal regions {', '.join(observed['blinded_regions'])} are "
            f"hidden (Asimov in workspace.json there); rerun with --unblind to see them"
            + (f"; control regions with {kind}: {', '.join(shown)}" if shown else "")
        ]
    band = observed.get("cls_expected_band") or []
    sigma = f" [-1 sigma {number(band[3])}, +1 sigma {number(band[1])}]" if len(band) == 5 else ""
    lines = [
        f"observed{at} ({kind}): Z0 = {number(observed['z0'])} (p0 = {number(observed['p0'])}; expected Z0 "
        f"{number(observed['z0_expected'])}), CLs at {observed['poi']} = {number(observed['mu_test'])}: "
        f"{number(observed['cls'])} (expected {number(observed['cls_expected'])}{sigma}), best-fit "
        f"{observed['poi']} = {number(observed['mu_hat'])} +- {number(observed['mu_uncertainty'])}"
    ]
    if not observed.get("converged", True):
        lines.append(f"  observed{at}: a fit did not converge; its numbers are NaN")
    return lines


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> str:
    """Columns aligned: numbers to the right, text to the left."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    right = [i > 0 and bool(rows) and all(_NUMBER.match(r[i]) for r in cells[1:]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        text = "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right))
        return indent + text.rstrip()

    return "\n".join([line(cells[0]), indent + "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])


def say(message: str, *, quiet: bool = False) -> None:
    """A progress line on stderr (stdout stays for results)."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def files_listing(output: Path, files: Mapping[str, str]) -> str:
    """``outputs in DIR/:`` and one line per file."""
    width = max((len(f) for f in files.values()), default=0)
    return "\n".join([f"outputs in {output}/:"] + [f"  {f.ljust(width)}  {label}" for label, f in files.items()])


def check_output(output: Path) -> Path:
    """``output`` as a folder this process can write into or create; else a one-line error naming it.

    Nothing is created: called before any event is read, so that an unwritable
    ``--output`` (a file, a path under a file, a read-only folder) stops the
    command at once rather than after the computation.
    """
    if output.exists() and not output.is_dir():
        raise DiffhepError(f"--output {output}: exists and is not a folder")
    existing = output  # the folder itself, or the nearest part of its path that exists
    while not (existing.exists() or existing.is_symlink()) and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise DiffhepError(f"--output {output}: cannot create the folder, {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "cannot write into it" if existing == output else f"cannot create it in {existing}"
        raise DiffhepError(f"--output {output}: {what} (permission denied)")
    return output
