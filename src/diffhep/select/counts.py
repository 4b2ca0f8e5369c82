"""From object weights to event weights: differentiable object counting.

Given per-object pass probabilities ``w`` (soft-cut weights), the number of
passing objects in an event follows a Poisson-binomial distribution. Its
probabilities are computed exactly by the standard recursion over the objects
of the event (``p_k <- p_k (1 - w) + p_{k-1} w``), truncated at ``n_max`` with
the last bucket holding ``P(N >= n_max)``. With hard weights (0 or 1) it gives
exactly the hard count, so soft selections converge to hard ones as the slopes
grow. Unlike ``prod(1 - w)`` written with logarithms, it stays finite (and its
gradient too) when a weight is exactly 0 or 1.

The recursion runs over the object positions ``0 .. max_count - 1`` with
``jax.lax.scan`` on a dense ``(events, max_count)`` view of the weights (padded
with 0, which leaves the distribution unchanged). Memory is that padded view
plus ``(events, n_max + 1)`` per step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from diffhep.jagged import Jagged

__all__ = ["count_distribution", "at_least", "exactly", "none_pass"]


def count_distribution(collection: Jagged, weights: Array, n_max: int) -> Array:
    """Distribution of the number of passing objects per event.

    Args:
        collection: the jagged collection the weights belong to.
        weights: ``Float[Array, "objects"]`` pass probabilities in ``[0, 1]``.
        n_max: last count tracked separately.

    Returns:
        ``Float[Array, "events n_max+1"]``: column ``k < n_max`` is ``P(N = k)``,
        column ``n_max`` is ``P(N >= n_max)``. Rows sum to 1.
    """
    if n_max < 0:
        raise ValueError(f"n_max must be >= 0, got {n_max}")
    dense = collection.pad(weights, fill=0.0)  # (events, max_count)
    init = jnp.zeros((collection.n_events, n_max + 1), dtype=dense.dtype).at[:, 0].set(1.0)
    if n_max == 0 or collection.max_count == 0:
        return init.at[:, n_max].set(1.0) if n_max == 0 else init

    def step(p: Array, w: Array) -> tuple[Array, None]:
        w = w[:, None]
        shifted = jnp.concatenate([jnp.zeros_like(p[:, :1]), p[:, :-1]], axis=1)
        new = p * (1.0 - w) + shifted * w
        # The last bucket absorbs: once >= n_max, it stays >= n_max.
        new = new.at[:, -1].set(p[:, -1] + p[:, -2] * w[:, 0])
        return new, None

    out, _ = jax.lax.scan(step, init, dense.T)
    return out


def at_least(collection: Jagged, weights: Array, n: int) -> Array:
    """``P(at least n objects pass)`` per event, shape ``(events,)``."""
    if n == 0:
        return jnp.ones((collection.n_events,), dtype=jnp.result_type(weights))
    return count_distribution(collection, weights, n)[:, n]


def exactly(collection: Jagged, weights: Array, n: int) -> Array:
    """``P(exactly n objects pass)`` per event, shape ``(events,)``."""
    return count_distribution(collection, weights, n + 1)[:, n]


def none_pass(collection: Jagged, weights: Array) -> Array:
    """``P(no object passes)`` per event (an object veto), shape ``(events,)``."""
    return exactly(collection, weights, 0)
