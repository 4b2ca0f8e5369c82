"""Read ROOT TTrees and RNTuples into Awkward arrays with NanoAOD-style collections.

Flat branches named ``Prefix_field`` that are jagged with equal counts in every
event become a record collection ``events.Prefix.field``; counters (``nMuon``,
``NMuon``) and non-jagged branches (``MET_pt``, ``genWeight``) stay top-level.
Only the requested branches are read. Files are local paths, glob patterns,
folders (their ``*.root`` files) or URLs: ``http(s)://`` through uproot's HTTP
source (byte-range requests, Python's standard library) and any other scheme
(``root://``, ``s3://``) through uproot's fsspec source (``root://`` needs
``fsspec-xrootd``: ``pip install 'diffhep[xrootd]'``). A URL that cannot be read
is a one-line :class:`RemoteFileError` naming it. Every problem with the input is raised as
a one-line :class:`~diffhep.errors.InputError` subclass whose ``path`` is the
file and ``key`` the tree or branch concerned; a NaN or an infinity in a
floating-point branch read is one too (:class:`NonFiniteError`, naming the entry
within its file), so that one bad number never spreads through a whole analysis.

Example:
    >>> import tempfile
    >>> from diffhep.io.generate import generate_sample
    >>> path = generate_sample(tempfile.mkdtemp() + "/dy.root", "dy", 100, seed=1)
    >>> events = read_events(path, branches=["nMuon", "Muon_pt", "Muon_eta", "MET_pt"])
    >>> events.fields
    ['nMuon', 'Muon', 'MET_pt']
    >>> events.Muon.fields
    ['pt', 'eta']
"""

from __future__ import annotations

import contextlib
import functools
import glob as _glob
import http.client
import operator
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from diffhep.errors import InputError, closest

__all__ = [
    "MissingFileError",
    "NotRootFileError",
    "MissingTreeError",
    "MissingBranchError",
    "NoFilesMatchedError",
    "NonFiniteError",
    "CorruptFileError",
    "RemoteFileError",
    "is_url",
    "check_limit",
    "errors_within",
    "expand_files",
    "open_file",
    "branch_names",
    "num_entries",
    "read_events",
    "iterate_events",
    "zip_collections",
]

FileArg = str | Path | Sequence[str | Path]


class MissingFileError(InputError):
    """A named file does not exist."""


class NotRootFileError(InputError):
    """A file exists but uproot cannot open it as ROOT."""


class MissingTreeError(InputError):
    """The file has no TTree or RNTuple of the requested name."""


class MissingBranchError(InputError):
    """A requested branch (or RNTuple field) is not in the tree."""


class NoFilesMatchedError(InputError):
    """A glob pattern matched no file, or no file was given."""


class NonFiniteError(InputError):
    """A floating-point branch holds a NaN or an infinity (``key``: the branch)."""


class CorruptFileError(InputError):
    """A branch's data cannot be read back: a truncated file, damaged baskets (``key``: the branch)."""


class RemoteFileError(InputError):
    """A URL cannot be read: not found on the server, connection refused or cut, a missing fsspec backend."""


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def is_url(name: str | Path) -> bool:
    """Whether ``name`` is a URL (``scheme://...``) rather than a local path.

    Example:
        >>> is_url("root://eospublic.cern.ch//eos/x.root"), is_url("https://host/x.root"), is_url("data/x.root")
        (True, True, False)
    """
    return isinstance(name, str) and _URL.match(name) is not None


@contextlib.contextmanager
def errors_within(what: str) -> Iterator[None]:
    """Input errors raised inside start with ``what`` (``"sample 'ttbar'"``), keeping their type and attributes.

    Example:
        >>> with errors_within("sample 'dy'"):
        ...     expand_files("https://127.0.0.1:1/dy.root", max_files=0)
        Traceback (most recent call last):
        diffhep.errors.InputError: sample 'dy': max_files must be a positive whole number, got 0
    """
    try:
        yield
    except InputError as err:
        if err.message.startswith(f"{what}:") or f" {what}:" in err.message:  # named already (nested)
            raise
        raise type(err)(f"{what}: {err.message}", path=err.path, key=err.key) from None


