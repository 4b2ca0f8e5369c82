"""Atomic output writing: a file appears whole or not at all.

Each writer writes to a temporary file in the destination folder, flushes it to
disk and then ``os.replace``-s it into place, so an interrupted job never leaves
a truncated ``results.json``, ROOT file or plot behind, and a file written
before stays intact until its replacement is complete.

A temporary file is named ``.<name>.<8 random characters><suffix of name>``
(``.results.json.k2x_9a0q.json``). A process killed with SIGKILL cannot remove
its temporary file: :func:`remove_temporaries` removes such leftovers (only names
of this exact form) when the next run into the folder starts.

A new run into a folder that holds a previous run's outputs first removes them
(:func:`remove_outputs`, ``results.json`` first), so that a run interrupted before
it writes its own ``results.json`` never leaves a folder that mixes two runs.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from diffhep.errors import DiffhepError

__all__ = [
    "atomic_write",
    "write_bytes",
    "write_text",
    "write_json",
    "NonFiniteJSONError",
    "write_root",
    "save_figure",
    "is_temporary",
    "remove_temporaries",
    "remove_outputs",
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


class NonFiniteJSONError(DiffhepError, ValueError):
    """A number to write as JSON is NaN or infinite (JSON has no such numbers); ``path``: the file."""

    def __init__(self, message: str = "", *, path: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        if path is not None:
            self.path = str(path)
        if key is not None:
            self.key = str(key)


def _nonfinite(obj: Any, where: str = "") -> tuple[str, float] | None:
    """``(where, value)`` of the first float of ``obj`` that is not finite (``where``: ``a.b[2]``), else ``None``."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (where or "the value", obj)
    if isinstance(obj, Mapping):
        items: Iterable[tuple[str, Any]] = ((f"{where}.{k}" if where else str(k), v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    for key, value in items:
        found = _nonfinite(value, key)
        if found is not None:
            return found
    return None


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically (serialised before the file is created).

    Only valid JSON is written: a NaN or infinite number raises a one-line
    :class:`NonFiniteJSONError` naming the file and where the number is, and
    nothing is written (convert such numbers, e.g. to ``None``, before).
    """
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False)
    except ValueError as err:
        found = _nonfinite(obj)
        if found is None:
            raise
        where, value = found
        raise NonFiniteJSONError(
            f"{path}: not written: {where} is {float(value)!r}; JSON has no NaN or infinite numbers", path=str(path)
        ) from err
    return write_text(path, text + "\n")


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


def _bare(name: Any) -> bool:
    """``name`` is a plain file name (no folder part, not ``.`` or ``..``)."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and os.sep not in name


def _unlink(path: Path, removed: list[Path]) -> None:
    """Remove a file or a link (never a folder); absent: nothing."""
    try:
        if path.is_symlink() or path.is_file():
            path.unlink()
            removed.append(path)
    except FileNotFoundError:  # removed meanwhile
        pass


def _listed(results: Path) -> list[str]:
    """The output names a ``results.json`` lists under ``"files"`` (unreadable or another layout: none)."""
    try:
        files = json.loads(results.read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return []
    return [str(name) for name in files.values()] if isinstance(files, Mapping) else []


def remove_outputs(folder: str | Path, patterns: Sequence[str], *, results: str = "results.json") -> list[Path]:
    """Remove a previous run's outputs from ``folder``, for a new run that writes there.

    ``results`` goes first: its presence means a run's outputs are complete, so a
    new run interrupted at any point after this never leaves a folder whose
    ``results.json`` belongs to another run. Then the files that ``results`` listed
    (its ``"files"`` values: plain names in ``folder``; a listed ``name/`` is a
    folder of the run, whose files are removed), then every file matching one of
    ``patterns`` (glob patterns relative to ``folder``, in their order:
    ``"workspace.json"``, ``"region_sr.png"``, ``"checkpoints/step_*.npz"``), and
    the temporary files of interrupted writes (:func:`remove_temporaries`) of
    ``folder`` and the folders named. Folders themselves are kept.

    Returns:
        The files removed (an absent folder: none).
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    listed = _listed(folder / results) if _bare(results) else []
    _unlink(folder / results, removed)
    folders = {folder}
    for name in listed:
        if _bare(name):
            _unlink(folder / name, removed)
        elif name.endswith("/") and _bare(name[:-1]) and (folder / name[:-1]).is_dir():
            sub = folder / name[:-1]
            folders.add(sub)
            for entry in sorted(sub.iterdir()):
                _unlink(entry, removed)
    for pattern in patterns:
        for path in sorted(folder.glob(pattern)):
            _unlink(path, removed)
        if (folder / pattern).parent.is_dir():
            folders.add((folder / pattern).parent)
    for where in sorted(folders):
        removed += remove_temporaries(where)
    return removed
