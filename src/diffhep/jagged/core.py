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

Elementwise math needs nothing special: fields are plain ``(objects,)`` JAX
arrays, so ``jnp`` functions and arithmetic apply directly, and derived fields
are added with :meth:`Jagged.with_field`. Event-level values ``(events,)`` meet
object-level ones through :meth:`Jagged.broadcast` (a gather by event)::

    jets = jets.with_field("pt_scaled", jets.pt * jes)            # object-level
    frac = jets.pt / jets.broadcast(jets.sum(jets.pt))             # pt / HT
    w = jax.nn.sigmoid(jets.pt - jets.broadcast(cut_per_event))    # per-event cut

Per-event reductions (``sum``, ``count``, ``mean``, ``min``, ``max``, smooth
and soft versions) are methods that call :mod:`diffhep.jagged.reduce`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import awkward as ak
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.errors import InputError, closest
from diffhep.jagged import reduce

if TYPE_CHECKING:
    from diffhep.jagged.combinations import Combinations

__all__ = ["Jagged", "from_awkward", "to_awkward", "structure_from_counts", "to_jax"]


class Jagged(eqx.Module):
    """A record collection of variable-length lists per event, as flat buffers.

    Attributes:
        fields: field name -> ``Float[Array, "objects"]`` flat values.
        segment_ids: ``Int[Array, "objects"]``, event index of every object.
        local_index: ``Int[Array, "objects"]``, index of the object inside its
            event (0 for the first, which is the leading one if the input was
            sorted).
        n_events: number of events (static).
        max_count: largest number of objects in one event (static; an upper
            bound also works: it sets the default :meth:`pad` width and the
            number of scan steps of :meth:`prod`).

    Example:
        >>> import awkward as ak
        >>> j = from_awkward(ak.Array([[{"pt": 10.0}, {"pt": 30.0}], []]))
        >>> j = j.with_field("pt2", j.pt**2)
        >>> (j.pt / j.broadcast(j.sum(j.pt))).tolist(), j.count().tolist()
        ([0.25, 0.75], [2.0, 0.0])
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
            raise InputError(f"jagged collection has no field {name!r}{closest(name, self.fields)}") from None

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
    def broadcast(self, event_values: Any) -> Any:
        """Broadcast ``(events, ...)`` values (or a pytree of them) to objects: ``(objects, ...)``.

        A gather by ``segment_ids``; combine the result elementwise with object
        fields, e.g. ``j.pt / j.broadcast(ht)`` or ``j.eta - j.broadcast(jet_eta0)``.
        """
        return jax.tree.map(lambda v: jnp.asarray(v)[self.segment_ids], event_values)

    def sum(self, values: Any) -> Any:
        """Per-event sum of flat ``values`` (or a pytree, e.g. FourVector), ``(events,)``; 0 if empty."""
        return reduce.segment_sum(self, values)

    def count(self, weights: Array | None = None) -> Array:
        """Per-event (weighted) number of objects, shape ``(events,)``."""
        return reduce.count(self, weights)

    def mean(self, values: Array, weights: Array | None = None) -> Array:
        """Per-event (weighted) mean, ``(events,)``; 0 for empty events (see ``reduce.mean``)."""
        return reduce.mean(self, values, weights)

    def max(self, values: Array, initial: float = -jnp.inf, *, fill: float | None = None) -> Array:
        """Per-event maximum, shape ``(events,)``; ``initial`` (or ``fill``) for empty events."""
        return reduce.maximum(self, values, initial, fill=fill)

    def min(self, values: Array, initial: float = jnp.inf, *, fill: float | None = None) -> Array:
        """Per-event minimum, shape ``(events,)``; ``initial`` (or ``fill``) for empty events."""
        return reduce.minimum(self, values, initial, fill=fill)

    def smooth_max(self, values: Array, temperature: float | Array, *, fill: float = -jnp.inf) -> Array:
        """Smooth maximum ``T*logsumexp(v/T)`` per event, ``(events,)`` (``reduce.smooth_max``)."""
        return reduce.smooth_max(self, values, temperature, fill=fill)

    def smooth_min(self, values: Array, temperature: float | Array, *, fill: float = jnp.inf) -> Array:
        """Smooth minimum ``-T*logsumexp(-v/T)`` per event, ``(events,)``."""
        return reduce.smooth_min(self, values, temperature, fill=fill)

    def softmax(self, values: Array, temperature: float | Array = 1.0) -> Array:
        """Per-object weights summing to 1 in each event, ``(objects,)`` (``reduce.softmax``)."""
        return reduce.softmax(self, values, temperature)

    def prod(self, values: Array) -> Array:
        """Exact per-event product, ``(events,)``; 1 for empty; finite gradients at 0."""
        return reduce.segment_prod(self, values)

    def soft_all(self, weights: Array) -> Array:
        """``prod(w)`` per event, ``(events,)``: soft "all pass"; 1 for empty events."""
        return reduce.soft_all(self, weights)

    def soft_any(self, weights: Array) -> Array:
        """``1 - prod(1 - w)`` per event, ``(events,)``: soft "any passes"; 0 for empty events."""
        return reduce.soft_any(self, weights)

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


#: JAX's own, bound at import: building host data is not one of the explicit copies a step makes (tests count
#: those by replacing ``jax.device_put``); ``jnp.asarray``, used here before, copied without it too.
_device_put = jax.device_put


def to_jax(x: Any, dtype: Any = None) -> Array:
    """Host data (NumPy, Awkward's NumPy buffers, lists) as a JAX array of ``dtype``, compiling nothing.

    ``jnp.asarray`` of a NumPy array compiles a small program per shape (``jit(stage)``, and a
    ``convert_element_type`` where the dtype changes); loading an analysis built ~50 of them, each
    traced, lowered and compiled for ~20 ms, again for every new sample size (measured on the dimuon
    template: 56 compiles in ``load()``). The conversion here is NumPy's, on the host (the same IEEE
    rounding), and ``jax.device_put`` copies the result without a program. The dtype is canonicalised
    as JAX's (``int64`` -> ``int32`` without x64). A JAX array of the dtype is returned as it is.

    >>> to_jax(np.arange(3), np.float32).tolist()
    [0.0, 1.0, 2.0]
    """
    if isinstance(x, jax.Array) and (dtype is None or x.dtype == dtype):
        return x
    # a private host copy: device_put reads its argument asynchronously (or shares it), so a change the caller
    # makes to its array afterwards could reach the JAX array (11 of 30 arrays here, 3 even with may_alias=False)
    return _device_put(np.array(x, dtype=dtype, copy=True))


def structure_from_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Host ``(segment_ids, local_index)``, both ``int32[objects]``, from ``counts[events]``."""
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
        raise InputError(f"from_awkward needs an 'events * var' jagged array, got type {array.type}")
    if sort_by is not None:
        if sort_by not in ak.fields(array):
            raise InputError(f"cannot sort by {sort_by!r}: no such field{closest(sort_by, ak.fields(array))}")
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
    segment_ids, local_index = structure_from_counts(counts)
    dtype = dtype or jnp.result_type(float)
    flat = {name: to_jax(ak.to_numpy(ak.flatten(col, axis=1)), dtype) for name, col in columns.items()}
    return Jagged(
        fields=flat,
        segment_ids=to_jax(segment_ids),
        local_index=to_jax(local_index),
        n_events=len(counts),
        max_count=int(counts.max()) if len(counts) else 0,
    )


def to_awkward(jagged: Jagged | Combinations, values: Array | Mapping[str, Array] | None = None) -> ak.Array:
    """Return flat ``values`` (or all fields) as an ``events * var`` Awkward Array.

    Lossless: the result has exactly the structure the :class:`Jagged` was
    built from (after any sorting done by :func:`from_awkward`). For
    :class:`~diffhep.jagged.Combinations`, ``values`` are per combination
    (``(combos,)``, or ``(combos, n)`` from ``gather``, giving
    ``events * var * n``); without ``values`` it returns the member indices
    *within the event* (``events * var * n``), as ``ak.argcombinations``.
    """
    if not isinstance(jagged, Jagged):  # a Combinations (not imported: combinations.py imports this module)
        if values is None:
            return to_awkward(jagged.combos, np.asarray(jagged.local_members))
        jagged = jagged.combos
    counts = jagged.counts()
    if values is None:
        values = jagged.fields
    if isinstance(values, Mapping):
        return ak.zip({k: ak.unflatten(np.asarray(v), counts) for k, v in values.items()})
    return ak.unflatten(np.asarray(values), counts)
