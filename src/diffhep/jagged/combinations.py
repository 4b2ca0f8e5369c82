"""Combinations of objects within an event (pairs, triplets, pairs of pairs).

Which objects form a candidate (a Z from two leptons, a top from three jets) is
static structure: the index arrays are computed once on the host with
``ak.combinations`` / ``ak.cartesian`` on the flat object indices, and stored
as :class:`Combinations`: ``members`` (flat indices into the parent
collections) plus ``combos``, a :class:`~diffhep.jagged.Jagged` over the
combinations, so every reduction (``sum``, ``count``, ``softmax``,
``smooth_max``, ``soft_any``, ...) and :func:`~diffhep.jagged.leading` apply
to combinations as they do to objects. Values then flow: gather member values,
combine member weights, sum member four-vectors, all O(combos) gathers.

Memory: a collection with ``c`` objects in an event has ``C(c, n)``
combinations (``~c^n / n!``), so one long event can dominate; cut the parent
collection statically (:func:`~diffhep.jagged.keep`) or bound ``c`` before
combining. The flat layout never builds an ``events x objects^n`` dense array.

Nested candidates compose: ``zz = combinations(pairs.combos, 2)`` pairs the
pairs; ``pairs.members[zz.members]`` gives the ``(zz, 2, 2)`` leptons, and
``zz.sum_members(pairs.sum_members(p4))`` the four-lepton vector.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.errors import InputError
from diffhep.jagged.core import Jagged, structure_from_counts
from diffhep.jagged.order import keep as _keep_objects

__all__ = ["Combinations", "combinations", "cartesian"]


class Combinations(eqx.Module):
    """Static combinations of ``n`` objects per event, as flat member indices.

    Attributes:
        members: ``Int[Array, "combos n"]``: column ``k`` holds flat object
            indices into the parent collection of slot ``k`` (the same parent
            for :func:`combinations`, one per collection for :func:`cartesian`).
        local_members: ``Int[Array, "combos n"]``: the same members as
            positions within their event (0 = first object of the event),
            what ``ak.argcombinations`` / ``ak.argcartesian`` return.
        combos: :class:`~diffhep.jagged.Jagged` over the combinations (event of
            each combination, its index in the event, ``n_events``,
            ``max_count``); no fields until you add some with ``with_field``.

    Slot values: methods taking ``*values`` accept one value (used for every
    slot, for :func:`combinations`) or one per slot (for :func:`cartesian`);
    each is a ``(objects,)`` array of the slot's parent or a pytree of them
    (e.g. a :class:`~diffhep.jagged.FourVector`).
    """

    members: Array
    local_members: Array
    combos: Jagged

    @property
    def n(self) -> int:
        """Number of objects per combination (static)."""
        return int(self.members.shape[1])

    def _per_slot(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        if len(values) == 1:
            return values * self.n
        if len(values) != self.n:
            raise InputError(f"combinations of {self.n} objects take 1 or {self.n} value arrays, got {len(values)}")
        return values

    def gather(self, *values: Any) -> Any:
        """Member values, pytree of ``(combos, n)`` arrays."""
        slots = self._per_slot(values)
        return jax.tree.map(
            lambda *vs: jnp.stack([v[self.members[:, k]] for k, v in enumerate(vs)], axis=1),
            *slots,
        )

    def sum_members(self, *values: Any) -> Any:
        """Sum over members, pytree of ``(combos,)`` (e.g. the candidate four-vector)."""
        slots = self._per_slot(values)

        def total(*vs: Array) -> Array:
            out = vs[0][self.members[:, 0]]
            for k, v in enumerate(vs[1:], start=1):
                out = out + v[self.members[:, k]]
            return out

        return jax.tree.map(total, *slots)

    def weight(self, *weights: Array) -> Array:
        """Weight of each combination, the product of its members' weights, ``(combos,)``.

        Plain multiplications of ``n`` gathered factors: finite gradients at
        weights 0 and 1. With per-object pass probabilities, this is the
        probability that every member passes (members assumed independent).
        """
        slots = self._per_slot(weights)
        out = slots[0][self.members[:, 0]]
        for k, w in enumerate(slots[1:], start=1):
            out = out * w[self.members[:, k]]
        return out

    def keep(self, mask: Any) -> Combinations:
        """Keep combinations with a static host ``mask`` ``(combos,)`` (e.g. opposite charge)."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.combos.n_objects,):
            raise InputError(f"keep mask must have shape (combos,) = ({self.combos.n_objects},), got {mask.shape}")
        return Combinations(
            members=self.members[jnp.asarray(np.flatnonzero(mask))],
            local_members=self.local_members[jnp.asarray(np.flatnonzero(mask))],
            combos=_keep_objects(self.combos, mask),
        )


