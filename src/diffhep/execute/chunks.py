"""The chunking plan: ``(file, start, stop)`` event ranges of a configurable size.

:func:`plan_chunks` opens every file once with uproot to count its entries
(no branch is read) and splits each file into ranges of at most
``chunk_size`` events, the AGC default being 200,000. A file is split into
``ceil(entries / chunk_size)`` nearly equal ranges (as coffea does), so chunk
sizes differ between files; a file with no entries gives one empty chunk, which
the executors skip. Chunks never cross file boundaries.

Example:
    >>> import tempfile
    >>> from diffhep.io.generate_agc import generate_agc_sample
    >>> path = generate_agc_sample(tempfile.mkdtemp() + "/tt.root", "ttbar", 250, seed=1)
    >>> [(c.start, c.stop) for c in plan_chunks({"ttbar": path}, chunk_size=100)]
    [(0, 83), (83, 166), (166, 250)]
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import awkward as ak

from diffhep.errors import InputError
from diffhep.io.read import FileArg, check_limit, expand_files, num_entries, read_events

__all__ = ["AGC_CHUNK_SIZE", "Chunk", "plan_chunks", "read_chunk", "ReadAndPrepare"]

#: Events per chunk in the Analysis Grand Challenge.
AGC_CHUNK_SIZE = 200_000

#: Dataset name used when :func:`plan_chunks` is given files without names.
DEFAULT_DATASET = "events"


class Chunk(NamedTuple):
    """A range of events of one file: entries ``[start, stop)`` of ``tree``.

    Attributes:
        dataset: name of the sample the file belongs to (results are summed per dataset).
        file: path or URL of the ROOT file.
        tree: TTree or RNTuple name.
        start: first entry (inclusive).
        stop: last entry (exclusive); ``stop == start`` for an empty chunk.
    """

    dataset: str
    file: str
    tree: str
    start: int
    stop: int

    @property
    def n_events(self) -> int:
        """Number of events in the chunk."""
        return self.stop - self.start


def check_chunk_size(chunk_size: object) -> int:
    """``chunk_size`` as a positive int, or a one-line :class:`InputError`."""
    try:
        size = 0 if isinstance(chunk_size, bool) else operator.index(chunk_size)  # type: ignore[arg-type]
    except TypeError:
        size = 0
    if size < 1:
        raise InputError(
            f"chunk_size must be a positive whole number of events, got {chunk_size!r} (the AGC uses 200000)"
        )
    return size


def _split(n_entries: int, chunk_size: int) -> list[tuple[int, int]]:
    n_chunks = max(1, math.ceil(n_entries / chunk_size))
    bounds = [n_entries * i // n_chunks for i in range(n_chunks + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def plan_chunks(
    files: Mapping[str, FileArg] | FileArg,
    *,
    chunk_size: int = AGC_CHUNK_SIZE,
    tree: str = "Events",
    max_events: int | None = None,
) -> list[Chunk]:
    """Split files into event ranges of at most ``chunk_size`` events.

    Args:
        files: ``{dataset: path, glob or list of them}``; a bare path, glob or
            list is one dataset named ``"events"``.
        chunk_size: maximum events per chunk (``>= 1``).
        tree: TTree or RNTuple name in every file.
        max_events: plan only the first ``max_events`` events of each dataset
            (its files in order; files after the limit are not opened); ``None``: all.

    Returns:
        Chunks in dataset, file and entry order; one empty chunk per empty file.

    Raises:
        InputError: no dataset or file given, a file is missing or not ROOT, a
            tree is missing, or ``chunk_size`` is not a positive integer.
    """
    size = check_chunk_size(chunk_size)
    limit = check_limit(max_events, "max_events")
    datasets = dict(files) if isinstance(files, Mapping) else {DEFAULT_DATASET: files}
    if not datasets:
        raise InputError("no datasets given: pass {dataset: files} with at least one entry")
    plan = []
    for dataset, paths in datasets.items():
        left = limit
        for path in expand_files(paths):
            if left == 0:
                break
            n_entries = num_entries(path, tree=tree)
            if left is not None:
                n_entries, left = min(n_entries, left), left - min(n_entries, left)
            plan.extend(Chunk(str(dataset), path, tree, a, b) for a, b in _split(n_entries, size))
    return plan


def read_chunk(chunk: Chunk, branches: Sequence[str]) -> ak.Array:
    """Read ``branches`` of the chunk's events (NanoAOD collections zipped), length ``chunk.n_events``."""
    return read_events(
        chunk.file, tree=chunk.tree, branches=list(branches), entry_start=chunk.start, entry_stop=chunk.stop
    )


@dataclass(frozen=True)
class ReadAndPrepare:
    """A picklable ``prepare(chunk)``: read the chunk, then compute its static structure.

    ``prepare(chunk) = function(read_chunk(chunk, branches), *arguments[chunk.dataset], **options)``,
    for example ``ReadAndPrepare(ttbar.prepare, ttbar.BRANCHES, {"ttbar": (norm,)})``
    where ``norm`` is the dataset's events per unit generator weight.

    Attributes:
        function: ``(events, *args, **options) -> pytree of arrays``.
        branches: branches to read.
        arguments: dataset -> extra positional arguments (default: none).
        options: keyword arguments for every dataset.
    """

    function: Callable[..., Any]
    branches: Sequence[str]
    arguments: Mapping[str, tuple] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, chunk: Chunk) -> Any:
        """The prepared data of ``chunk``."""
        if self.arguments and chunk.dataset not in self.arguments:
            raise InputError(f"no prepare arguments for dataset {chunk.dataset!r}; known: {', '.join(self.arguments)}")
        args = self.arguments.get(chunk.dataset, ())
        return self.function(read_chunk(chunk, self.branches), *args, **dict(self.options))
