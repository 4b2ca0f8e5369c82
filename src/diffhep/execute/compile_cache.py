"""JAX's persistent compilation cache, as the command line uses it (``run``, ``optimize``, ``bench``).

XLA compiles an analysis's programs (its value-and-gradient step, the fits, the
cutflow) again in every new process: seconds to tens of seconds on a CPU. With
the cache on, the second ``diffhep optimize`` of the same analysis reads them
from disk. A cached executable is the program XLA would compile; only programs
that took at least :data:`MIN_COMPILE_S` to compile are stored.

Where (first that applies):

* ``--no-compile-cache``: off;
* ``--compile-cache DIR``;
* the environment variable ``DIFFHEP_COMPILE_CACHE`` (a folder, or ``off``);
* ``$XDG_CACHE_HOME/diffhep/jax`` (``~/.cache/diffhep/jax`` without it).

An explicit folder that cannot be created is a one-line error; the default
folder failing only turns the cache off, with a note.

Dask clusters of threads (``execution: {processes: false}``) turn it off
(:func:`suspend`): with jaxlib 0.10.2, reading a cached executable in a
worker thread aborted the process.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from diffhep.errors import InputError

__all__ = ["ENV", "MIN_COMPILE_S", "CacheUse", "default_folder", "enable", "report", "resolve", "suspend"]

#: Environment variable: the cache folder, or ``off``.
ENV = "DIFFHEP_COMPILE_CACHE"
#: Programs compiled faster than this (s) are not stored: tiny eager operations would only fill the folder.
MIN_COMPILE_S = 0.5
_OFF = {"off", "0", "false", "no", "none", ""}


@dataclass
class CacheUse:
    """What the cache did in this process: ``hits`` programs read, ``misses`` compiled (and maybe stored)."""

    folder: Path | None
    hits: int = 0
    misses: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line for the command's log, e.g. ``compile cache ~/.cache/diffhep/jax: 7 programs read, 0 compiled``."""
        if self.folder is None:
            return "compile cache: off"
        return f"compile cache {self.folder}: {self.hits} programs read, {self.misses} compiled"


_USE: CacheUse | None = None


def default_folder() -> Path:
    """``$XDG_CACHE_HOME/diffhep/jax``, or ``~/.cache/diffhep/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "diffhep" / "jax"


def resolve(given: str | None = None, off: bool = False) -> tuple[Path | None, bool]:
    """The cache folder asked for (``--compile-cache``, ``--no-compile-cache``, then the environment),
    and whether it was asked for explicitly (``None``: off).

    Raises:
        InputError: both ``--compile-cache`` and ``--no-compile-cache``.
    """
    if given is not None and off:
        raise InputError("--compile-cache and --no-compile-cache: choose one")
    if off:
        return None, True
    if given is not None:
        return Path(os.path.expanduser(given)), True
    env = os.environ.get(ENV)
    if env is not None:
        return (None, True) if env.strip().lower() in _OFF else (Path(os.path.expanduser(env)), True)
    return default_folder(), False


def enable(folder: Path | None, *, explicit: bool = True) -> CacheUse:
    """Turn JAX's persistent compilation cache on in ``folder`` (``None``: off); count reads and compiles.

    Raises:
        InputError: an explicitly given folder cannot be created or written.
    """
    global _USE
    import jax
    from jax import monitoring

    use = CacheUse(folder)
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK):
                raise PermissionError(f"{folder} is not writable")
        except OSError as err:
            reason = " ".join(str(err).split())
            if explicit:
                raise InputError(
                    f"compile cache {folder}: cannot use it ({reason}); give another --compile-cache "
                    f"or --no-compile-cache",
                    path=str(folder),
                ) from None
            use = CacheUse(None, notes=[f"note: compile cache off: {reason}"])
            folder = None
    if folder is None:
        jax.config.update("jax_enable_compilation_cache", False)
    else:
        jax.config.update("jax_enable_compilation_cache", True)
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
        _reset()
    if _USE is None:  # one listener per process, counting for whichever use is current
        monitoring.register_event_listener(_count)
    _USE = use
    return use


def suspend() -> None:
    """Turn the cache off for the rest of this process (Dask worker threads compile here)."""
    import jax

    if jax.config.jax_enable_compilation_cache:
        jax.config.update("jax_enable_compilation_cache", False)
        _reset()
        if _USE is not None and _USE.folder is not None:
            _USE.notes.append("note: compile cache off while Dask worker threads compile in this process")


def _reset() -> None:
    from jax._src import compilation_cache  # no public reset: the cache object is made once per process

    compilation_cache.reset_cache()


def _count(event: str, **_: object) -> None:
    if _USE is None:
        return
    if event == "/jax/compilation_cache/cache_hits":
        _USE.hits += 1
    elif event == "/jax/compilation_cache/cache_misses":
        _USE.misses += 1


def report(*, quiet: bool = False) -> None:
    """Print the notes and the cache's one line to stderr (nothing when ``quiet`` or when it is off)."""
    if _USE is None or quiet or (_USE.folder is None and not _USE.notes):
        return
    for note in _USE.notes:
        print(note, file=sys.stderr)
    print(_USE.line(), file=sys.stderr)
