"""One static structure for all samples and variations: concatenation, and histograms per sample.

Every sample and every variation has its own static structure, but they are
all flat buffers with segment ids, so they concatenate: events one after the
other (each with the index of its sample in ``SampleData.sample``), objects
and candidates likewise with their indices shifted. The step then runs once
over everything, and :meth:`Backend.fill_by_sample <diffhep.engine.backend.Backend.fill_by_sample>` sums
the weights into ``(samples, bins)``. The compiled program has one copy of every selection,
whatever the number of samples and variations (compilation, not the events,
dominates the cost of small analyses).

A variation that changes only the event weight (a b-tag weight, a normalisation:
:attr:`~diffhep.engine.systematics.Variation.weight_only`) is not concatenated: its
events would be a copy of its sample's, with the same selection in every step. It
is a row of :attr:`SampleData.varied_weight` over its sample's events instead
(zero elsewhere), filled into its own histogram with the selection and kernel of
the nominal events (:func:`diffhep.engine.regions.histogram`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.engine.builtins import Candidates, CandidateSpec
from diffhep.engine.objects import ObjectDef
from diffhep.histogram import BinnedKernel
from diffhep.jagged import Jagged, to_jax

__all__ = ["SampleData", "concatenate"]


class SampleData(eqx.Module):
    """Static structure of one sample (or one variation of it): what the step reads.

    Attributes:
        objects: object name -> :class:`~diffhep.jagged.Jagged` after require/order/union.
        union_index: union name -> ``Int[Array, "objects"]`` into its members' concatenated weights.
        events: event branch -> ``Float[Array, "events"]``.
        weight: ``Float[Array, "events"]`` normalisation x sample weight (x variation weight), events.
        sample: ``Int[Array, "events"]`` index of each event's sample in ``keys``.
        candidates: candidate key (``"trijet_mass(jets, jets.btag)"``) -> static candidates.
        kernels: region -> kernel of its static observable at the region's bandwidth.
        hard_kernels: region -> the same at bandwidth 0.
        keys: sample keys (static): sample names and ``"<sample>/<systematic>/<up|down>"``.
        discrete: (static, sorted) the names whose values are discrete, read from integer or
            boolean branches in every file: object fields as ``"muons.charge"``, event
            branches as ``"nTag"``; a comparison of only these with a parameter is the
            hard step with the sigmoid's gradient (:meth:`~diffhep.engine.backend.Backend.compare`).
        varied_weight: ``Float[Array, "rows prefix"]`` the weights of the weight-only variations
            of the first ``prefix`` events (those of the samples they vary), one row per
            variation of a sample, 0 where a sample has fewer; ``None`` without them.
        varied_sample: ``Int[Array, "rows prefix"]`` the index in ``keys`` of each entry of
            ``varied_weight``, ``len(keys)`` (no histogram) where it is 0 for want of a variation.
        varied_blocks: (static) one ``(start, stop, keys)`` per sample with weight-only
            variations: its events ``[start, stop)`` and the keys of its rows (the first ``len(keys)``).
        varied_entries: (static) candidate key -> the candidates ``(start, stop)`` of each block's events.
    """

    objects: dict[str, Jagged]
    union_index: dict[str, Array]
    events: dict[str, Array]
    weight: Array
    sample: Array
    candidates: dict[str, Candidates]
    kernels: dict[str, BinnedKernel]
    hard_kernels: dict[str, BinnedKernel]
    keys: tuple[str, ...] = eqx.field(static=True)
    discrete: tuple[str, ...] = eqx.field(static=True, default=())
    varied_weight: Array | None = None
    varied_sample: Array | None = None
    varied_blocks: tuple[tuple[int, int, tuple[str, ...]], ...] = eqx.field(static=True, default=())
    varied_entries: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = eqx.field(static=True, default=())

    def weights_of(self, key: str) -> np.ndarray:
        """The event weights of ``key`` (a sample or a variation; NumPy, in the order of its events), whether
        its events are its own (``sample == key``) or its sample's (a row of :attr:`varied_weight`)."""
        index = self.keys.index(key)
        sample = np.asarray(self.sample)
        if np.any(sample == index) or self.varied_sample is None:
            return np.asarray(self.weight)[sample == index]
        rows = np.asarray(self.varied_sample) == index
        return np.asarray(self.varied_weight)[rows]


def _cat(arrays: Sequence[Array]) -> Array:
    return to_jax(np.concatenate([np.asarray(a) for a in arrays]))  # on the host: no program per shape


def _jagged(parts: Sequence[Jagged], event_offsets: Sequence[int]) -> Jagged:
    return Jagged(
        fields={f: _cat([p.fields[f] for p in parts]) for f in parts[0].fields},
        segment_ids=_cat([np.asarray(p.segment_ids, np.int32) + o for p, o in zip(parts, event_offsets, strict=True)]),
        local_index=_cat([np.asarray(p.local_index, np.int32) for p in parts]),
        n_events=sum(p.n_events for p in parts),
        max_count=max(p.max_count for p in parts),
    )


def _offsets(sizes: Sequence[int]) -> list[int]:
    return [int(x) for x in np.concatenate([[0], np.cumsum(sizes)])[:-1]]


