"""The static-structure jagged pytree: the one place where Awkward meets JAX.

*Structure is static, values flow.* Soft cuts give weights and never drop
objects, so the number of objects per event never changes while cut values are
optimised. A :class:`Jagged` therefore stores a collection of variable-length
lists (muons, jets, ...) as

* ``fields``: flat JAX arrays, one per field, each ``Float[Array, "objects"]``;
* ``segment_ids``: ``Int[Array, "objects"]``, the event each object belongs to
  (non-decreasing);
* ``local_index``: ``Int[Array, "objects"]``, the object's position in its event;
* ``n_events`` and ``max_count``: static Python ints (pytree metadata).

All of it is built once from an Awkward Array (NumPy- or JAX-backed) by
:func:`from_awkward`; the differentiable stages then work on flat buffers with
``jax.ops.segment_*`` reductions, so they can be ``jax.jit``-ed, ``vmap``-ed,
differentiated and run on a GPU, which Awkward's (deprecated) JAX backend
cannot do.
"""

from __future__ import annotations

from collections.abc import Mapping

import awkward as ak
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.errors import InputError, closest

__all__ = ["Jagged", "from_awkward", "to_awkward"]


class Jagged(eqx.Module):
    """A record collection of variable-length lists per event, as flat buffers.

    Attributes:
        fields: field name -> ``Float[Array, "objects"]`` flat values.
        segment_ids: ``Int[Array, "objects"]``, event index of every object.
        local_index: ``Int[Array, "objects"]``, index of the object inside its
            event (0 for the first, which is the leading one if the input was
            sorted).
        n_events: number of events (static).
        max_count: largest number of objects in one event (static).
    """

    fields: dict[str, Array]
    segment_ids: Array
    local_index: Array
    n_events: int = eqx.field(static=True)
    max_count: int = eqx.field(static=True)

    def __getitem__(self, name: str) -> Array:
        """Flat values of field ``name``, shape ``(objects,)``."""
        try:
            return self.fields[name]
        except KeyError:
            raise InputError(
                f"jagged collection has no field {name!r}{closest(name, self.fields)}"
            ) from None

    def __getattr__(self, name: str) -> Array:
        # Only called when normal attribute lookup fails: ``muons.pt`` reads as
        # in Awkward.
        if name.startswith("_") or name in {"fields", "segment_ids", "local_index"}:
            raise AttributeError(name)
        return self[name]

    @property
    def n_objects(self) -> int:
        """Total number of objects over all events (static)."""
        return int(self.segment_ids.shape[0])

    def with_field(self, name: str, values: Array) -> Jagged:
        """Return a copy with field ``name`` set to flat ``values`` (objects,)."""
        return eqx.tree_at(lambda j: j.fields, self, {**self.fields, name: values})

    # -- event-level <-> object-level -------------------------------------
    def broadcast(self, event_values: Array) -> Array:
        """Broadcast ``(events, ...)`` values to objects: ``(objects, ...)``."""
        return jnp.asarray(event_values)[self.segment_ids]

    def sum(self, values: Array) -> Array:
        """Per-event sum of flat ``values``; shape ``(events,)``; 0 for empty."""
        return jax.ops.segment_sum(
            values, self.segment_ids, num_segments=self.n_events, indices_are_sorted=True
        )

    def count(self, weights: Array | None = None) -> Array:
        """Per-event (weighted) number of objects, shape ``(events,)``."""
        if weights is None:
            weights = jnp.ones(self.segment_ids.shape, dtype=jnp.result_type(float))
        return self.sum(weights)

    def max(self, values: Array, initial: float = -jnp.inf) -> Array:
        """Per-event maximum, shape ``(events,)``; ``initial`` for empty events."""
        out = jax.ops.segment_max(
            values, self.segment_ids, num_segments=self.n_events, indices_are_sorted=True
        )
        return jnp.maximum(out, initial)

    def pad(self, values: Array, fill: float = 0.0, width: int | None = None) -> Array:
        """Dense ``(events, width)`` view of ``values`` padded with ``fill``.

        ``width`` defaults to :attr:`max_count`; objects beyond it are dropped.
        Costs one scatter of ``objects`` elements.
        """
        width = self.max_count if width is None else width
        dense = jnp.full((self.n_events, width), fill, dtype=jnp.result_type(values))
        return dense.at[self.segment_ids, self.local_index].set(values, mode="drop")

    def counts(self) -> np.ndarray:
        """Number of objects per event as a NumPy array (host side, not traced)."""
        return np.bincount(np.asarray(self.segment_ids), minlength=self.n_events)


