"""Shared machinery of the template generators (:mod:`~diffhep.io.generate_agc`, :mod:`~diffhep.io.generate_hzz`).

* Seeding as in :mod:`diffhep.io.generate`: events come in fixed blocks of
  :data:`BLOCK_SIZE`, block ``b`` of a process drawing from
  ``np.random.SeedSequence([seed, crc32(process), b])``; blocks are regrouped
  into writes of ``chunk_size`` events, so a file depends on
  ``(process, seed, n_events)`` only.
* Atomic writes: :func:`write_tree` writes a hidden temporary file beside the
  target and moves it into place with ``os.replace``; an interrupted run never
  leaves a partial target (and never clobbers an existing one).
* Vectorised relativistic kinematics on ``(4, n)`` arrays ``(E, px, py, pz)``
  in GeV: production, isotropic two-body decays, Breit-Wigner masses.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from diffhep.errors import InputError, closest

__all__ = [
    "BLOCK_SIZE",
    "UnknownProcessError",
    "Maker",
    "check_process",
    "check_sizes",
    "iter_blocks",
    "iter_chunks",
    "write_tree",
    "write_sample",
    "write_dataset",
    "breit_wigner",
    "p4_from",
    "two_body",
    "pt_eta_phi",
    "collection",
]

#: Events per random-number block; fixed so the output never depends on chunk_size.
BLOCK_SIZE = 10_000

#: ``make(rng, n, first)`` -> columns of ``n`` events, the first having index ``first``.
Maker = Callable[[np.random.Generator, int, int], dict]


class UnknownProcessError(InputError):
    """The process name is not one of the generator's processes."""


def check_process(process: str, processes: Mapping[str, dict]) -> None:
    """Raise :class:`UnknownProcessError` (one line, closest names) if ``process`` is unknown."""
    if process not in processes:
        raise UnknownProcessError(f"unknown process {process!r}{closest(process, processes)}")


def check_sizes(n_events: object, chunk_size: object) -> None:
    """``n_events >= 0`` and ``chunk_size >= 1`` integers, else a one-line :class:`InputError`."""
    if not isinstance(n_events, (int, np.integer)) or isinstance(n_events, bool) or n_events < 0:
        raise InputError(f"n_events must be a non-negative integer, got {n_events!r}")
    if not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise InputError(f"chunk_size must be a positive integer, got {chunk_size!r}")


