"""The ``execution:`` section of a config: in memory, streamed chunk by chunk, or on Dask.

:class:`ExecutionSettings` is the validated section (defaults filled in);
:meth:`ExecutionSettings.override` applies the command line (``--execution``,
``--chunk-size``, ``--scheduler``), each error being one line that names the
config field or the option.

Example:
    >>> s = ExecutionSettings.from_config({"mode": "streaming", "chunk_size": 1000})
    >>> (s.mode, s.chunk_size, s.workers)
    ('streaming', 1000, 2)
    >>> s.override(scheduler="tcp://10.0.0.1:8786").mode  # a scheduler means Dask
    'dask'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from diffhep.config.checks import check_scheduler
from diffhep.errors import ConfigError
from diffhep.execute.chunks import AGC_CHUNK_SIZE

__all__ = ["MODES", "ExecutionSettings", "check_scheduler"]

#: Execution modes: one in-memory pass per step, one chunk at a time, or chunks held by Dask workers;
#: ``auto`` (the default) is ``memory`` when the job's estimated footprint fits, else ``streaming``.
MODES = ("auto", "memory", "streaming", "dask")

#: Estimated bytes of an in-memory job per uncompressed byte of the branches it reads: float64 copies,
#: static structure (combinations: ~3x the jets for trijets), the step's temporaries (~4.4x its inputs,
#: measured with XLA's buffer assignment on the AGC step) and the hard path's Awkward arrays. Rough and
#: on the safe side; ``auto`` streams when the estimate exceeds half the available memory.
FOOTPRINT_PER_INPUT_BYTE = 30


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), or ``None`` if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def choose_mode(input_bytes: int, available: int | None) -> tuple[str, str]:
    """``auto``: ``("memory" | "streaming", why)`` from the inputs' uncompressed bytes and the available memory.

    Example:
        >>> choose_mode(10**8, 16 * 10**9)[0], choose_mode(10**9, 16 * 10**9)[0]
        ('memory', 'streaming')
    """
    estimate = FOOTPRINT_PER_INPUT_BYTE * input_bytes
    if available is None:
        return "memory", f"auto: in memory (estimated {estimate / 1e9:.1f} GB; available memory unknown)"
    mode = "memory" if estimate <= 0.5 * available else "streaming"
    where = "in memory" if mode == "memory" else "streaming"
    return mode, f"auto: {where} (estimated {estimate / 1e9:.1f} GB, {available / 1e9:.1f} GB available)"


@dataclass(frozen=True)
class ExecutionSettings:
    """How a job runs over the events.

    Attributes:
        mode: ``"memory"`` (all events loaded once), ``"streaming"`` (one chunk
            at a time in this process) or ``"dask"`` (chunks prepared once and
            kept on Dask workers).
        chunk_size: events per chunk (the AGC uses 200,000).
        scheduler: Dask scheduler address, or ``None`` for a LocalCluster.
        workers: LocalCluster workers.
        processes: LocalCluster workers as processes (``True``) or threads of this process.
        cache: folder keeping prepared chunks on disk between jobs (absolute), or ``None``.
        reuse: streaming keeps each prepared chunk on disk after the first pass
            (in ``cache``, else in a temporary folder removed when the job ends),
            so later passes read no ROOT file; ``False`` (config ``cache: false``)
            reads and prepares every chunk on every pass and writes nothing.
        note: why ``auto`` chose the mode (set by :meth:`resolve`), or empty.
    """

    mode: str = "auto"
    chunk_size: int = AGC_CHUNK_SIZE
    scheduler: str | None = None
    workers: int = 2
    processes: bool = True
    cache: Path | None = None
    reuse: bool = True
    note: str = ""

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None, *, base: Path | None = None) -> ExecutionSettings:
        """The settings of a config's ``execution:`` mapping (absent: in memory); ``cache`` relative to ``base``."""
        section = dict(section or {})
        known = {"mode", "chunk_size", "scheduler", "workers", "processes", "cache"}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"execution.{unknown[0]}: unknown key; expected one of: {', '.join(sorted(known))}")
        cache = section.get("cache")
        reuse = cache is not False
        if cache is False:
            cache = None
        elif cache is True or (cache is not None and (not isinstance(cache, str) or not cache.strip())):
            raise ConfigError(
                f"execution.cache {cache!r}: expected a folder (relative to the config) or false (read every pass)"
            )
        if cache is not None:
            cache = Path(str(cache)).expanduser()
            cache = cache if cache.is_absolute() or base is None else Path(base) / cache
        settings = cls(
            mode=section.get("mode", "auto"),
            chunk_size=section.get("chunk_size", AGC_CHUNK_SIZE),
            scheduler=section.get("scheduler"),
            workers=section.get("workers", 2),
            processes=section.get("processes", True),
            cache=cache,
            reuse=reuse,
        )
        settings.check("execution.")
        if settings.scheduler is not None and settings.mode != "dask":
            raise ConfigError(
                f"execution.scheduler is set but execution.mode is {settings.mode!r}; "
                "set mode: dask to use the scheduler, or remove scheduler"
            )
        return settings

    def check(self, prefix: str = "") -> None:
        """One-line errors for values out of range (``prefix`` names where they come from)."""
        if self.mode not in MODES:
            raise ConfigError(f"{prefix}mode {self.mode!r}: expected one of {', '.join(MODES)}")
        for name in ("chunk_size", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{prefix}{name} {value!r}: expected a whole number >= 1")
        if not isinstance(self.processes, bool):
            raise ConfigError(f"{prefix}processes {self.processes!r}: expected true or false")
        if self.scheduler is not None:
            check_scheduler(self.scheduler, f"{prefix}scheduler")

    def override(
        self, *, mode: str | None = None, chunk_size: int | None = None, scheduler: str | None = None,
        workers: int | None = None,
    ) -> ExecutionSettings:  # fmt: skip
        """These settings with command-line values (``None``: keep); ``--scheduler`` alone means Dask."""
        if mode is not None and mode not in MODES:
            raise ConfigError(f"--execution {mode!r}: expected one of {', '.join(MODES)}")
        if chunk_size is not None and (isinstance(chunk_size, bool) or chunk_size < 1):
            raise ConfigError(f"--chunk-size {chunk_size!r}: expected a whole number of events >= 1 (AGC: 200000)")
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers {workers!r}: expected a whole number >= 1")
        if scheduler is not None:
            scheduler = check_scheduler(scheduler, "--scheduler")
            if mode not in (None, "dask"):
                raise ConfigError(f"--scheduler needs --execution dask, got --execution {mode}")
            mode = "dask"
        new = replace(
            self,
            mode=mode or self.mode,
            chunk_size=chunk_size or self.chunk_size,
            scheduler=scheduler
            if scheduler is not None
            else (self.scheduler if (mode or self.mode) == "dask" else None),
            workers=workers or self.workers,
        )
        new.check()
        return new

    def resolve(self, input_bytes: int, available: int | None = None) -> ExecutionSettings:
        """``auto`` made ``memory`` or ``streaming`` (:func:`choose_mode`); other modes are returned as they are."""
        if self.mode != "auto":
            return self
        mode, note = choose_mode(input_bytes, available_memory() if available is None else available)
        return replace(self, mode=mode, note=note)

    def describe(self) -> str:
        """One line: ``streaming, chunks of 200000 events`` or ``dask on tcp://..., chunks of ...``."""
        if self.note:
            return self.note + ("" if self.mode == "memory" else f", chunks of {self.chunk_size} events")
        if self.mode in ("memory", "auto"):
            return "in memory" if self.mode == "memory" else "auto"
        where = (
            f"dask on {self.scheduler}"
            if self.scheduler
            else (f"dask on a local cluster of {self.workers} workers" if self.mode == "dask" else "streaming")
        )
        cache = (
            f", prepared chunks cached in {self.cache}"
            if self.cache
            else ", prepared chunks kept in a temporary folder"
            if self.reuse and self.mode == "streaming"
            else ", chunks read on every pass"
            if self.mode == "streaming"
            else ""
        )
        return f"{where}, chunks of {self.chunk_size} events{cache}"
