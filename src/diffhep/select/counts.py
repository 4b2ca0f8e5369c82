"""From object weights to event weights: differentiable object counting.

Given per-object pass probabilities ``w`` (soft-cut weights), the number of
passing objects in an event follows a Poisson-binomial distribution: the
coefficients of the generating polynomial ``prod_i (1 - w_i + w_i x)``. We
compute them exactly, truncated at ``n_max`` with the last coefficient holding
``P(N >= n_max)`` (:mod:`diffhep.select.polytree`). With hard weights (0 or 1)
this is exactly the hard count, so soft selections converge to hard ones as the
slopes grow.

``P(no object passes) = prod_i (1 - w_i)`` has a cheaper closed form, used by
:func:`none_pass`, :func:`any_pass` and ``at_least(..., 1)``. It is computed as
a product tree, not as ``exp(sum(log1p(-w)))``, whose value and gradient are
not finite at ``w = 1``; a product tree is exact there (the gradient with
respect to ``w_i`` is ``-prod_{j != i} (1 - w_j)``, finite and correct).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from diffhep.errors import InputError
from diffhep.jagged import Jagged
from diffhep.select.polytree import dense_coefficients, tree_product

__all__ = [
    "event_product",
    "count_distribution",
    "at_least",
    "at_most",
    "exactly",
    "none_pass",
    "any_pass",
]


def _check_n(name: str, n: int, low: int = 0) -> None:
    if not isinstance(n, int) or n < low:
        raise InputError(f"{name} must be an integer >= {low}, got {n!r}")


def event_product(collection: Jagged, values: Array) -> Array:
    """Per-event product of flat object ``values``, shape ``(events,)``; 1 for empty events.

    Exact and division-free (a pairwise product tree), so gradients stay finite
    and correct where values are exactly 0.

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> j = from_awkward(ak.Array([[0.5, 0.5], [], [0.0, 2.0, 3.0]]))
        >>> event_product(j, j.values).tolist()
        [0.25, 1.0, 0.0]
    """
    return tree_product(collection, {(): values}, ())[()]


def count_distribution(collection: Jagged, weights: Array, n_max: int) -> Array:
    """Distribution of the number of passing objects per event.

    Args:
        collection: the jagged collection the weights belong to.
        weights: ``Float[Array, "objects"]`` pass probabilities in ``[0, 1]``.
        n_max: last count tracked separately.

    Returns:
        ``Float[Array, "events n_max+1"]``: column ``k < n_max`` is ``P(N = k)``,
        column ``n_max`` is ``P(N >= n_max)``. Rows sum to 1.

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> j = from_awkward(ak.Array([[0.5, 0.5], [], [1.0]]))
        >>> count_distribution(j, j.values, 2).tolist()
        [[0.25, 0.5, 0.25], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    _check_n("n_max", n_max)
    dtype = jnp.result_type(weights)
    if n_max == 0:
        return jnp.ones((collection.n_events, 1), dtype=dtype)
    poly = tree_product(collection, {(0,): 1.0 - weights, (1,): weights}, (n_max,))
    return dense_coefficients(poly, (n_max,), collection.n_events, dtype)


def none_pass(collection: Jagged, weights: Array) -> Array:
    """``P(no object passes) = prod(1 - w)`` per event (an object veto), shape ``(events,)``.

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> j = from_awkward(ak.Array([[0.5, 0.5], [], [1.0, 0.0]]))
        >>> none_pass(j, j.values).tolist()
        [0.25, 1.0, 0.0]
    """
    return event_product(collection, 1.0 - weights)


def any_pass(collection: Jagged, weights: Array) -> Array:
    """``P(at least one object passes) = 1 - prod(1 - w)`` per event, shape ``(events,)``.

    Absolute precision is that of the float type (1e-16 in float64); for tiny
    weights, ``count_distribution(...)[:, 1]`` keeps the relative precision.
    """
    return 1.0 - none_pass(collection, weights)


def at_least(collection: Jagged, weights: Array, n: int) -> Array:
    """``P(at least n objects pass)`` per event, shape ``(events,)``.

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> j = from_awkward(ak.Array([[0.5, 0.5], [], [1.0]]))
        >>> at_least(j, j.values, 1).tolist(), at_least(j, j.values, 2).tolist()
        ([0.75, 0.0, 1.0], [0.25, 0.0, 0.0])
    """
    _check_n("n", n)
    if n == 0:
        return jnp.ones((collection.n_events,), dtype=jnp.result_type(weights))
    if n == 1:
        return any_pass(collection, weights)
    return count_distribution(collection, weights, n)[:, n]


def at_most(collection: Jagged, weights: Array, n: int) -> Array:
    """``P(at most n objects pass)`` per event, shape ``(events,)``.

    Example:
        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> j = from_awkward(ak.Array([[0.5, 0.5], [], [1.0]]))
        >>> at_most(j, j.values, 1).tolist()
        [0.75, 1.0, 1.0]
    """
    _check_n("n", n)
    if n == 0:
        return none_pass(collection, weights)
    return jnp.sum(count_distribution(collection, weights, n + 1)[:, : n + 1], axis=1)


def exactly(collection: Jagged, weights: Array, n: int) -> Array:
    """``P(exactly n objects pass)`` per event, shape ``(events,)``."""
    _check_n("n", n)
    if n == 0:
        return none_pass(collection, weights)
    return count_distribution(collection, weights, n + 1)[:, n]
