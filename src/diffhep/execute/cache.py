"""On-disk cache of each chunk's static structure (the result of a ``prepare`` function).

The first pass over a chunk reads it with uproot and computes its static
structure (Awkward combinatorics, orderings, kernels: the slow part); later
passes map it back into memory without reading or copying it. Format, one
file per chunk:

* ``<folder>/<key>.chunk``: the magic ``DHCHUNK2``, the length of a JSON header
  (8 bytes, little-endian), the header (each leaf's dtype, shape and offset, and
  where the skeleton is), then ``skeleton``: the pickled pytree with each leaf
  replaced by its index, which restores the classes and their static fields
  (``n_events``, ``edges``, ...), then each leaf's bytes at an offset that is a
  multiple of 64. A load memory-maps the file read-only and returns NumPy views
  of it: nothing is read until used, the kernel's page cache holds the bytes
  once, and ``jax.device_put`` on the CPU takes 64-byte-aligned host buffers
  without a copy, so the compiled step reads the file's pages directly
  (``numpy.load`` of the ``.npz`` of format 1 copied every chunk twice per pass:
  into memory, then into a device buffer). A *tagged* entry (``tag=...``) is a
  second form of the same chunk, e.g. padded to the shape of its compiled program
  (:class:`~diffhep.execute.ChunkedStep` keeps one per padder, so later passes
  neither pad nor copy);
* the key is a SHA-256 of the file's absolute path, modification time and
  size (a URL: the URL as written; a file changed at the same URL needs a new
  ``version`` or an emptied folder), the chunk's dataset, tree and entry
  range, the user's ``version`` string
  (change it when the ``prepare`` function or its options change), the contents
  of the ``sources`` files (by default every plugin module this process has
  imported, as imported: an edited plugin is never served the chunks its old
  version prepared) and the versions of this format, diffhep and JAX.

Python's ``mmap`` and ``numpy.frombuffer`` do the mapping; no library we use writes
64-byte-aligned, memory-mappable pytrees (``numpy.savez`` neither aligns nor maps
the members of its zip file), hence the few lines of format here.

Files are written to a temporary name in the same folder and renamed, so a
reader never sees half a file and concurrent writers (Dask workers sharing a
file system) do not corrupt each other. The skeleton is unpickled: only use a
cache folder that you trust.

Example:
    >>> import tempfile, numpy as np
    >>> from diffhep.io.generate_agc import generate_agc_sample
    >>> from diffhep.execute import ChunkCache, plan_chunks
    >>> path = generate_agc_sample(tempfile.mkdtemp() + "/tt.root", "ttbar", 10, seed=1)
    >>> (chunk,) = plan_chunks(path, chunk_size=100)
    >>> cache = ChunkCache(tempfile.mkdtemp(), version="demo-1")
    >>> data = cache.get(chunk, lambda c: {"n": np.arange(c.n_events)})
    >>> data2 = cache.get(chunk, lambda c: 1 / 0)  # loaded, prepare not called
    >>> data2["n"].tolist(), (cache.hits, cache.misses)
    ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], (1, 1))
"""

from __future__ import annotations

import hashlib
import json
import math
import mmap
import os
import pickle
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from diffhep import __version__
from diffhep.config import load as _config_load
from diffhep.errors import InputError
from diffhep.execute.chunks import Chunk
from diffhep.io.read import is_url

__all__ = ["ChunkCache"]


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise InputError(f"cache source {path} cannot be read: {err.strerror}", path=str(path)) from None


def _plugin_digests() -> list[str]:
    """SHA-256 of each plugin module imported in this process, of the text it was imported from, sorted."""
    return sorted(digest for digest, _ in _config_load._PLUGIN_STATE.values())


#: Bump when the on-disk layout changes.
FORMAT_VERSION = 2
#: The first bytes of an entry.
MAGIC = b"DHCHUNK2"
#: Leaves start at multiples of this many bytes (what XLA's CPU client needs to use a host buffer without a copy).
ALIGN = 64


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


def write_entry(out: Any, data: Any) -> None:
    """Write the pytree ``data`` (leaves: NumPy-convertible arrays of a fixed-size dtype) to the binary file ``out``."""
    leaves, treedef = jax.tree.flatten(data)
    skeleton = pickle.dumps(jax.tree.unflatten(treedef, list(range(len(leaves)))), protocol=5)
    arrays = [np.asarray(leaf) for leaf in leaves]
    arrays = [a if a.flags.c_contiguous else a.copy(order="C") for a in arrays]  # (ascontiguousarray makes 0-d 1-d)
    for i, array in enumerate(arrays):
        if array.dtype.hasobject:
            raise InputError(f"chunk cache: leaf {i} has dtype object; only numeric arrays can be stored")
    entries: list[list[Any]] = []
    header: dict[str, Any] = {"skeleton": [0, len(skeleton)], "leaves": entries}
    size = 0  # the header's length moves every offset: lay out, measure, repeat until it is stable
    while True:
        header["skeleton"][0] = len(MAGIC) + 8 + size
        offset = header["skeleton"][0] + len(skeleton)
        entries.clear()
        for array in arrays:
            offset = _aligned(offset)
            entries.append([array.dtype.str, list(array.shape), offset])
            offset += array.nbytes
        encoded = json.dumps(header).encode()
        if len(encoded) == size:
            break
        size = len(encoded)
    out.write(MAGIC + size.to_bytes(8, "little") + encoded + skeleton)
    position = header["skeleton"][0] + len(skeleton)
    for array, (_, _, offset) in zip(arrays, entries):
        out.write(b"\0" * (offset - position))
        out.write(array.reshape(-1).view(np.uint8).data if array.nbytes else b"")
        position = offset + array.nbytes


