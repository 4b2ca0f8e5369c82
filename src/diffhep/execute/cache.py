"""On-disk cache of each chunk's static structure (the result of a ``prepare`` function).

The first pass over a chunk reads it with uproot and computes its static
structure (Awkward combinatorics, orderings, kernels: the slow part); later
passes load it back in one ``numpy.load``. Format, one file per chunk:

* ``<folder>/<key>.npz``: an uncompressed ``numpy.savez`` of the pytree's
  leaves (``leaf_0``, ``leaf_1``, ...), copied into memory at load time, plus
  ``skeleton``: the pickled pytree with each leaf replaced by its index, which
  restores the classes and their static fields (``n_events``, ``edges``, ...);
* the key is a SHA-256 of the file's absolute path, modification time and
  size (a URL: the URL as written; a file changed at the same URL needs a new
  ``version`` or an emptied folder), the chunk's dataset, tree and entry
  range, the user's ``version`` string
  (change it when the ``prepare`` function or its options change), the contents
  of the ``sources`` files (by default every plugin module this process has
  imported, as imported: an edited plugin is never served the chunks its old
  version prepared) and the versions of this format, diffhep and JAX.

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
import os
import pickle
import tempfile
import zipfile
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
FORMAT_VERSION = 1


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

    def key(self, chunk: Chunk) -> str:
        """Hex key of ``chunk``: depends on the file's path, mtime and size, the range, the version and the sources."""
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
                  size, chunk.dataset, chunk.tree, chunk.start, chunk.stop, self.sources]  # fmt: skip
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:40]

    def path(self, chunk: Chunk) -> Path:
        """Where ``chunk``'s entry is (or would be) stored."""
        return self.folder / f"{self.key(chunk)}.npz"

    def load(self, chunk: Chunk) -> Any | None:
        """The stored data of ``chunk`` (NumPy leaves), or ``None`` if absent or unreadable."""
        try:
            with np.load(self.path(chunk), allow_pickle=False) as stored:
                skeleton = pickle.loads(stored["skeleton"].tobytes())
                leaves = [stored[f"leaf_{i}"] for i in range(len(jax.tree.leaves(skeleton)))]
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError,
                AttributeError, ImportError):  # fmt: skip
            return None
        return jax.tree.map(lambda i: leaves[i], skeleton)

    def store(self, chunk: Chunk, data: Any) -> Path:
        """Write ``data`` (a pytree of arrays) for ``chunk`` atomically; return the file."""
        leaves, treedef = jax.tree.flatten(data)
        skeleton = jax.tree.unflatten(treedef, list(range(len(leaves))))
        arrays = {f"leaf_{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
        arrays["skeleton"] = np.frombuffer(pickle.dumps(skeleton, protocol=5), dtype=np.uint8)
        target = self.path(chunk)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as out:
                np.savez(out, **arrays)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def get(self, chunk: Chunk, prepare: Callable[[Chunk], Any]) -> Any:
        """Load ``chunk``'s data, or compute it with ``prepare(chunk)`` and store it."""
        data = self.load(chunk)
        if data is not None:
            self.hits += 1
            return data
        data = prepare(chunk)
        self.store(chunk, data)
        self.misses += 1
        return data
