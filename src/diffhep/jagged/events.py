"""A light events container: named collections and event-level fields.

``events.Jet.pt`` reads as in Awkward, but ``events.Jet`` is a
:class:`~diffhep.jagged.Jagged` of flat JAX buffers and ``events.MET_pt`` a
``Float[Array, "events"]``, so the whole :class:`Events` is a pytree that can
be passed through ``jit``, ``vmap`` and ``grad``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import awkward as ak
import equinox as eqx
import jax.numpy as jnp
from jax import Array

from diffhep.errors import InputError, closest
from diffhep.jagged.core import Jagged, from_awkward

__all__ = ["Events", "from_awkward_events"]


class Events(eqx.Module):
    """Collections and event-level values of ``n_events`` events.

    Attributes:
        collections: name -> :class:`~diffhep.jagged.Jagged` (``Jet``, ``Muon``, ...).
        fields: name -> ``Float[Array, "events"]`` (``MET_pt``, ``genWeight``, ...).
        n_events: number of events (static).
    """

    collections: dict[str, Jagged]
    fields: dict[str, Array]
    n_events: int = eqx.field(static=True)

    def __getitem__(self, name: str) -> Jagged | Array:
        """The collection or event-level field ``name``."""
        if name in self.collections:
            return self.collections[name]
        if name in self.fields:
            return self.fields[name]
        known = [*self.collections, *self.fields]
        raise InputError(f"events have no collection or field {name!r}{closest(name, known)}")

    def __getattr__(self, name: str) -> Jagged | Array:
        if name.startswith("_") or name in {"collections", "fields", "n_events"}:
            raise AttributeError(name)
        return self[name]

    def with_collection(self, name: str, collection: Jagged) -> Events:
        """Copy with collection ``name`` set (e.g. a sorted or derived one)."""
        if collection.n_events != self.n_events:
            raise InputError(f"collection {name!r} has {collection.n_events} events, expected {self.n_events}")
        return eqx.tree_at(lambda e: e.collections, self, {**self.collections, name: collection})

    def with_field(self, name: str, values: Array) -> Events:
        """Copy with event-level field ``name`` set to ``values`` ``(events,)``."""
        return eqx.tree_at(lambda e: e.fields, self, {**self.fields, name: values})


def from_awkward_events(
    events: ak.Array,
    collections: Mapping[str, Sequence[str] | None] | Sequence[str],
    event_fields: Sequence[str] = (),
    *,
    sort_by: Mapping[str, str] | None = None,
    dtype: jnp.dtype | None = None,
) -> Events:
    """Build :class:`Events` from NanoAOD-zipped Awkward events (host, once).

    Args:
        events: ``N * {Jet: var * {pt, eta, ...}, MET_pt: float, ...}`` as read
            by :func:`diffhep.io.read_events`.
        collections: collection name -> fields to keep (``None``: all numeric
            fields), or a list of collection names (all fields).
        event_fields: top-level per-event numbers to keep (``MET_pt``).
        sort_by: collection name -> field ordering its objects, descending
            (static, see :func:`~diffhep.jagged.from_awkward`).
        dtype: floating dtype of all values (default: JAX's default float).

    Example:
        >>> import awkward as ak
        >>> raw = ak.Array([{"Jet": [{"pt": 30.0}, {"pt": 50.0}], "MET_pt": 12.0},
        ...                 {"Jet": [], "MET_pt": 40.0}])
        >>> ev = from_awkward_events(raw, {"Jet": ["pt"]}, ["MET_pt"], sort_by={"Jet": "pt"})
        >>> ev.Jet.pt.tolist(), ev.MET_pt.tolist()
        ([50.0, 30.0], [12.0, 40.0])
    """
    available = ak.fields(events)
    if not isinstance(collections, Mapping):
        collections = {name: None for name in collections}
    sort_by = dict(sort_by or {})
    for name in [*collections, *event_fields, *sort_by]:
        if name not in available:
            raise InputError(f"events have no field {name!r}{closest(name, available)}")
    dtype = dtype or jnp.result_type(float)
    built = {
        name: from_awkward(
            events[name],
            fields=None if keep is None else list(keep),
            dtype=dtype,
            sort_by=sort_by.get(name),
        )
        for name, keep in collections.items()
    }
    flat: dict[str, Array] = {}
    for name in event_fields:
        column = events[name]
        if column.ndim != 1:
            raise InputError(f"event field {name!r} must be one number per event, got type {column.type}")
        flat[name] = jnp.asarray(ak.to_numpy(column), dtype=dtype)
    return Events(collections=built, fields=flat, n_events=len(events))
