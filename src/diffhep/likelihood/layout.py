"""Padded index tables: every sample and modifier of a model evaluated in a few array operations.

A parsed model (:mod:`diffhep.likelihood.model_parse`) is a list of entries
(one per sample in a channel), each with its own modifiers. Evaluating it entry
by entry unrolls into hundreds of tiny operations for a published workspace,
which is slow to compile and to run. Instead, the static structure is turned
into padded integer tables once (``E`` entries, ``B`` = the largest channel's
bins, ``K*`` = the most modifiers of a kind on one entry):

* ``norm_param (E, Kn)`` — parameter index of each ``normsys``; padding reads
  parameter 0 with ``hi = lo = 1``, whose factor is exactly 1;
* ``hist_param (E, Kh)`` — parameter index of each ``histosys``; padding has
  ``lo = hi = nominal``, whose shift is exactly 0;
* ``factor_param (E, Kf)`` — ``normfactor``/``lumi`` parameter indices;
* ``bin_param (E, Kb, B)`` — per-bin ``staterror``/``shapesys``/``shapefactor``
  parameter indices; padding (and bins past a channel's end) reads index
  ``npars`` of the parameter vector extended by a 1;
* ``main_index (nmain,)`` — where each bin of the concatenated main data sits
  in the ``(channels, B)`` grid;
* ``aux_param (naux,)``, ``normal_aux``, ``poisson_aux`` — the parameter read by
  each auxiliary measurement, and which of them are Normal or Poisson;
* ``slot_param (E, B, S)`` and ``bin_row (E, B)`` — for the derivative assembly
  in :mod:`~diffhep.likelihood.hessian`: the ``S = Kn + Kf + Kb + Kh`` parameters
  each sample reads in each bin, in that order (``npars`` where padded), and
  the main-data row of each bin (``nmain`` past a channel's end).

:class:`Layout` holds these tables as read-only NumPy arrays and is hashable,
so it can sit in the static part of a pytree.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Layout", "make_layout"]

_PER_BIN = ("shapefactor", "shapesys", "staterror")


class Layout:
    """Static index tables of a model (see the module docstring); hashable, compared by value."""

    __slots__ = ("arrays", "_key", "_hash")

    def __init__(self, **arrays: np.ndarray):
        frozen = {}
        for name, value in arrays.items():
            arr = np.array(value, dtype=np.int32)
            arr.setflags(write=False)
            frozen[name] = arr
        self.arrays: dict[str, np.ndarray] = frozen
        self._key = tuple((k, a.shape, a.tobytes()) for k, a in sorted(frozen.items()))
        self._hash = hash(self._key)

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.arrays[name]
        except KeyError:
            raise AttributeError(name) from None

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Layout) and self._hash == other._hash and self._key == other._key)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={a.shape}" for k, a in self.arrays.items())
        return f"Layout({shapes})"


def make_layout(structure: Any) -> Layout:
    """Build the :class:`Layout` of a parsed :class:`~diffhep.likelihood.model_parse.Structure`."""
    entries = structure.entries
    nbins = structure.nbins
    bmax = max(nbins)
    npars = sum(p.n for p in structure.params)
    by_type: dict[str, list[list[Any]]] = {"norm": [], "hist": [], "factor": [], "bin": []}
    for entry in entries:
        mods = entry.mods
        by_type["norm"].append([m.start for m in mods if m.type == "normsys"])
        by_type["hist"].append([m.start for m in mods if m.type == "histosys"])
        by_type["factor"].append([m.start for m in mods if m.type in ("normfactor", "lumi")])
        rows = []
        for m in mods:
            if m.type in _PER_BIN:
                row = list(range(m.start, m.stop)) + [npars] * (bmax - (m.stop - m.start))
                rows.append(row)
        by_type["bin"].append(rows)

    def pad2(rows: list[list[int]], fill: int) -> np.ndarray:
        k = max((len(r) for r in rows), default=0)
        return np.array([r + [fill] * (k - len(r)) for r in rows], dtype=np.int32).reshape(len(rows), k)

    kb = max((len(r) for r in by_type["bin"]), default=0)
    bin_param = np.full((len(entries), kb, bmax), npars, dtype=np.int32)
    for e, rows in enumerate(by_type["bin"]):
        for k, row in enumerate(rows):
            bin_param[e, k] = row

    main_index = np.concatenate([c * bmax + np.arange(n) for c, n in enumerate(nbins)])
    nmain = int(main_index.size)
    offsets = np.concatenate([[0], np.cumsum(nbins)])
    bin_row = np.full((len(entries), bmax), nmain, dtype=np.int32)
    for i, e in enumerate(entries):
        n = nbins[e.channel]
        bin_row[i, :n] = offsets[e.channel] + np.arange(n)

    # parameters read per (entry, bin), padded with the dummy index ``npars``:
    # multiplicative slots (normsys, normfactor/lumi, per-bin) first, then histosys
    def per_entry(kind: str) -> np.ndarray:
        table = pad2(by_type[kind], npars)
        return np.broadcast_to(table[:, None, :], (len(entries), bmax, table.shape[1]))

    slot_param = np.concatenate(
        [per_entry("norm"), per_entry("factor"), bin_param.transpose(0, 2, 1), per_entry("hist")], axis=2
    )
    aux_param, normal_aux, poisson_aux = [], [], []
    for p, start in zip(structure.params, structure.starts):
        if p.constraint is None:
            continue
        positions = range(len(aux_param), len(aux_param) + p.n)
        (normal_aux if p.constraint == "normal" else poisson_aux).extend(positions)
        aux_param.extend(range(start, start + p.n))
    return Layout(
        entry_channel=np.array([e.channel for e in entries], dtype=np.int32),
        norm_param=pad2(by_type["norm"], 0),
        hist_param=pad2(by_type["hist"], 0),
        factor_param=pad2(by_type["factor"], npars),
        bin_param=bin_param,
        main_index=main_index,
        slot_param=slot_param,
        bin_row=bin_row,
        aux_param=np.array(aux_param, dtype=np.int32),
        normal_aux=np.array(normal_aux, dtype=np.int32),
        poisson_aux=np.array(poisson_aux, dtype=np.int32),
    )
