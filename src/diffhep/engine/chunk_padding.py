"""Pad the chunks of a configured analysis to a few shared shapes, so that they share compiled programs.

Every chunk has its own numbers of events, objects and candidates, and these
are static in the compiled step (seconds to compile, each). Before the first
step, :func:`plan_shapes` looks at every chunk's sizes (:func:`sizes_of`) and
groups the chunks by number of events (a *class* holds the chunks with
``n_max / 2**(k+1) < n <= n_max / 2**k`` events); every chunk of a class is
padded to the class's largest size of each collection, rounded up to a size
bucket (:func:`diffhep.execute.bucket`, less than ``1 / resolution`` extra)
and ``max_count`` to a power of ``count_base``. Files split into equal chunks
(:func:`diffhep.execute.plan_chunks`) thus give one compiled program per
class, usually one in all. Where that padding is large (more than
:data:`SPLIT_OBJECTS` objects over the class), the class is split by the
chunks' numbers of objects too, so that the chunks of a sample with few jets are not
padded to the trijet candidates of a sample with many.

:func:`pad_sample_data` pads one chunk's :class:`~diffhep.engine.combine.SampleData`:

* *padding events* are appended, with weight 0, every event branch 0 and
  sample index 0;
* each collection (objects and candidate combinations) gets zero-valued
  padding objects, at most ``max_count`` per padding event, so that the
  structure stays valid (``segment_ids`` non-decreasing, ``local_index <
  max_count``);
* indices into the concatenated weights of several collections (a union's
  ``union_index``, the ``members`` of candidates) are shifted past the padding
  of the collections before theirs; padding entries point at entry 0;
* pair candidates' ``runs`` get one run per padding pair and empty runs up to
  the target number of runs;
* kernels of static observables get zero fractions for the padding entries.

Padding events have zero weight, so histograms and cutflows are unchanged
(``tests/engine/test_execute_configured.py`` compares with the in-memory analysis).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from diffhep.engine.builtins import Candidates, CandidateSpec
from diffhep.engine.combine import SampleData
from diffhep.engine.objects import ObjectDef
from diffhep.errors import InputError
from diffhep.execute.buckets import bucket
from diffhep.histogram import BinnedKernel
from diffhep.jagged import Jagged

__all__ = ["sizes_of", "plan_shapes", "pad_sample_data", "ShapePadder"]

#: One chunk's sizes: ``{"events": n, ("objects"|"combos"|"runs", name): (n_objects, max_count)}``
#: (for runs, ``n_objects`` is the number of runs).
Sizes = dict[Any, Any]


def _cap(max_count: int, base: int) -> int:
    """Smallest power of ``base`` that is ``>= max(max_count, 1)``."""
    out = 1
    while out < max_count:
        out *= base
    return out


def sizes_of(data: SampleData) -> Sizes:
    """The static sizes of one chunk's data (what :func:`plan_shapes` needs)."""
    out: Sizes = {"events": int(np.shape(data.weight)[0])}
    for name, c in data.objects.items():
        out[("objects", name)] = (c.n_objects, c.max_count)
    for key, cands in data.candidates.items():
        out[("combos", key)] = (cands.combos.n_objects, cands.combos.max_count)
        if cands.runs is not None:
            out[("runs", key)] = (cands.runs.n_events, cands.runs.max_count)
    return out


def _target(group: Sequence[Sizes], resolution: int, base: int) -> Sizes:
    """The padded sizes of a group of chunks: each collection's largest, bucketed."""
    target: Sizes = {}
    for path in group[0]:
        if path == "events":
            continue
        n, cap = max(s[path][0] for s in group), max(s[path][1] for s in group)
        target[path] = (bucket(n, resolution), _cap(cap, base))
    for path, (n_runs, cap) in list(target.items()):
        if path[0] == "runs":  # one run per padding pair, on top of the largest number of runs
            combos = ("combos", path[1])
            extra = max(target[combos][0] - s[combos][0] + s[path][0] for s in group)
            target[path] = (bucket(max(n_runs, extra), resolution), cap)
    events = 0
    for s in group:
        needed = 1  # at least one padding event
        for path, (n, cap) in target.items():
            if path[0] != "runs":
                needed = max(needed, math.ceil((n - s[path][0]) / cap))
        events = max(events, s["events"] + needed)
    target["events"] = bucket(events, resolution)
    return target


#: Padding objects (summed over a class's chunks and collections) above which a class of chunks is split by
#: multiplicity: below it another compiled program costs more than the padding (seconds once, against
#: microseconds per step), above it the padding decides the step time (the AGC at 1e7 events: W+jets chunks
#: padded to the ttbar chunks' 3.1e6 trijet candidates made every step 3x slower).
SPLIT_OBJECTS = 1 << 20


