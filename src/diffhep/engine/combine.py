"""One static structure for all samples and variations: concatenation, and histograms per sample.

Every sample and every variation has its own static structure, but they are
all flat buffers with segment ids, so they concatenate: events one after the
other (each with the index of its sample in ``SampleData.sample``), objects
and candidates likewise with their indices shifted. The step then runs once
over everything, and :meth:`Backend.fill_by_sample <diffhep.engine.backend.Backend.fill_by_sample>` sums
the weights into ``(samples, bins)``. The compiled program has one copy of every selection,
whatever the number of samples and variations (compilation, not the events,
dominates the cost of small analyses).
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
from diffhep.jagged import Jagged

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


def _cat(arrays: Sequence[Array]) -> Array:
    return jnp.concatenate([jnp.asarray(a) for a in arrays])


def _jagged(parts: Sequence[Jagged], event_offsets: Sequence[int]) -> Jagged:
    return Jagged(
        fields={f: _cat([p.fields[f] for p in parts]) for f in parts[0].fields},
        segment_ids=_cat([p.segment_ids + o for p, o in zip(parts, event_offsets, strict=True)]).astype(jnp.int32),
        local_index=_cat([p.local_index for p in parts]).astype(jnp.int32),
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
    return jnp.asarray(out, dtype=jnp.int32)


def _sources(spec: CandidateSpec) -> tuple[str, ...]:
    return tuple(r.obj for r in spec.refs) if spec.kind == "m4l" else (spec.refs[0].obj,)


def concatenate(
    parts: Sequence[SampleData], keys: Sequence[str], defs: Mapping[str, ObjectDef], specs: Mapping[str, CandidateSpec]
) -> SampleData:
    """All ``parts`` (one per key, without kernels) as one :class:`SampleData` with ``sample`` ids."""
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
    sample = _cat([jnp.full(p.weight.shape, v, dtype=jnp.int32) for v, p in enumerate(parts)])
    return SampleData(
        objects=objects,
        union_index=union_index,
        events={name: _cat([p.events[name] for p in parts]) for name in parts[0].events},
        weight=_cat([p.weight for p in parts]),
        sample=sample,
        candidates=candidates,
        kernels={},
        hard_kernels={},
        keys=tuple(keys),
        discrete=tuple(sorted(set.intersection(*(set(p.discrete) for p in parts)))),
    )
