"""Events already in memory, read as the NanoAOD branches of a file: :class:`MemoryEvents`, :func:`read_memory`.

A :class:`~diffhep.engine.configured.ConfiguredAnalysis` given ``events={"ttbar":
array, ...}`` reads each sample from an Awkward Array instead of its files. The
array's fields are named as uproot names a NanoAOD file's branches, whichever
of these forms it has (they may be mixed):

* flat branches, exactly as ``uproot``'s ``tree.arrays()`` returns them:
  ``Jet_pt`` (a list per event), ``nJet``, ``MET_pt``, ``genWeight``;
* collections zipped by :func:`~diffhep.io.read_events`: ``events.Jet.pt``;
* coffea's NanoEvents records: a collection (a list of records per event)
  ``events.Jet.pt`` is the branch ``Jet_pt`` and gives the count ``nJet`` from its
  lengths (``uint32``, as in NanoAOD) unless a field ``nJet`` is there; a record
  ``events.MET.pt`` is ``MET_pt`` (deeper records join with ``_``:
  ``events.a.b.c`` is ``a_b_c``).

Only the types are looked at until a branch is read, and only the branches read
are taken (a lazy NanoEvents array loads nothing else). The array is read through
its behaviour-free layout: coffea's methods and cross-references, which are not
fields, are not branches, and nothing of coffea is imported. A branch read is
packed into the layout uproot gives and checked for NaN and infinity, as
:func:`~diffhep.io.read_events` checks a file's.

:func:`read_memory` does the same for the hand-written analyses of
:mod:`diffhep.examples` (their ``prepare(events, ...)``): any of these forms in,
what :func:`~diffhep.io.read_events` returns out.

Example:
    >>> import awkward as ak
    >>> events = ak.Array({"Jet": [[{"pt": 40.0}, {"pt": 31.0}], []], "MET": [{"pt": 12.5}, {"pt": 3.0}]})
    >>> memory = MemoryEvents(events, "events['ttbar']")
    >>> memory.branches
    ['Jet_pt', 'nJet', 'MET_pt']
    >>> memory.read(["nJet", "MET_pt"]).tolist()
    [{'nJet': 2, 'MET_pt': 12.5}, {'nJet': 0, 'MET_pt': 3.0}]
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from diffhep.errors import InputError, closest
from diffhep.io.read import _check_finite, zip_collections

__all__ = ["MemoryEvents", "read_memory"]

#: The dtype of a count ``nJet`` made from a collection's lengths (NanoAOD's ``UInt_t``).
COUNT_DTYPE = np.uint32

_EXPECTED = (
    "an Awkward Array of events with NanoAOD branches as fields (Jet_pt, nJet, MET_pt, as uproot reads them) "
    "or as records (events.Jet.pt, events.MET.pt, as coffea's NanoEvents)"
)


def _what(value: Any) -> str:
    """A few words on what ``value`` is, for an error message."""
    kind = type(value)
    if isinstance(value, ak.Array):
        return f"an Awkward Array of type {value.type.content}"
    if isinstance(value, ak.Record):
        return "an Awkward Record (one event)"
    if isinstance(value, np.ndarray):
        return f"a NumPy array of dtype {value.dtype}"
    if isinstance(value, dict):
        return "a dict (make it an array first: ak.Array(d) or ak.zip(d, depth_limit=1))"
    module = kind.__module__.partition(".")[0]
    return f"a {kind.__name__}" if module == "builtins" else f"a {module}.{kind.__qualname__}"


def _leaf(t: ak.types.Type) -> bool:
    """A number, or a list of numbers (a branch's value in one event or per object)."""
    if isinstance(t, (ak.types.ListType, ak.types.RegularType)):
        if t.parameter("__array__") in ("string", "bytestring"):
            return False
        t = t.content
    return isinstance(t, ak.types.NumpyType)


def _walk(t: ak.types.Type, path: tuple[str, ...], name: str, out: dict[str, tuple[tuple[str, ...], bool]]) -> None:
    """Add the branches of the field at ``path`` (named ``name``) to ``out``: ``name -> (path, is a count)``."""
    if _leaf(t):
        out.setdefault(name, (path, False))
    elif isinstance(t, ak.types.RecordType) and not t.is_tuple:  # a record per event: MET.pt -> MET_pt
        for field, content in zip(t.fields, t.contents, strict=True):
            _walk(content, (*path, field), f"{name}_{field}", out)
    elif isinstance(t, ak.types.ListType) and isinstance(t.content, ak.types.RecordType) and not t.content.is_tuple:
        for field, content in zip(t.content.fields, t.content.contents, strict=True):  # a collection: Jet.pt
            if _leaf(content):
                out.setdefault(f"{name}_{field}", ((*path, field), False))
        out.setdefault(f"n{name}", (path, True))


class MemoryEvents:
    """One sample's (or variation's) events in memory, read by branch name as from a file.

    Args:
        events: the events (see the module docstring for the forms accepted).
        where: how errors name them, e.g. ``"events['ttbar']"``.

    Attributes:
        where: as given.
        branches: the branch names the array provides (its type only; nothing is read).
        num_entries: the number of events.

    Raises:
        InputError: one line naming ``where`` and what was expected, for anything
            but an array of records with numeric fields (a NumPy array, a dict of lists,
            a jagged array of numbers, a delayed dask-awkward array).
    """

    def __init__(self, events: Any, where: str):
        self.where = where
        if type(events).__module__.partition(".")[0] == "dask_awkward":
            raise InputError(
                f"{where}: a delayed dask-awkward array; compute it first (events.compute()) or open the "
                "NanoEvents eagerly"
            )
        if not isinstance(events, ak.Array):
            raise InputError(f"{where}: expected {_EXPECTED}; got {_what(events)}")
        layout = ak.to_layout(events)  # the behaviour-free view: coffea's methods are not fields
        content = events.type.content
        if not isinstance(content, ak.types.RecordType) or content.is_tuple:
            raise InputError(f"{where}: expected {_EXPECTED}; got {_what(events)}")
        paths: dict[str, tuple[tuple[str, ...], bool]] = {}
        for field, t in zip(content.fields, content.contents, strict=True):
            _walk(t, (field,), field, paths)
        if not paths:
            raise InputError(f"{where}: expected {_EXPECTED}; got {_what(events)}, with no numeric field")
        self._layout = layout
        self._paths = paths
        self.branches = list(paths)
        self.num_entries = len(events)

    def __repr__(self) -> str:
        return f"MemoryEvents({self.where}, {self.num_entries} events, {len(self.branches)} branches)"

    def column(self, name: str, stop: int | None = None) -> ak.Array:
        """Branch ``name`` as uproot reads it from a file (packed, no parameters, no behaviour);
        its first ``stop`` events (all when ``None``)."""
        path, count = self._paths[name]
        node = self._layout
        for field in path:
            node = node[field]
        if stop is not None:
            node = node[:stop]
        if count:
            return ak.values_astype(ak.num(node, axis=1), COUNT_DTYPE)
        return ak.Array(ak.to_packed(ak.without_parameters(node, highlevel=False), highlevel=False))

    def read(self, names: list[str]) -> ak.Array:
        """The branches ``names`` zipped into collections as :func:`~diffhep.io.read_events` returns them.

        A NaN or an infinity is a one-line :class:`~diffhep.io.read.NonFiniteError`
        naming :attr:`where`, the branch and the entry.
        """
        flat = ak.zip({name: self.column(name) for name in names}, depth_limit=1)
        _check_finite(flat, self.where, 0)
        return zip_collections(flat)

    def empty(self, names: list[str]) -> ak.Array:
        """:meth:`read` of no event: the branches' types (``is_discrete`` reads them), no data copied."""
        return zip_collections(ak.zip({name: self.column(name, 0) for name in names}, depth_limit=1))


def read_memory(events: Any, branches: list[str], *, where: str = "events") -> ak.Array:
    """The branches ``branches`` of ``events`` in memory, as :func:`~diffhep.io.read_events` reads them from a file.

    ``events`` may have any form :class:`MemoryEvents` accepts (uproot's flat
    branches, :func:`~diffhep.io.read_events`'s collections, coffea's NanoEvents).
    A missing branch is a one-line :class:`~diffhep.errors.InputError` naming it,
    ``where`` and the closest branch there is.

    Example:
        >>> import awkward as ak
        >>> events = ak.Array({"Muon": [[{"pt": 40.0, "eta": 0.5}], []], "MET": [{"pt": 12.5}, {"pt": 3.0}]})
        >>> read_memory(events, ["Muon_pt", "MET_pt"]).fields
        ['Muon', 'MET_pt']
        >>> read_memory(events, ["MET_phi"])
        Traceback (most recent call last):
        ...
        diffhep.errors.InputError: events: no branch 'MET_phi' (did you mean 'MET_pt'?)
    """
    memory = MemoryEvents(events, where)
    missing = [b for b in branches if b not in memory.branches]
    if missing:
        raise InputError(f"{where}: no branch {missing[0]!r}{closest(missing[0], memory.branches)}", key=missing[0])
    return memory.read(list(branches))