def iter_blocks(make: Maker, process: str, n_events: int, seed: int) -> Iterator[dict]:
    """Yield the fixed blocks of a sample; at least one (possibly empty) block."""
    pid = zlib.crc32(process.encode())
    for b in range(max(1, -(-n_events // BLOCK_SIZE))):
        n = min(BLOCK_SIZE, n_events - b * BLOCK_SIZE)
        rng = np.random.default_rng(np.random.SeedSequence([seed, pid, b]))
        yield make(rng, n, b * BLOCK_SIZE)


def _length(part: dict) -> int:
    return len(next(iter(part.values())))


def _concat(parts: list[dict]) -> dict:
    if len(parts) == 1:
        return parts[0]
    return {
        key: np.concatenate(v) if isinstance(v[0], np.ndarray) else ak.concatenate(v)
        for key, v in ((key, [p[key] for p in parts]) for key in parts[0])
    }


def iter_chunks(blocks: Iterable[dict], chunk_size: int) -> Iterator[dict]:
    """Regroup blocks into chunks of exactly ``chunk_size`` events (the last may be short)."""
    buffer: list[dict] = []
    buffered = 0
    for block in blocks:
        buffer.append(block)
        buffered += _length(block)
        while buffered >= chunk_size:
            merged = _concat(buffer)
            yield {k: v[:chunk_size] for k, v in merged.items()}
            buffered -= chunk_size
            buffer = [{k: v[chunk_size:] for k, v in merged.items()}] if buffered else []
    if buffer:
        yield _concat(buffer)


def _unsigned_counters(tree: object) -> None:
    """Make the generated counters of a new, still empty ``tree`` ``uint32`` (as in NanoAOD).

    uproot always creates counters as ``int32``; this edits its (private) branch
    descriptions and asks for the metadata to be rewritten at the first
    ``extend``. If uproot's internals differ, the counters stay ``int32`` (the
    schema tests say so).
    """
    cascading = getattr(tree, "_cascading", None)
    data = getattr(cascading, "_branch_data", None)
    if data is None or not hasattr(cascading, "_needs_relocation_before_extend"):
        return
    for datum in data:
        if datum.get("kind") == "counter" and datum["dtype"] == np.dtype(">i4"):
            datum["dtype"] = np.dtype(">u4")
            datum["fTitle"] = datum["fTitle"][:-1] + "i"
    cascading._needs_relocation_before_extend = True


def write_tree(
    path: str | Path,
    tree_name: str,
    chunks: Iterable[dict],
    *,
    title: str,
    counter_name: Callable[[str], str] = lambda counted: "n" + counted,
    unsigned_counters: bool = False,
) -> Path:
    """Write ``chunks`` (dicts of NumPy/Awkward columns) to a TTree, atomically.

    The file is written as ``.<name>.<random><suffix>`` in the target folder (the
    naming of :func:`diffhep.outputs.atomic_write`, so that
    :func:`diffhep.outputs.remove_temporaries` finds what a killed run left),
    flushed to disk and renamed to ``path`` only when complete; on any exception
    (including ``KeyboardInterrupt``) the temporary file is removed and ``path``
    is left as it was. Empty chunks are not written (the tree still gets its branches).
    """
    import uproot

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        with uproot.recreate(tmp) as file:
            tree = None
            for chunk in chunks:
                if tree is None:
                    types = {k: (v.dtype if isinstance(v, np.ndarray) else v.type) for k, v in chunk.items()}
                    tree = file.mktree(tree_name, types, title=title, counter_name=counter_name)
                    if unsigned_counters:
                        _unsigned_counters(tree)
                if _length(chunk) or unsigned_counters:  # an empty extend writes the uint32 metadata
                    tree.extend(chunk)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_sample(
    path: str | Path,
    process: str,
    n_events: int,
    *,
    seed: int,
    chunk_size: int,
    processes: Mapping[str, dict],
    makers: Mapping[str, Maker],
    stream: str,
    tree_name: str,
    title: str,
    **options: Any,
) -> Path:
    """Check the arguments, then write ``process`` with ``makers[process]`` (see :func:`write_tree`).

    The random streams are keyed by ``f"{stream}/{process}"``, so generators
    with a process of the same name (``ttbar``) do not share them.
    """
    check_process(process, processes)
    check_sizes(n_events, chunk_size)
    blocks = iter_blocks(makers[process], f"{stream}/{process}", int(n_events), seed)
    return write_tree(path, tree_name, iter_chunks(blocks, int(chunk_size)), title=title, **options)


def write_dataset(
    write: Callable[..., Path],
    folder: str | Path,
    n_events: Mapping[str, int] | int,
    processes: Mapping[str, dict],
    **options: Any,
) -> dict[str, Path]:
    """``{process: write(folder / f"{process}.root", process, n, **options)}`` for each process."""
    counts = dict.fromkeys(processes, n_events) if isinstance(n_events, int) else dict(n_events)
    for process in counts:
        check_process(process, processes)
    return {p: write(Path(folder) / f"{p}.root", p, n, **options) for p, n in counts.items()}


# ----------------------------------------------------------------------------
# Kinematics on (4, n) arrays (E, px, py, pz), GeV.
# ----------------------------------------------------------------------------


def breit_wigner(rng: np.random.Generator, mass: float, width: float, lo: float, hi: float, n: int) -> np.ndarray:
    """Cauchy (non-relativistic Breit-Wigner) masses truncated to ``[lo, hi]`` GeV by inverse CDF."""
    u_lo, u_hi = (np.arctan((m - mass) / (width / 2)) / np.pi + 0.5 for m in (lo, hi))
    return mass + width / 2 * np.tan(np.pi * (rng.uniform(u_lo, u_hi, n) - 0.5))


def p4_from(mass: np.ndarray, pt: np.ndarray, rapidity: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Four-momenta ``(4, n)`` of particles of ``mass`` with ``pt``, ``rapidity``, ``phi``."""
    mt = np.hypot(mass, pt)
    return np.stack([mt * np.cosh(rapidity), pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(rapidity)])


def _boost(p4: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Boost ``p4`` (4, n) by velocity ``beta`` (3, n)."""
    b2 = np.maximum((beta**2).sum(axis=0), 1e-300)
    gamma = 1.0 / np.sqrt(np.maximum(1.0 - b2, 1e-300))
    bp = (beta * p4[1:]).sum(axis=0)
    p3 = p4[1:] + ((gamma - 1.0) * bp / b2 + gamma * p4[0]) * beta
    return np.concatenate([(gamma * (p4[0] + bp))[None], p3])


def two_body(
    rng: np.random.Generator,
    parent: np.ndarray,
    mass: np.ndarray,
    m1: np.ndarray | float,
    m2: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic decays ``parent (4, n)`` of ``mass`` (n,) -> daughters of masses ``m1``, ``m2``.

    Requires ``m1 + m2 <= mass``. Returns the two daughters' four-momenta in the
    lab frame, each ``(4, n)``.
    """
    n = parent.shape[1]
    m1, m2 = np.broadcast_to(m1, (n,)), np.broadcast_to(m2, (n,))
    lam = (mass**2 - (m1 + m2) ** 2) * (mass**2 - (m1 - m2) ** 2)
    pstar = np.sqrt(np.maximum(lam, 0.0)) / (2.0 * mass)
    cos_t, phi = rng.uniform(-1.0, 1.0, n), rng.uniform(-np.pi, np.pi, n)
    sin_t = np.sqrt(1.0 - cos_t**2)
    p3 = pstar * np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t])
    beta = parent[1:] / parent[0]
    d1 = np.concatenate([np.hypot(m1, pstar)[None], p3])
    d2 = np.concatenate([np.hypot(m2, pstar)[None], -p3])
    return _boost(d1, beta), _boost(d2, beta)


def pt_eta_phi(p4: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pt, eta, phi)`` of four-momenta ``(4, n)``; ``eta`` is +-20 along the beam."""
    pt = np.hypot(p4[1], p4[2])
    eta = np.arcsinh(p4[3] / np.maximum(pt, 1e-9))
    return pt, np.clip(eta, -20.0, 20.0), np.arctan2(p4[2], p4[1])


def collection(n: int, parts: list[dict[str, np.ndarray]], sort_by: str, drop: tuple[str, ...] = ()) -> ak.Array:
    """Merge flat per-object fields (each part with an ``idx`` event index) into ``n * var * {...}``.

    Objects are grouped by event and sorted by descending ``sort_by``; the
    ``idx`` field and the fields in ``drop`` are not kept.
    """
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.lexsort((-merged[sort_by], merged["idx"]))
    counts = np.bincount(merged["idx"], minlength=n)
    fields = {k: v[order] for k, v in merged.items() if k != "idx" and k not in drop}
    return ak.unflatten(ak.zip(fields), counts)