def check_limit(value: object, what: str) -> int | None:
    """``value`` as a positive int (``None``: no limit), or a one-line :class:`InputError` naming ``what``.

    Example:
        >>> check_limit(2, "max_files"), check_limit(None, "max_files")
        (2, None)
    """
    if value is None:
        return None
    try:
        limit = 0 if isinstance(value, bool) else operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        limit = 0
    if limit < 1:
        raise InputError(f"{what} must be a positive whole number, got {value!r}")
    return limit


def expand_files(files: FileArg, *, max_files: int | None = None) -> list[str]:
    """Expand paths, glob patterns, folders and URLs into a list of files (sorted per pattern).

    A folder stands for its ``*.root`` files (not those of its subfolders); a URL
    is kept as written (nothing is requested: :func:`open_file` reaches it).

    Args:
        files: a path, pattern, folder or URL, or a list of them.
        max_files: keep only the first ``max_files`` files of the expanded list
            (the AGC's ``n_files_max_per_sample``); ``None`` keeps all.

    Raises:
        NoFilesMatchedError: no file given, a pattern matched nothing, a folder holds no ROOT file.
        MissingFileError: a path names no file.
    """
    limit = check_limit(max_files, "max_files")
    items = [files] if isinstance(files, (str, Path)) else list(files)
    if not items:
        raise NoFilesMatchedError("no input files given")
    out: list[str] = []
    for item in items:
        if is_url(str(item)):
            out.append(str(item))
            continue
        name = os.path.expanduser(str(item))  # "~/data/x.root", as the config's files and plugins
        if _glob.has_magic(name):
            matched = sorted(_glob.glob(name))
            if not matched:
                raise NoFilesMatchedError(f"no files matched the pattern {name!r}")
            out.extend(matched)
        elif Path(name).is_dir():
            matched = sorted(str(p) for p in Path(name).glob("*.root") if p.is_file())
            if not matched:
                raise NoFilesMatchedError(f"no ROOT files (*.root) in the folder {name}", path=name)
            out.extend(matched)
        elif not Path(name).is_file():
            raise MissingFileError(f"file not found: {name}", path=name)
        else:
            out.append(name)
    return out if limit is None else out[:limit]


@functools.cache
def _http_source() -> type:
    """uproot's HTTP source (standard library; multipart ranges, else one request per range)."""
    import uproot.source.http

    class HTTPSource(uproot.source.http.HTTPSource):
        def __init__(self, file_path: str, **options: Any) -> None:
            super().__init__(file_path, **options)
            try:  # HEAD first: uproot's ranged GET of a missing file leaves its socket open (a ResourceWarning)
                self._num_bytes = uproot.source.http.get_num_bytes(file_path, self.parsed_url, self._timeout)
            except BaseException:
                self.__exit__(None, None, None)
                raise

        # uproot 5.7 indexes ranges[0] even when every basket is embedded in the metadata (no range asked)
        def chunks(self, ranges: list[tuple[int, int]], notifications: Any) -> list[Any]:
            return [] if not ranges else super().chunks(ranges, notifications)

    return HTTPSource


def _network_error(err: BaseException) -> bool:
    """Whether ``err`` comes from the network (refused, reset, timed out, an HTTP status) rather than the file."""
    return isinstance(err, (OSError, http.client.HTTPException, TimeoutError)) and not isinstance(
        err, FileNotFoundError
    )


def _remote_error(path: str, err: BaseException) -> RemoteFileError:
    """The one-line error of a URL that cannot be read (``err`` raised by uproot or the network)."""
    if isinstance(err, FileNotFoundError):
        reason = "not found on the server (HTTP 404)" if "404" in str(err) else "not found"
    elif isinstance(err, ImportError):
        reason = _one_line(err)[:200]
        if path.startswith("root://"):
            reason = "reading root:// URLs needs fsspec-xrootd: pip install 'diffhep[xrootd]'"
    elif isinstance(err, ConnectionRefusedError):
        reason = "connection refused (is the server up, and the host and port right?)"
    elif isinstance(err, TimeoutError):
        reason = "the server did not answer in time"
    elif (status := re.search(r"(?:status|response was) (\d{3})", str(err))) is not None:
        reason = f"the server answered HTTP {status[1]}"
    else:
        reason = f"{type(err).__name__}: {_one_line(err)[:160]}"
    return RemoteFileError(f"cannot read {path}: {reason}", path=path)