def _objects(target: Sizes) -> int:
    return sum(v[0] for path, v in target.items() if path != "events" and path[0] != "runs")


def _waste(group: Sequence[Sizes], target: Sizes) -> int:
    """Padding objects the chunks of ``group`` get when padded to ``target``."""
    return sum(_objects(target) - _objects({p: v for p, v in s.items() if p != "events"}) for s in group)


def plan_shapes(
    sizes: Sequence[Sizes], *, resolution: int = 8, count_base: int = 4, split_objects: int = SPLIT_OBJECTS
) -> list[tuple[int, int, Sizes]]:
    """Classes of chunks, ``[(min_events, max_events, target sizes), ...]``, the smallest target first.

    Chunks with ``n_max / 2**(k+1) < n <= n_max / 2**k`` events form class ``k``
    (``n_max``: the largest chunk); each class is padded to one shape. A class whose
    padding would add more than ``split_objects`` objects is split further by the chunks'
    numbers of objects (all collections together) in the same way: chunks of a sample with
    few jets are then not padded to the combinations of a sample with many (one more
    compiled program instead).
    """
    if count_base < 2:
        raise InputError(f"count_base must be an integer >= 2, got {count_base!r}")
    sizes = [s for s in sizes if s["events"] > 0]
    if not sizes:
        return []

    def octave(largest: int, n: int) -> int:
        return -1 if n == 0 else int(math.floor(math.log2(largest / n)))

    largest = max(s["events"] for s in sizes)
    classes: dict[int, list[Sizes]] = {}
    for s in sizes:
        classes.setdefault(octave(largest, s["events"]), []).append(s)
    out = []
    for group in classes.values():
        target = _target(group, resolution, count_base)
        if len(group) == 1 or _waste(group, target) <= split_objects:
            out.append((group, target))
            continue
        most = max(_objects(s) for s in group)
        parts: dict[int, list[Sizes]] = {}
        for s in group:
            parts.setdefault(octave(most, _objects(s)), []).append(s)
        out.extend((part, _target(part, resolution, count_base)) for part in parts.values())
    out.sort(key=lambda item: (_objects(item[1]), item[1]["events"]))
    return [(min(s["events"] for s in group), max(s["events"] for s in group), target) for group, target in out]


def _pad0(x: object, size: int) -> np.ndarray:
    x = np.asarray(x)
    if x.shape[0] >= size:
        return x
    return np.concatenate([x, np.zeros((size - x.shape[0],) + x.shape[1:], dtype=x.dtype)])