def _remap(index: Array, sources: Sequence[str], parts: Sequence[SampleData], v: int) -> Array:
    """Indices of variant ``v`` into the concatenation of its ``sources`` -> into the concatenation of all variants'."""
    index = np.asarray(index).astype(np.int64)
    out = np.empty_like(index)
    start_local, start_global = 0, 0
    for name in sources:
        sizes = [p.objects[name].n_objects for p in parts]
        n_v = sizes[v]
        inside = (index >= start_local) & (index < start_local + n_v)
        out[inside] = index[inside] - start_local + start_global + sum(sizes[:v])
        start_local += n_v
        start_global += sum(sizes)
    return to_jax(out, np.int32)


def _sources(spec: CandidateSpec) -> tuple[str, ...]:
    return tuple(r.obj for r in spec.refs) if spec.kind == "m4l" else (spec.refs[0].obj,)


def _varied(
    parts: Sequence[SampleData],
    varied: Mapping[str, tuple[int, np.ndarray]],
    order: Sequence[str],
    specs: Mapping[str, CandidateSpec],
) -> dict[str, object]:
    """The ``varied_*`` fields of :class:`SampleData`: variation key -> (index of the part whose events
    it weights, its weights ``(events of that part,)``) as rows over the first parts' events."""
    if not varied:
        return {}
    sizes = [p.weight.shape[0] for p in parts]
    offsets = _offsets(sizes)
    last = max(index for index, _ in varied.values())
    prefix = offsets[last] + sizes[last]
    rows: dict[int, int] = {}  # part -> rows used
    for index, _ in varied.values():
        rows[index] = rows.get(index, 0) + 1
    weight = np.zeros((max(rows.values()), prefix))
    sample = np.full((max(rows.values()), prefix), len(order), dtype=np.int32)
    used: dict[int, list[str]] = {index: [] for index in rows}
    for key, (index, values) in varied.items():
        row, span = len(used[index]), slice(offsets[index], offsets[index] + sizes[index])
        weight[row, span], sample[row, span] = values, order.index(key)
        used[index].append(key)
    dtype = jnp.result_type(float)
    blocks = tuple((offsets[i], offsets[i] + sizes[i], tuple(used[i])) for i in sorted(used))
    entries = []
    for key in specs:
        counts = [p.candidates[key].combos.n_objects for p in parts]
        starts = _offsets(counts)
        entries.append((key, tuple((starts[i], starts[i] + counts[i]) for i in sorted(used))))
    return {
        "varied_weight": to_jax(weight, dtype),
        "varied_sample": to_jax(sample),
        "varied_blocks": blocks,
        "varied_entries": tuple(entries),
    }


def concatenate(
    parts: Sequence[SampleData],
    keys: Sequence[str],
    defs: Mapping[str, ObjectDef],
    specs: Mapping[str, CandidateSpec],
    *,
    varied: Mapping[str, tuple[int, np.ndarray]] | None = None,
    order: Sequence[str] | None = None,
) -> SampleData:
    """All ``parts`` (one per key, without kernels) as one :class:`SampleData` with ``sample`` ids.

    ``varied``: weight-only variations, key -> (index of the part whose events they weight,
    their weights, float64, one per event of that part); they become rows of
    :attr:`SampleData.varied_weight`. ``order``: the keys of the result (default ``keys``, then
    ``varied``'s), each of ``keys`` and ``varied`` once.
    """
    varied = dict(varied or {})
    order = tuple(order if order is not None else (*keys, *varied))
    if sorted(order) != sorted([*keys, *varied]):
        raise ValueError(f"order {order} is not the keys {[*keys, *varied]}")
    event_offsets = _offsets([p.weight.shape[0] for p in parts])
    objects = {name: _jagged([p.objects[name] for p in parts], event_offsets) for name in parts[0].objects}
    union_index = {
        name: _cat([_remap(p.union_index[name], defs[name].union, parts, v) for v, p in enumerate(parts)])
        for name in parts[0].union_index
    }
    candidates = {}
    for key, spec in specs.items():
        cands = [p.candidates[key] for p in parts]
        members = _cat([_remap(c.members, _sources(spec), parts, v) for v, c in enumerate(cands)])
        runs = None
        if cands[0].runs is not None:
            runs = _jagged([c.runs for c in cands], _offsets([c.runs.n_events for c in cands]))
        candidates[key] = Candidates(
            _jagged([c.combos for c in cands], event_offsets), members.reshape(-1, cands[0].members.shape[1]), runs
        )
    sample = _cat([np.full(p.weight.shape, order.index(k), dtype=np.int32) for k, p in zip(keys, parts, strict=True)])
    return SampleData(
        objects=objects,
        union_index=union_index,
        events={name: _cat([p.events[name] for p in parts]) for name in parts[0].events},
        weight=_cat([p.weight for p in parts]),
        sample=sample,
        candidates=candidates,
        kernels={},
        hard_kernels={},
        keys=order,
        discrete=tuple(sorted(set.intersection(*(set(p.discrete) for p in parts)))),
        **_varied(parts, varied, order, specs),  # type: ignore[arg-type]
    )
