"""Pad a chunk's prepared data to a few size buckets, so that chunks share compiled code.

A :class:`~diffhep.jagged.Jagged` has static ``n_events`` and ``max_count``
and every chunk has its own number of objects, so without padding each chunk
would compile its own XLA program (5 to 25 s for the AGC ttbar step on a
loaded CPU core, growing with the chunk size). :func:`pad_to_buckets` rounds every size up to a bucket of the form
``q * 2**e`` with ``resolution < q <= 2 * resolution`` (less than ``1 /
resolution`` padding), and ``max_count`` up to a power of four (the reductions
take ``log2(max_count)`` steps, so this costs at most one step; a dense
:meth:`~diffhep.jagged.Jagged.pad` view gets up to 4x wider):

* every ``Jagged`` gets ``bucket(objects)`` objects; the padding objects have
  zero field values and belong to *padding events* appended after the real
  ones, at most ``max_count`` per event, so the structure stays valid
  (``segment_ids`` non-decreasing, ``local_index < max_count``);
* every other array whose leading axis has the length of the events or of a
  collection's objects is padded with zeros along that axis to the same size
  (event weights, kernel fractions, member indices, ...).

Zero padding is neutral when padding events have zero weight and the
histogram step gives finite values for zero-valued objects (true of the AGC
ttbar step, tested against the unpadded result). Data without a ``Jagged``, or
whose collections disagree on ``n_events``, is returned unchanged.

Example:
    >>> [bucket(n) for n in (0, 3, 9, 17, 1000, 1025)]
    [0, 3, 9, 18, 1024, 1152]
    >>> [bucket(n, resolution=1) for n in (3, 1000, 1025)]
    [4, 1024, 2048]
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

import jax
import numpy as np

from diffhep.errors import InputError
from diffhep.jagged import Jagged

__all__ = ["bucket", "pad_to_buckets", "padded_shapes"]

T = TypeVar("T")


def bucket(n: int, resolution: int = 8) -> int:
    """Smallest ``q * 2**e >= n`` with ``q <= 2 * resolution`` (``n`` itself when ``n <= 2 * resolution``).

    ``resolution`` must be a power of two; the padding is below ``1 / resolution`` of ``n``.
    """
    if resolution < 1 or resolution & (resolution - 1):
        raise InputError(f"bucket resolution must be a power of two (1, 2, 4, 8, ...), got {resolution!r}")
    if n < 0:
        raise InputError(f"bucket needs a size >= 0, got {n}")
    exponent = max((n - 1).bit_length() - resolution.bit_length(), 0) if n > 0 else 0
    step = 1 << exponent
    return -(-n // step) * step


def _round_count(max_count: int, base: int) -> int:
    """Smallest power of ``base`` that is ``>= max(max_count, 1)``."""
    out = 1
    while out < max_count:
        out *= base
    return out


def _is_array(x: Any) -> bool:
    return isinstance(x, (np.ndarray, jax.Array)) and np.ndim(x) >= 1


def _pad_axis0(x: Any, size: int) -> np.ndarray:
    x = np.asarray(x)
    if x.shape[0] == size:
        return x
    padding = np.zeros((size - x.shape[0],) + x.shape[1:], dtype=x.dtype)
    return np.concatenate([x, padding])


def _targets(collections: list[Jagged], n_events: int, resolution: int, count_base: int) -> tuple[dict[int, int], int]:
    """Leading-axis length -> padded length, and the padded number of events."""
    sizes = {c.n_objects: bucket(c.n_objects, resolution) for c in collections}
    events_needed = 1  # at least one padding event
    for c in collections:
        per_event = _round_count(c.max_count, count_base)
        events_needed = max(events_needed, math.ceil((sizes[c.n_objects] - c.n_objects) / per_event))
    n_padded = bucket(n_events + events_needed, resolution)
    sizes[n_events] = n_padded  # an object axis of the same length as the events follows them
    return sizes, n_padded


def _pad_jagged(c: Jagged, size: int, n_events: int, n_padded: int, count_base: int) -> Jagged:
    per_event = _round_count(c.max_count, count_base)
    extra = np.arange(size - c.n_objects)
    segment_ids = np.concatenate(
        [np.asarray(c.segment_ids), (n_events + extra // per_event).astype(np.asarray(c.segment_ids).dtype)]
    )
    local_index = np.concatenate(
        [np.asarray(c.local_index), (extra % per_event).astype(np.asarray(c.local_index).dtype)]
    )
    return dataclasses.replace(
        c,
        fields={name: _pad_axis0(v, size) for name, v in c.fields.items()},
        segment_ids=segment_ids,
        local_index=local_index,
        n_events=n_padded,
        max_count=per_event,
    )


def pad_to_buckets(data: T, *, resolution: int = 8, count_base: int = 4) -> T:
    """Pad ``data`` (a pytree holding :class:`Jagged` collections) to bucketed sizes.

    Args:
        data: prepared data of one chunk, e.g. a ``TtbarData``.
        resolution: power of two; sizes are rounded up by less than ``1 / resolution``
            (``1``: powers of two, fewest distinct shapes).
        count_base: ``max_count`` is rounded up to a power of this (>= 2).

    Returns:
        The same pytree with NumPy leaves padded as described in the module
        docstring; event-level results of the step gain zero-weight entries.
    """

    def is_jagged(x: Any) -> bool:
        return isinstance(x, Jagged)

    collections = [x for x in jax.tree.leaves(data, is_leaf=is_jagged) if isinstance(x, Jagged)]
    n_events = {c.n_events for c in collections}
    if len(n_events) != 1:
        return data
    if count_base < 2:
        raise InputError(f"count_base must be an integer >= 2, got {count_base!r}")
    (n,) = n_events
    sizes, n_padded = _targets(collections, n, resolution, count_base)

    def pad(x: Any) -> Any:
        if isinstance(x, Jagged):
            return _pad_jagged(x, sizes[x.n_objects], n, n_padded, count_base)
        if _is_array(x) and np.shape(x)[0] in sizes:
            return _pad_axis0(x, sizes[np.shape(x)[0]])
        return x

    return jax.tree.map(pad, data, is_leaf=is_jagged)


def padded_shapes(data: Any) -> tuple:
    """Static signature of ``data``: shapes and dtypes of the leaves plus the tree structure.

    Two chunks with equal signatures share one compiled program.
    """
    leaves, treedef = jax.tree.flatten(data)
    return (str(treedef),) + tuple((np.shape(x), str(getattr(x, "dtype", type(x)))) for x in leaves)