def _pad_jagged(c: Jagged, size: int, per_event: int, n_events: int, n_padded: int) -> Jagged:
    extra = np.arange(size - c.n_objects)
    return Jagged(
        fields={name: _pad0(v, size) for name, v in c.fields.items()},
        segment_ids=np.concatenate([np.asarray(c.segment_ids), n_events + extra // per_event]).astype(np.int32),
        local_index=np.concatenate([np.asarray(c.local_index), extra % per_event]).astype(np.int32),
        n_events=n_padded,
        max_count=per_event,
    )


def _shift(
    index: object, sources: Sequence[str], before: Mapping[str, Jagged], after: Mapping[str, Jagged]
) -> np.ndarray:
    """Indices into the concatenation of ``sources`` before padding -> after padding."""
    index = np.asarray(index).astype(np.int64)
    out = np.zeros_like(index)
    start, start_padded = 0, 0
    for name in sources:
        n = before[name].n_objects
        inside = (index >= start) & (index < start + n)
        out[inside] = index[inside] - start + start_padded
        start, start_padded = start + n, start_padded + after[name].n_objects
    return out.astype(np.int32)


def _pad_runs(runs: Jagged, n_combos: int, n_runs: int, cap: int) -> Jagged:
    """One run per padding pair (``n_combos`` pairs in all), then empty runs up to ``n_runs``."""
    extra = n_combos - runs.n_objects
    return Jagged(
        fields={},
        segment_ids=np.concatenate([np.asarray(runs.segment_ids), runs.n_events + np.arange(extra)]).astype(np.int32),
        local_index=np.concatenate([np.asarray(runs.local_index), np.zeros(extra)]).astype(np.int32),
        n_events=n_runs,
        max_count=cap,
    )


def _sources(spec: CandidateSpec) -> tuple[str, ...]:
    return tuple(r.obj for r in spec.refs) if spec.kind == "m4l" else (spec.refs[0].obj,)


def _pad_kernel(kernel: BinnedKernel, size: int) -> BinnedKernel:
    return dataclasses.replace(kernel, first_bin=_pad0(kernel.first_bin, size), fractions=_pad0(kernel.fractions, size))


def pad_sample_data(
    data: SampleData,
    target: Sizes,
    *,
    defs: Mapping[str, ObjectDef],
    specs: Mapping[str, CandidateSpec],
    kernel_entries: Mapping[str, str | None],
) -> SampleData:
    """``data`` (one chunk) padded to ``target`` sizes (from :func:`plan_shapes`) with zero-weight events.

    Args:
        data: the chunk's static structure, with kernels.
        target: the sizes to pad to (each at least the chunk's own).
        defs: object definitions (the members of unions).
        specs: candidate specs (the collections their ``members`` index).
        kernel_entries: region -> the candidate key whose combinations its kernel
            has one entry per, or ``None`` for one entry per event.

    Returns:
        The padded :class:`SampleData` with NumPy leaves.
    """
    n, n_padded = int(np.shape(data.weight)[0]), int(target["events"])
    objects = {k: _pad_jagged(c, *target[("objects", k)], n, n_padded) for k, c in data.objects.items()}
    union_index = {
        k: _pad0(_shift(v, defs[k].union, data.objects, objects), objects[k].n_objects)
        for k, v in data.union_index.items()
    }
    candidates = {}
    for key, cands in data.candidates.items():
        combos = _pad_jagged(cands.combos, *target[("combos", key)], n, n_padded)
        members = np.asarray(cands.members)
        shifted = _shift(members.reshape(-1), _sources(specs[key]), data.objects, objects).reshape(members.shape)
        runs = None if cands.runs is None else _pad_runs(cands.runs, combos.n_objects, *target[("runs", key)])
        candidates[key] = Candidates(combos, _pad0(shifted, combos.n_objects), runs)

    def entries(region: str) -> int:
        key = kernel_entries.get(region)
        return n_padded if key is None else candidates[key].combos.n_objects

    return dataclasses.replace(
        data,
        objects=objects,
        union_index=union_index,
        events={k: _pad0(v, n_padded) for k, v in data.events.items()},
        weight=_pad0(data.weight, n_padded),
        sample=_pad0(data.sample, n_padded),
        candidates=candidates,
        kernels={r: _pad_kernel(k, entries(r)) for r, k in data.kernels.items()},
        hard_kernels={r: _pad_kernel(k, entries(r)) for r, k in data.hard_kernels.items()},
    )


def _fits(sizes: Sizes, target: Sizes) -> bool:
    if sizes.keys() != target.keys():
        return False
    return all(sizes[p][0] <= target[p][0] and sizes[p][1] <= target[p][1] for p in sizes if p != "events")


@dataclass(frozen=True)
class ShapePadder:
    """``data -> padded data``: the ``pad`` of :class:`~diffhep.execute.ChunkedStep` / ``DaskStep`` (picklable).

    Attributes:
        classes: from :func:`plan_shapes`.
        defs, specs, kernel_entries: as :func:`pad_sample_data` needs them.
        resolution, count_base: for a chunk outside every class (padded on its own).
    """

    classes: tuple[tuple[int, int, Sizes], ...]
    defs: Mapping[str, ObjectDef]
    specs: Mapping[str, CandidateSpec]
    kernel_entries: Mapping[str, str | None]
    resolution: int = 8
    count_base: int = 4

    def target(self, sizes: Sizes) -> Sizes:
        """The smallest class target ``sizes`` fits in, else its own bucketed sizes."""
        for low, high, target in self.classes:
            if low <= sizes["events"] <= high and _fits(sizes, target):
                return target
        return plan_shapes([sizes], resolution=self.resolution, count_base=self.count_base)[0][2]

    @property
    def cache_tag(self) -> str:
        """Names this padding for :class:`~diffhep.execute.ChunkCache` (padded chunks are kept as tagged entries).

        The classes' sizes, the resolution and count base and the kernels' entries: the object and candidate
        definitions come from the analysis's config, which the cache's version already names.
        """
        parts = (self.classes, self.resolution, self.count_base, sorted(self.kernel_entries.items()))
        return "padded-" + hashlib.sha256(repr(parts).encode()).hexdigest()[:24]

    def __call__(self, data: SampleData) -> SampleData:
        sizes = sizes_of(data)
        if sizes["events"] == 0:
            return data
        return pad_sample_data(data, self.target(sizes), defs=self.defs, specs=self.specs,
                               kernel_entries=self.kernel_entries)  # fmt: skip
