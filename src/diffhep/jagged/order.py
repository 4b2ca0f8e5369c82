"""Orderings and static subsets (host, once) and leading-k dense views (device).

An ordering that the optimised parameters do not change (objects by pt, before
an energy-scale nuisance; by a b-tag score) is part of the static structure:
:func:`sort` and :func:`keep` compute it once on the host with NumPy and return
a new :class:`~diffhep.jagged.Jagged` whose flat buffers are reordered or
subset. Values may still be traced afterwards.

:func:`leading` and :func:`first` then read the first ``k`` objects of every
event in the current order as a dense ``(events, k)`` array with a mask of the
existing ones: one scatter of O(objects) plus the ``events x k`` output.
:func:`dense_to_awkward` goes back to ``events * var`` without loss.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.errors import InputError, closest
from diffhep.jagged.core import Jagged, structure_from_counts

__all__ = ["Leading", "sort", "keep", "leading", "first", "dense_to_awkward"]


class Leading(NamedTuple):
    """Dense view of the first ``k`` objects of every event.

    Attributes:
        values: pytree of ``(events, k)`` arrays (the structure of the input
            values), ``fill`` where the event has fewer than ``k`` objects.
        mask: ``Bool[Array, "events k"]``, True where the object exists.
    """

    values: Any
    mask: Array


def _host(values: Any, what: str) -> np.ndarray:
    if isinstance(values, jax.core.Tracer):
        raise InputError(
            f"{what} needs concrete host values (orderings and subsets are static "
            "structure, computed once outside jit/grad), got a traced array"
        )
    return np.asarray(values)


def _host_key(jagged: Jagged, by: str | Any) -> np.ndarray:
    if isinstance(by, str):
        if by not in jagged.fields:
            raise InputError(f"cannot sort by {by!r}: no such field{closest(by, jagged.fields)}")
        by = jagged.fields[by]
    key = _host(by, "sort")
    if key.shape != (jagged.n_objects,):
        raise InputError(f"sort key must have shape (objects,) = ({jagged.n_objects},), got {key.shape}")
    return key


def _take(jagged: Jagged, index: np.ndarray) -> Jagged:
    """New :class:`Jagged` with objects ``index`` (sorted by event), structure rebuilt."""
    segment_ids = np.asarray(jagged.segment_ids)[index]
    counts = np.bincount(segment_ids, minlength=jagged.n_events)
    seg, local = structure_from_counts(counts)
    idx = jnp.asarray(index)
    return Jagged(
        fields={name: v[idx] for name, v in jagged.fields.items()},
        segment_ids=jnp.asarray(seg),
        local_index=jnp.asarray(local),
        n_events=jagged.n_events,
        max_count=int(counts.max()) if len(counts) else 0,
    )


def sort(jagged: Jagged, by: str | Any, *, ascending: bool = False) -> Jagged:
    """Reorder the objects of every event by a host key (static structure).

    Args:
        jagged: the collection.
        by: a field name or a concrete ``(objects,)`` array (NumPy or a
            non-traced JAX array). Ties keep their order (stable, like
            ``ak.argsort``).
        ascending: default ``False``: largest first (leading object at
            ``local_index == 0``).

    Returns:
        A :class:`Jagged` with every field permuted; events are unchanged.
        Sort before building :func:`~diffhep.jagged.combinations` (their
        member indices refer to the order at the time they are built).

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> j = sort(from_awkward(ak.Array([[{"pt": 1.0}, {"pt": 3.0}], [{"pt": 2.0}]])), "pt")
        >>> j.pt.tolist()
        [3.0, 1.0, 2.0]
    """
    key = _host_key(jagged, by)
    segment_ids = np.asarray(jagged.segment_ids)
    if key.dtype.kind not in "fc":  # bool/unsigned keys: negate safely
        key = key.astype(np.float64)
    # np.lexsort is stable: equal keys keep their order, as ak.argsort(stable=True)
    order = np.lexsort((key if ascending else -key, segment_ids))
    return _take(jagged, order)


def keep(jagged: Jagged, mask: Any) -> Jagged:
    """Drop objects with a static host ``mask`` ``(objects,)`` (e.g. an ID flag).

    Only for selections that no parameter changes; parameter-dependent cuts
    are soft weights instead. Events are kept (possibly empty).
    """
    mask = _host(mask, "keep").astype(bool)
    if mask.shape != (jagged.n_objects,):
        raise InputError(f"keep mask must have shape (objects,) = ({jagged.n_objects},), got {mask.shape}")
    return _take(jagged, np.flatnonzero(mask))


def leading(jagged: Jagged, values: Any, k: int, *, fill: float = 0.0) -> Leading:
    """The first ``k`` objects of every event (in the current order), dense.

    Args:
        jagged: the collection (order it with :func:`sort` or
            ``from_awkward(..., sort_by=)`` first for "leading").
        values: ``(objects,)`` array or a pytree of them (e.g. a
            :class:`~diffhep.jagged.FourVector`).
        k: number of leading objects (static).
        fill: value where an event has fewer than ``k`` objects.

    Returns:
        :class:`Leading` with ``values`` of shape ``(events, k)`` and ``mask``.

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> j = from_awkward(ak.Array([[5.0, 4.0, 1.0], [], [2.0]]))
        >>> lead = leading(j, j.values, 2, fill=-1.0)
        >>> lead.values.tolist(), lead.mask.tolist()
        ([[5.0, 4.0], [-1.0, -1.0], [2.0, -1.0]], [[True, True], [False, False], [True, False]])
    """
    if k < 0:
        raise InputError(f"leading needs k >= 0, got {k}")
    dense = jax.tree.map(lambda v: jagged.pad(v, fill=fill, width=k), values)
    mask = jagged.pad(jnp.ones(jagged.segment_ids.shape, dtype=bool), fill=False, width=k)
    return Leading(dense, mask)


def first(jagged: Jagged, values: Any, *, fill: float = 0.0) -> Any:
    """Value (pytree) of the first object of every event, ``(events,)``; ``fill`` if empty."""
    return jax.tree.map(lambda v: v[:, 0], leading(jagged, values, 1, fill=fill).values)


def dense_to_awkward(values: Array, mask: Array) -> ak.Array:
    """``(events, k)`` values with a mask of existing entries -> ``events * var`` Awkward.

    Inverse of :func:`leading` for the kept objects (``ak.pad_none(x, k,
    clip=True)`` with the missing entries removed).
    """
    values, mask = np.asarray(values), np.asarray(mask, dtype=bool)
    return ak.unflatten(values[mask], mask.sum(axis=1))