def open_file(path: str) -> Any:
    """``uproot.open(path)`` for a local path or a URL, with one-line errors (the file's directory).

    Raises:
        MissingFileError: a local path names no file.
        RemoteFileError: a URL cannot be read (not found, refused, no backend for its scheme).
        NotRootFileError: the file is not ROOT.
    """
    import uproot

    remote = is_url(path)
    scheme = path.split("://", 1)[0].lower() if remote else ""
    try:
        if scheme in ("http", "https"):
            return uproot.open(path, handler=_http_source())
        return uproot.open(path)
    except FileNotFoundError as err:
        if remote:
            raise _remote_error(path, err) from None
        raise MissingFileError(f"file not found: {path}", path=path) from None
    except Exception as err:  # uproot raises OSError/ValueError/... for non-ROOT content
        if remote and (_network_error(err) or isinstance(err, ImportError)):
            raise _remote_error(path, err) from None
        raise NotRootFileError(
            f"{path} is not a readable ROOT file ({type(err).__name__}: {_one_line(err)[:120]})", path=path
        ) from None


def _release(path: str, obj: Any) -> None:
    """Close the file of ``obj`` (a tree or a directory) when ``path`` is a URL: its connections.

    A local file is left to the garbage collector, as before (arrays read from an
    uncompressed basket may still view its memory map).
    """
    if is_url(path):
        getattr(obj, "file", obj).close()


def _open_tree(path: str, tree: str) -> Any:
    """Open ``tree`` (TTree or RNTuple) in ``path`` or raise a one-line InputError (a URL's file closed then)."""
    file = open_file(path)
    try:
        return _tree_of(file, path, tree)
    except BaseException:
        _release(path, file)
        raise


def _tree_of(file: Any, path: str, tree: str) -> Any:
    trees = sorted(
        {
            key.split(";")[0]
            for key, cls in file.classnames().items()
            if cls.startswith("TTree") or cls.startswith("TNtuple") or "RNTuple" in cls
        }
    )
    if tree not in trees:
        hint = closest(tree, trees)  # the names are listed already: only a close one is added
        raise MissingTreeError(
            f"no tree or ntuple {tree!r} in {path}; available: {', '.join(trees) or 'none'}"
            f"{hint if hint.startswith(' (did') else ''}",
            path=path,
            key=tree,
        )
    try:
        return file[tree]
    except Exception as err:  # its metadata cannot be read back: a damaged file
        if is_url(path) and _network_error(err):
            raise _remote_error(path, err) from None
        raise CorruptFileError(
            f"{path}: tree {tree!r} cannot be read ({type(err).__name__}: {_one_line(err)[:120]}); "
            "the file is truncated or damaged: copy or generate it again",
            path=path,
            key=tree,
        ) from None


def _is_rntuple(obj: Any) -> bool:
    return "RNTuple" in type(obj).__name__


def _names(obj: Any) -> list[str]:
    """Top-level readable names: TTree branches (recursive) or RNTuple top-level fields."""
    if _is_rntuple(obj):
        return list(obj.keys(recursive=False))
    return list(obj.keys())


def _default_names(obj: Any) -> list[str]:
    """Names read when ``branches=None``: for RNTuples, skip ROOT's internal ``_collectionN``
    fields, which duplicate the projected ``Prefix_field`` fields."""
    names = _names(obj)
    if _is_rntuple(obj):
        names = [n for n in names if not n.startswith("_")]
    return names


def _check_branches(obj: Any, path: str, branches: list[str]) -> None:
    available = _names(obj)
    known = set(available)
    for name in branches:
        if name not in known:
            raise MissingBranchError(
                f"branch {name!r} not found in {path}:{obj.name}{closest(name, available)}", path=path, key=name
            )


def branch_names(file: str | Path, tree: str = "Events") -> list[str]:
    """Branch (TTree) or top-level field (RNTuple) names of ``tree`` in ``file``."""
    (path,) = expand_files(file)[:1]
    obj = _open_tree(path, tree)
    names = _names(obj)
    _release(path, obj)
    return names


def num_entries(files: FileArg, *, tree: str = "Events") -> int:
    """Total number of entries (events) over ``files``, without reading any branch."""
    total = 0
    for path in expand_files(files):
        obj = _open_tree(path, tree)
        total += obj.num_entries
        _release(path, obj)
    return total