def read_entry(path: Path) -> Any:
    """The pytree stored in ``path`` by :func:`write_entry`, its leaves read-only views of the memory-mapped file.

    Raises ``ValueError`` (or ``OSError``, ``pickle.UnpicklingError``, ...) if the file is not a complete entry.
    """
    with open(path, "rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)  # stays mapped while a view uses it
    if mapped[: len(MAGIC)] != MAGIC:
        raise ValueError(f"{path} is not a chunk cache entry")
    size = int.from_bytes(mapped[len(MAGIC) : len(MAGIC) + 8], "little")
    header = json.loads(mapped[len(MAGIC) + 8 : len(MAGIC) + 8 + size])
    start, length = header["skeleton"]
    skeleton = pickle.loads(mapped[start : start + length])
    leaves = []
    for dtype, shape, offset in header["leaves"]:
        dtype, count = np.dtype(dtype), math.prod(shape)
        if offset + count * dtype.itemsize > len(mapped):
            raise ValueError(f"{path} is truncated")
        view = np.frombuffer(mapped, dtype=dtype, count=count, offset=offset) if count else np.empty(0, dtype)
        view.flags.writeable = False  # as the mapped ones: a cached chunk is never changed in place
        leaves.append(view.reshape(shape))
    if len(leaves) != len(jax.tree.leaves(skeleton)):
        raise ValueError(f"{path} does not hold its skeleton's leaves")
    return jax.tree.map(lambda i: leaves[i], skeleton)


class ChunkCache:
    """Prepared chunk data kept on disk between passes.

    Args:
        folder: cache folder (created if missing).
        version: user tag of the ``prepare`` function and its options; entries
            written with another tag are never read.
        sources: files whose contents the prepared data depend on (code the
            ``prepare`` function runs); entries written when one of them read
            otherwise are never read. Default: the plugin modules imported in this
            process (:func:`diffhep.config.load_plugins`), with the contents they
            were imported from; more plugins than the analysis uses only cost
            cache misses, never stale data.

    Attributes:
        hits: chunks loaded from disk by :meth:`get`.
        misses: chunks prepared and written by :meth:`get`.
    """

    def __init__(self, folder: str | Path, version: str, *, sources: Iterable[str | Path] | None = None) -> None:
        if not isinstance(version, str) or not version:
            raise InputError(f"cache version must be a non-empty string naming the prepare step, got {version!r}")
        self.folder = Path(folder)
        self.version = version
        self.sources = _plugin_digests() if sources is None else [_digest(Path(p)) for p in sources]
        self.hits = 0
        self.misses = 0
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"cannot create the cache folder {self.folder}: {err.strerror}") from None

    def __repr__(self) -> str:
        return f"ChunkCache({str(self.folder)!r}, version={self.version!r})"

    def __getstate__(self) -> dict:  # counters are per process; the sources' digests travel (Dask workers)
        return {"folder": self.folder, "version": self.version, "sources": self.sources, "hits": 0, "misses": 0}

    def key(self, chunk: Chunk, tag: str = "") -> str:
        """Hex key of ``chunk``: depends on the file's path, mtime and size, the range, the version, the sources
        and ``tag`` (a second form of the chunk, e.g. padded; ``""`` for the prepared data)."""
        if is_url(chunk.file):  # nothing to stat: the URL alone (see the module's docstring)
            path, mtime, size = chunk.file, None, None
        else:
            path = os.path.abspath(chunk.file)
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                raise InputError(f"file not found: {chunk.file}") from None
            mtime, size = stat.st_mtime_ns, stat.st_size

        fields = [FORMAT_VERSION, __version__, jax.__version__, self.version, path, mtime,
                  size, chunk.dataset, chunk.tree, chunk.start, chunk.stop, self.sources, tag]  # fmt: skip
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:40]

    def path(self, chunk: Chunk, tag: str = "") -> Path:
        """Where ``chunk``'s entry (of form ``tag``) is, or would be, stored."""
        return self.folder / f"{self.key(chunk, tag)}.chunk"

    def load(self, chunk: Chunk, tag: str = "") -> Any | None:
        """The stored data of ``chunk`` (read-only NumPy views of the mapped file), or ``None`` if absent or
        unreadable."""
        try:
            return read_entry(self.path(chunk, tag))
        except (OSError, KeyError, ValueError, TypeError, EOFError, pickle.UnpicklingError, AttributeError,
                ImportError):  # fmt: skip
            return None

    def store(self, chunk: Chunk, data: Any, tag: str = "") -> Path:
        """Write ``data`` (a pytree of arrays) for ``chunk`` atomically; return the file."""
        target = self.path(chunk, tag)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as out:
                write_entry(out, data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def prefetch(self, chunk: Chunk, tag: str = "") -> bool:
        """Ask the kernel to read ``chunk``'s entry (of form ``tag``) into its page cache in the background.

        Returns at once (``posix_fadvise(WILLNEED)``): a streaming pass calls it for the next chunk
        before computing the current one, so that where the cache does not fit in memory the next chunk
        is read from disk while this one computes. ``False`` where the entry is absent or the system
        has no ``posix_fadvise``.
        """
        if not hasattr(os, "posix_fadvise"):
            return False
        try:
            fd = os.open(self.path(chunk, tag), os.O_RDONLY)
        except OSError:
            return False
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        except OSError:
            return False
        finally:
            os.close(fd)
        return True

    def get(self, chunk: Chunk, prepare: Callable[[Chunk], Any]) -> Any:
        """Load ``chunk``'s data, or compute it with ``prepare(chunk)`` and store it (returned as computed)."""
        data = self.load(chunk)
        if data is not None:
            self.hits += 1
            return data
        data = prepare(chunk)
        self.store(chunk, data)
        self.misses += 1
        return data
