"""Per-event reductions of flat object values: hard, smooth and soft-logical.

Every function takes a :class:`~diffhep.jagged.Jagged` (only its structure:
``segment_ids``, ``local_index``, ``n_events``) and flat ``values`` of shape
``(objects,)``, and returns ``(events,)`` (or ``(objects,)`` for
:func:`softmax`). They use ``jax.ops.segment_*`` on the flat buffers, so the
memory they need is O(objects) (``O(objects * log2(max_count))`` for products),
never ``events x max_count``; they jit, vmap and differentiate (forward and
reverse, any order), with no host synchronisation.

Conventions for empty events (as in Awkward with ``fill_none``):

* :func:`mean` gives 0 (also when the weights of an event sum to 0);
* :func:`minimum`, :func:`maximum`, :func:`smooth_min`, :func:`smooth_max`
  give ``fill`` (``+inf`` / ``-inf`` by default);
* :func:`segment_prod` and :func:`soft_all` give 1, :func:`soft_any` gives 0
  (``ak.all`` / ``ak.any`` of an empty list).

The smooth versions tend to the hard ones as ``temperature -> 0``:
``0 <= smooth_max - max <= temperature * log(count)``.

Gradient note: ``jax.ops.segment_prod`` has no derivative at all (JAX raises
``NotImplementedError: scatter_mul gradients are only implemented if
unique_indices=True``), and ``exp(sum(log w))`` is NaN at ``w = 0``.
:func:`segment_prod` is instead a segmented scan of plain multiplications in
``log2(max_count)`` steps: exact, and its derivatives of every order are finite
when a weight is exactly 0 or 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from jax import Array

from diffhep.errors import InputError

if TYPE_CHECKING:
    from diffhep.jagged.core import Jagged

__all__ = [
    "segment_sum",
    "count",
    "mean",
    "minimum",
    "maximum",
    "smooth_max",
    "smooth_min",
    "softmax",
    "segment_prod",
    "soft_all",
    "soft_any",
]


def _check_temperature(temperature: float | Array) -> None:
    if isinstance(temperature, (int, float)) and not temperature > 0:
        raise InputError(f"temperature must be > 0, got {temperature!r}")


def segment_sum(jagged: Jagged, values: Any) -> Any:
    """Per-event sum of flat ``values``, ``(objects,) -> (events,)``; 0 for empty.

    ``values`` may be a pytree of ``(objects,)`` arrays (e.g. a
    :class:`~diffhep.jagged.FourVector`: the per-event vector sum).
    """
    return jax.tree.map(
        lambda v: jax.ops.segment_sum(v, jagged.segment_ids, num_segments=jagged.n_events, indices_are_sorted=True),
        values,
    )


def count(jagged: Jagged, weights: Array | None = None) -> Array:
    """Per-event (weighted) number of objects, ``Float[Array, "events"]``."""
    if weights is None:
        weights = jnp.ones(jagged.segment_ids.shape, dtype=jnp.result_type(float))
    return segment_sum(jagged, weights)


def _nonempty(jagged: Jagged) -> Array:
    ones = jnp.ones(jagged.segment_ids.shape, dtype=jnp.int32)
    return segment_sum(jagged, ones) > 0


def mean(jagged: Jagged, values: Array, weights: Array | None = None) -> Array:
    """Per-event (weighted) mean of ``values``, ``(events,)``.

    ``sum(w * v) / sum(w)`` with ``w = 1`` by default. Events with no object, or
    whose weights sum to exactly 0, give 0 (with a zero, finite gradient).

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> j = from_awkward(ak.Array([[1.0, 3.0], [], [2.0]]))
        >>> j.mean(j.values).tolist()
        [2.0, 0.0, 2.0]
    """
    if weights is None:
        num, den = segment_sum(jagged, values), count(jagged).astype(jnp.result_type(values))
    else:
        num, den = segment_sum(jagged, weights * values), segment_sum(jagged, weights)
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1), 0)


def maximum(jagged: Jagged, values: Array, initial: float = -jnp.inf, *, fill: float | None = None) -> Array:
    """Per-event maximum of ``values``, ``(events,)``.

    Args:
        jagged: the collection ``values`` belong to.
        values: ``(objects,)`` flat values.
        initial: lower bound included in every maximum (as NumPy's ``initial``);
            the result of an empty event when ``fill`` is not given.
        fill: result for empty events (default: ``initial``).

    The gradient flows to the maximal object (shared among exact ties).
    """
    out = jnp.maximum(
        jax.ops.segment_max(values, jagged.segment_ids, num_segments=jagged.n_events, indices_are_sorted=True),
        initial,
    )
    if fill is None:
        return out
    return jnp.where(_nonempty(jagged), out, fill)


def minimum(jagged: Jagged, values: Array, initial: float = jnp.inf, *, fill: float | None = None) -> Array:
    """Per-event minimum of ``values``, ``(events,)``; see :func:`maximum`."""
    return -maximum(jagged, -values, -initial, fill=None if fill is None else -fill)


def _event_max(jagged: Jagged, values: Array) -> Array:
    """Per-event max with ``stop_gradient``, 0 for empty events (a finite shift)."""
    m = jax.lax.stop_gradient(
        jax.ops.segment_max(values, jagged.segment_ids, num_segments=jagged.n_events, indices_are_sorted=True)
    )
    return jnp.where(jnp.isfinite(m), m, 0)


def smooth_max(jagged: Jagged, values: Array, temperature: float | Array, *, fill: float = -jnp.inf) -> Array:
    """Smooth per-event maximum ``T * log(sum(exp(v / T)))``, ``(events,)``.

    Computed stably as ``m + T * log(sum(exp((v - m) / T)))`` with ``m`` the
    per-event maximum under ``stop_gradient`` (the shift cancels exactly, so
    the gradient is unchanged: ``d/dv = softmax(v / T)``, always finite).
    ``max <= smooth_max <= max + T * log(count)``; empty events give ``fill``.

    Args:
        jagged: the collection ``values`` belong to.
        values: ``(objects,)`` finite values (units of ``values``).
        temperature: ``T > 0``, same units as ``values``; may be traced
            (e.g. ``vmap``-ed over an annealing schedule).
        fill: result for empty events.

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> j = from_awkward(ak.Array([[1.0, 3.0], [], [2.0]]))
        >>> [round(x, 4) for x in j.smooth_max(j.values, 0.1, fill=0.0).tolist()]
        [3.0, 0.0, 2.0]
    """
    _check_temperature(temperature)
    m = _event_max(jagged, values)
    total = segment_sum(jagged, jnp.exp((values - m[jagged.segment_ids]) / temperature))
    ok = total > 0
    return jnp.where(ok, m + temperature * jnp.log(jnp.where(ok, total, 1)), fill)


def smooth_min(jagged: Jagged, values: Array, temperature: float | Array, *, fill: float = jnp.inf) -> Array:
    """Smooth per-event minimum ``-T * log(sum(exp(-v / T)))``; see :func:`smooth_max`."""
    return -smooth_max(jagged, -values, temperature, fill=-fill)


def softmax(jagged: Jagged, values: Array, temperature: float | Array = 1.0) -> Array:
    """Per-object weights ``exp(v / T) / sum_event(exp(v / T))``, ``(objects,)``.

    The weights of every non-empty event sum to 1; as ``T -> 0`` they tend to 1
    on the event's maximal object and 0 elsewhere. A soft "choose the best
    candidate": ``jagged.sum(jagged.softmax(score, T) * x)`` is ``x`` of the
    highest-``score`` object, smoothly. Stable: the per-event maximum is
    subtracted (under ``stop_gradient``) before exponentiating, so every
    denominator is >= 1.

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> j = from_awkward(ak.Array([[0.0, 0.0], [], [5.0]]))
        >>> j.softmax(j.values).tolist()
        [0.5, 0.5, 1.0]
    """
    _check_temperature(temperature)
    m = _event_max(jagged, values)
    e = jnp.exp((values - m[jagged.segment_ids]) / temperature)
    return e / segment_sum(jagged, e)[jagged.segment_ids]


def segment_prod(jagged: Jagged, values: Array) -> Array:
    """Exact per-event product of ``values``, ``(events,)``; 1 for empty events.

    A segmented inclusive scan (Hillis-Steele): ``ceil(log2(max_count))``
    steps, each multiplying every object by the partial product ``2^k``
    positions earlier in its event, then read at every event's last object.
    Only multiplications and selections: derivatives of every order are
    finite and exact, also at ``values == 0`` (unlike ``jax.ops.segment_prod``,
    which is not differentiable, or ``exp(sum(log v))``). Work and memory
    (with its gradient) O(objects * log2(max_count)); no dense
    ``events x max_count`` array. (``jax.lax.associative_scan`` would be O(objects)
    but compiles 2-3x slower, notably for second derivatives.)

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> j = from_awkward(ak.Array([[2.0, 3.0], [], [0.0, 5.0, 1.0]]))
        >>> segment_prod(j, j.values).tolist()
        [6.0, 1.0, 0.0]
    """
    n = jagged.segment_ids.shape[0]
    dtype = jnp.result_type(values)
    if n == 0:
        return jnp.ones((jagged.n_events,), dtype=dtype)
    partial = values
    step = 1
    while step < min(jagged.max_count, n):
        earlier = jnp.concatenate([jnp.ones((step,), dtype), partial[:-step]])
        partial = jnp.where(jagged.local_index >= step, partial * earlier, partial)
        step *= 2
    last = jnp.concatenate([jagged.local_index[1:] == 0, jnp.ones((1,), dtype=bool)])
    nonempty = segment_sum(jagged, last.astype(jnp.int32)) > 0
    at_last = segment_sum(jagged, jnp.where(last, partial, 0))
    return jnp.where(nonempty, at_last, jnp.ones((), dtype))


def soft_all(jagged: Jagged, weights: Array) -> Array:
    """Soft "all objects pass": ``prod(w)`` per event, ``(events,)``; 1 if empty.

    ``weights`` are per-object pass probabilities in ``[0, 1]``; for 0/1
    weights this is exactly ``ak.all``. Finite gradients at 0 and 1
    (see :func:`segment_prod`).
    """
    return segment_prod(jagged, weights)


def soft_any(jagged: Jagged, weights: Array) -> Array:
    """Soft "any object passes": ``1 - prod(1 - w)`` per event, ``(events,)``; 0 if empty.

    ``weights`` are per-object pass probabilities in ``[0, 1]``; for 0/1
    weights this is exactly ``ak.any``. Finite gradients at 0 and 1.

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> j = from_awkward(ak.Array([[0.5, 0.5], [], [1.0, 0.0]]))
        >>> j.soft_any(j.values).tolist()
        [0.75, 0.0, 1.0]
    """
    return 1 - segment_prod(jagged, 1 - weights)