def _is_jagged(array: ak.Array) -> bool:
    content = array.type.content
    return isinstance(content, ak.types.ListType)


def zip_collections(flat: ak.Array) -> ak.Array:
    """Group ``Prefix_field`` jagged fields with equal counts into ``Prefix`` record collections.

    Args:
        flat: record array of length ``events`` with one field per branch.

    Returns:
        Record array of length ``events``: collections ``Prefix`` of type
        ``var * {field: ...}`` plus every other field unchanged at top level.
        A prefix group whose counts differ, or whose name collides with a
        top-level field, is left flat.
    """
    fields = ak.fields(flat)
    groups: dict[str, list[str]] = {}
    for name in fields:
        prefix, sep, rest = name.partition("_")
        if sep and prefix and rest and _is_jagged(flat[name]):
            groups.setdefault(prefix, []).append(name)
    zipped: dict[str, list[str]] = {}
    for prefix, names in groups.items():
        if prefix in fields:
            continue
        counts = ak.to_numpy(ak.num(flat[names[0]], axis=1))
        if all(np.array_equal(counts, ak.to_numpy(ak.num(flat[n], axis=1))) for n in names[1:]):
            zipped[prefix] = names
    grouped = {n for names in zipped.values() for n in names}
    out: dict[str, ak.Array] = {}
    for name in fields:
        if name in grouped:
            prefix = name.partition("_")[0]
            if prefix not in out:
                members = {n.partition("_")[2]: flat[n] for n in zipped[prefix]}
                out[prefix] = ak.zip(members, depth_limit=2)
        else:
            out[name] = flat[name]
    return ak.zip(out, depth_limit=1) if out else flat


def _read_one(obj: Any, names: list[str], start: int | None, stop: int | None, path: str = "") -> ak.Array:
    try:
        array = obj.arrays(names, entry_start=start, entry_stop=stop, library="ak")
    except (KeyboardInterrupt, MemoryError, InputError):
        raise
    except Exception as err:  # zlib/lz4 errors, unknown compression, bad basket headers: a damaged file
        if is_url(path) and _network_error(err):
            raise _remote_error(path, err) from None
        raise _corrupt(obj, names, start, stop, path, err) from None
    if _is_rntuple(obj):  # uproot also returns the internal collection behind projected fields
        array = array[names] if names else array
    return array


def _corrupt(obj: Any, names: list[str], start: int | None, stop: int | None, path: str, err: Exception) -> InputError:
    """The one-line error of a read that failed: the first branch that cannot be read alone, named."""
    culprit = None
    for name in names or _names(obj):
        try:
            obj.arrays([name], entry_start=start, entry_stop=stop, library="ak")
        except Exception:  # the branch that fails on its own
            culprit = name
            break
    what = f"branch {culprit!r}" if culprit else "its branches"
    return CorruptFileError(
        f"{path or 'a file'}: {what} cannot be read ({type(err).__name__}: {_one_line(err)[:120]}); "
        "the file is truncated or damaged: copy or generate it again",
        path=path or None,
        key=culprit,
    )


def _first_nonfinite(values: ak.Array) -> tuple[int, float] | None:
    """``(entry, value)`` of the first NaN or infinity of ``values`` (any nesting), else ``None``.

    One vectorised ``np.isfinite`` over the flattened numbers; the entry is looked
    for only when one is bad. Integers and booleans are never checked.
    """
    flat = np.asarray(ak.to_numpy(ak.flatten(values, axis=None)))
    if flat.dtype.kind not in "fc":
        return None
    ok = np.isfinite(flat)
    if ok.all():
        return None
    value = flat[np.argmin(ok)]  # flattening keeps the order: the first bad number is in the first bad entry
    bad = ~np.isfinite(values)
    while bad.ndim > 1:
        bad = ak.any(bad, axis=-1)
    entry = int(np.argmax(ak.to_numpy(ak.fill_none(bad, False))))
    return entry, value