def _global_index(jagged: Jagged) -> ak.Array:
    return ak.unflatten(np.arange(jagged.n_objects, dtype=np.int64), jagged.counts())


def _from_records(records: ak.Array, parents: tuple[Jagged, ...]) -> Combinations:
    counts = ak.to_numpy(ak.num(records, axis=1))
    columns = ak.unzip(records)
    members = np.stack([ak.to_numpy(ak.flatten(c, axis=1)).astype(np.int32) for c in columns], axis=1).reshape(
        -1, len(parents)
    )
    local = (
        np.stack([np.asarray(p.local_index)[members[:, k]] for k, p in enumerate(parents)], axis=1)
        .reshape(-1, len(parents))
        .astype(np.int32)
    )
    segment_ids, local_index = structure_from_counts(counts)
    combos = Jagged(
        fields={},
        segment_ids=jnp.asarray(segment_ids),
        local_index=jnp.asarray(local_index),
        n_events=len(counts),
        max_count=int(counts.max()) if len(counts) else 0,
    )
    return Combinations(members=jnp.asarray(members), local_members=jnp.asarray(local), combos=combos)


def combinations(jagged: Jagged, n: int, *, replacement: bool = False) -> Combinations:
    """All ``n``-object combinations within each event (host, once), as ``ak.argcombinations``.

    Combinations are ordered as in Awkward (lexicographically by position:
    ``(0,1), (0,2), (1,2)`` for three objects); members within a combination
    keep the collection's order. Memory grows as ``objects^n`` per event.

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> j = from_awkward(ak.Array([[1.0, 2.0, 4.0], [], [8.0]]))
        >>> pairs = combinations(j, 2)
        >>> pairs.sum_members(j.values).tolist(), pairs.combos.count().tolist()
        ([3.0, 5.0, 6.0], [3.0, 0.0, 0.0])
    """
    if n < 1:
        raise InputError(f"combinations need n >= 1 objects, got {n}")
    records = ak.combinations(_global_index(jagged), n, axis=1, replacement=replacement)
    return _from_records(records, (jagged,) * n)


def cartesian(*collections: Jagged) -> Combinations:
    """One object from each collection, every choice within an event (``ak.argcartesian``).

    Slot ``k`` of ``members`` indexes ``collections[k]``. Collections may be
    objects or combinations (``pairs.combos``), e.g. an electron pair with a
    muon pair. Memory grows as the product of the counts per event.

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> e = from_awkward(ak.Array([[1.0, 2.0], [3.0]]))
        >>> mu = from_awkward(ak.Array([[10.0], []]))
        >>> cartesian(e, mu).sum_members(e.values, mu.values).tolist()
        [11.0, 12.0]
    """
    if len(collections) < 2:
        raise InputError(f"cartesian needs at least 2 collections, got {len(collections)}")
    n_events = {c.n_events for c in collections}
    if len(n_events) != 1:
        raise InputError(f"cartesian needs collections with the same number of events, got {sorted(n_events)}")
    records = ak.cartesian([_global_index(c) for c in collections], axis=1)
    return _from_records(records, collections)