def _structure(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    counts = np.asarray(counts, dtype=np.int64)
    segment_ids = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    local_index = (np.arange(offsets[-1]) - offsets[:-1][segment_ids]).astype(np.int32)
    return segment_ids, local_index


def from_awkward(
    array: ak.Array,
    *,
    fields: list[str] | None = None,
    dtype: jnp.dtype | None = None,
    sort_by: str | None = None,
    ascending: bool = False,
) -> Jagged:
    """Build a :class:`Jagged` from a jagged Awkward Array ``events x var``.

    Args:
        array: ``N * var * {field: number, ...}`` records (for example
            ``events.Muon``) or ``N * var * number``, which becomes field
            ``"values"``. NumPy- or JAX-backed.
        fields: fields to keep (default: all numeric fields).
        dtype: floating dtype of the values (default: JAX's default float).
        sort_by: field whose values order the objects in each event (computed
            once here, with Awkward; the ordering is part of the static
            structure).
        ascending: sort direction for ``sort_by`` (default: descending, leading
            object first).

    Example:
        >>> import awkward as ak
        >>> j = from_awkward(ak.Array([[{"pt": 1.0}, {"pt": 3.0}], [], [{"pt": 2.0}]]),
        ...                  sort_by="pt")
        >>> j.count().tolist(), j.pt.tolist()
        ([2.0, 0.0, 1.0], [3.0, 1.0, 2.0])
    """
    array = ak.to_backend(array, "cpu")
    if array.ndim != 2:
        raise InputError(
            f"from_awkward needs an 'events * var' jagged array, got type {array.type}"
        )
    if sort_by is not None:
        if sort_by not in ak.fields(array):
            raise InputError(
                f"cannot sort by {sort_by!r}: no such field{closest(sort_by, ak.fields(array))}"
            )
        array = array[ak.argsort(array[sort_by], axis=1, ascending=ascending)]
    names = ak.fields(array)
    if not names:
        columns = {"values": array}
    else:
        wanted = names if fields is None else fields
        for name in wanted:
            if name not in names:
                raise InputError(f"collection has no field {name!r}{closest(name, names)}")
        columns = {name: array[name] for name in wanted}
    counts = ak.to_numpy(ak.num(array, axis=1))
    segment_ids, local_index = _structure(counts)
    dtype = dtype or jnp.result_type(float)
    flat = {
        name: jnp.asarray(ak.to_numpy(ak.flatten(col, axis=1)), dtype=dtype)
        for name, col in columns.items()
    }
    return Jagged(
        fields=flat,
        segment_ids=jnp.asarray(segment_ids),
        local_index=jnp.asarray(local_index),
        n_events=len(counts),
        max_count=int(counts.max()) if len(counts) else 0,
    )


def to_awkward(jagged: Jagged, values: Array | Mapping[str, Array] | None = None) -> ak.Array:
    """Return flat object ``values`` (or all fields) as an ``events * var`` Awkward Array.

    Lossless: the result has exactly the structure the :class:`Jagged` was
    built from (after any sorting done by :func:`from_awkward`).
    """
    counts = jagged.counts()
    if values is None:
        values = jagged.fields
    if isinstance(values, Mapping):
        return ak.zip(
            {k: ak.unflatten(np.asarray(v), counts) for k, v in values.items()}
        )
    return ak.unflatten(np.asarray(values), counts)