def _check_finite(array: ak.Array, path: str, start: int) -> None:
    """A one-line :class:`NonFiniteError` for the first non-finite number of ``array``'s branches.

    ``array`` holds entries ``start, start + 1, ...`` of ``path`` (one field per branch);
    the error names the file, the branch and the entry within the file.
    """
    pending = [(name, array[name]) for name in ak.fields(array)]
    while pending:
        name, values = pending.pop(0)
        fields = ak.fields(values)
        if fields:  # an RNTuple record field: its members
            pending[:0] = [(f"{name}.{f}", values[f]) for f in fields]
            continue
        found = _first_nonfinite(values)
        if found is not None:
            entry, value = found
            raise NonFiniteError(
                f"branch {name!r} entry {start + entry} is {float(value)!r}; expected finite numbers",
                path=path,
                key=name,
            )


def _plan(files: list[str], tree: str, branches: list[str] | None) -> list[tuple[str, Any, list[str]]]:
    plan: list[tuple[str, Any, list[str]]] = []
    try:
        for path in files:
            obj = _open_tree(path, tree)
            plan.append((path, obj, []))
            names = _default_names(obj) if branches is None else list(branches)
            _check_branches(obj, path, names)
            plan[-1] = (path, obj, names)
    except BaseException:
        _release_all(plan)
        raise
    return plan


def _release_all(plan: list[tuple[str, Any, list[str]]]) -> None:
    for path, obj, _ in plan:
        _release(path, obj)


def read_events(
    files: FileArg,
    *,
    tree: str = "Events",
    branches: list[str] | None = None,
    entry_start: int | None = None,
    entry_stop: int | None = None,
    check_finite: bool = True,
) -> ak.Array:
    """Read ``branches`` of ``tree`` from one or several files (paths or globs) into events.

    Args:
        files: a path, a glob pattern, or a list of them; files are concatenated in order.
        tree: TTree or RNTuple name.
        branches: exact branch names to read; ``None`` reads every branch.
        entry_start, entry_stop: global event range over the concatenated files
            (Python slice semantics, negative values allowed).
        check_finite: raise a one-line :class:`NonFiniteError` naming the file, the
            branch and the entry (within its file) of the first NaN or infinity of a
            floating-point branch read (one ``np.isfinite`` per branch).

    Returns:
        ``ak.Array`` of length ``events`` zipped by :func:`zip_collections`.
    """
    if isinstance(branches, str):
        branches = [branches]
    plan = _plan(expand_files(files), tree, branches)
    try:
        sizes = [obj.num_entries for _, obj, _ in plan]
        start, stop, _ = slice(entry_start, entry_stop).indices(sum(sizes))
        parts = []
        offset = 0
        for (path, obj, names), size in zip(plan, sizes):
            lo, hi = max(start - offset, 0), min(stop - offset, size)
            if hi > lo:
                parts.append(_read_one(obj, names, lo, hi, path))
                if check_finite:
                    _check_finite(parts[-1], path, lo)
            offset += size
        if not parts:  # empty range or empty files: keep the branch types
            path, obj, names = plan[0]
            parts.append(_read_one(obj, names, 0, 0, path))
    finally:
        _release_all(plan)
    flat = parts[0] if len(parts) == 1 else ak.concatenate(parts)
    return zip_collections(flat)


def iterate_events(
    files: FileArg,
    *,
    tree: str = "Events",
    branches: list[str] | None = None,
    step_size: int | str = 100_000,
) -> Iterator[ak.Array]:
    """Yield zipped event batches of at most ``step_size`` events (or bytes, e.g. ``"100 MB"``).

    Batches do not cross file boundaries. Errors are raised before the first batch.
    """
    if isinstance(branches, str):
        branches = [branches]
    plan = _plan(expand_files(files), tree, branches)

    def batches() -> Iterator[ak.Array]:
        try:
            yield from _batches()
        finally:  # also when the caller stops early
            _release_all(plan)

    def _batches() -> Iterator[ak.Array]:
        for path, obj, names in plan:
            arrays = obj.iterate(names, step_size=step_size, library="ak")
            while True:
                try:
                    array = next(arrays)
                except StopIteration:
                    break
                except (KeyboardInterrupt, MemoryError, InputError):
                    raise
                except Exception as err:  # a damaged file, as in read_events
                    if is_url(path) and _network_error(err):
                        raise _remote_error(path, err) from None
                    raise _corrupt(obj, names, None, None, path, err) from None
                yield zip_collections(array[names] if _is_rntuple(obj) and names else array)

    return batches()
