"""Atomic output writing: a file appears whole or not at all.

Each writer writes to a temporary file in the destination folder, flushes it to
disk and then ``os.replace``-s it into place, so an interrupted job never leaves
a truncated ``results.json``, ROOT file or plot behind, and a file written
before stays intact until its replacement is complete.

A temporary file is named ``.<name>.<8 random characters><suffix of name>``
(``.results.json.k2x_9a0q.json``). A process killed with SIGKILL cannot remove
its temporary file: :func:`remove_temporaries` removes such leftovers (only names
of this exact form) when the next run into the folder starts.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write",
    "write_bytes",
    "write_text",
    "write_json",
    "write_root",
    "save_figure",
    "is_temporary",
    "remove_temporaries",
]

#: The random part of a temporary name: :func:`tempfile.mkstemp`'s 8 characters from ``[a-z0-9_]``.
_RANDOM = re.compile(r"[a-z0-9_]{8}")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Mode of new files: what ``open`` would give (``0o666`` less the umask), not mkstemp's ``0o600``.
_FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically.

    The temporary file lies in ``path``'s folder (so the rename never crosses
    file systems), starts with a dot and keeps ``path``'s suffix (for writers
    that choose a format from it). If ``writer`` raises (or the process is
    interrupted), the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)  # see is_temporary
    os.close(fd)
    try:
        writer(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else _FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path``, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path``, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically (serialised before the file is created)."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_root(path: str | Path, objects: Mapping[str, Any]) -> Path:
    """Write a ROOT file with uproot, atomically: ``{"dir/name": object}``.

    Objects are anything ``uproot`` can write (``hist.Hist``, ``(counts, edges)``
    tuples, ...); a ``/`` in a key makes a directory.
    """

    def writer(tmp: Path) -> None:
        import uproot

        with uproot.recreate(tmp) as f:
            for key, obj in objects.items():
                f[key] = obj

    return atomic_write(path, writer)


def save_figure(path: str | Path, fig: Any, **kwargs: Any) -> Path:
    """Save a Matplotlib figure atomically (format from ``path``'s suffix, e.g. PNG)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, **kwargs))


def is_temporary(name: str) -> str | None:
    """The file name an :func:`atomic_write` temporary file named ``name`` was for, else ``None``.

    >>> is_temporary(".results.json.k2x_9a0q.json"), is_temporary(".latest.0abc_xyz"), is_temporary(".bashrc")
    ('results.json', 'latest', None)
    """
    if not name.startswith("."):
        return None
    rest = name[1:]
    for i, char in enumerate(rest):
        if char != "." or i == 0:
            continue
        target, tail = rest[:i], rest[i + 1 :]
        suffix = Path(target).suffix
        if tail.endswith(suffix) and _RANDOM.fullmatch(tail[: len(tail) - len(suffix)]):
            return target
    return None


def remove_temporaries(folder: str | Path, *, names: Iterable[str] | None = None) -> list[Path]:
    """Remove the temporary files that interrupted :func:`atomic_write` calls left in ``folder``.

    Only files directly in ``folder`` whose names follow the temporary-file
    scheme are removed (:func:`is_temporary`), and with ``names`` only those of
    these target names. Call it when a run into ``folder`` starts, not while
    another process may be writing there (it would remove that process's file).

    Returns:
        The files removed (an absent folder: none).
    """
    folder = Path(folder)
    wanted = None if names is None else set(names)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        target = is_temporary(entry.name)
        if target is None or (wanted is not None and target not in wanted) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:  # removed meanwhile
            continue
        removed.append(Path(entry.path))
    return removed
