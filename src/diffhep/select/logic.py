"""Logic on soft weights: AND, OR, NOT of cuts, for objects or for events.

A weight ``w`` in ``[0, 1]`` reads as the probability that a cut passes; cuts
are combined as if they were independent: ``and_(a, b) = a b``,
``or_(a, b) = 1 - (1 - a)(1 - b)``, ``not_(a) = 1 - a``. With hard weights
(0 or 1) these are exactly boolean AND, OR and NOT, and De Morgan's laws hold
for any weights. The functions are elementwise, so they combine object weights
(``(objects,)``) and event weights (``(events,)``) alike, with broadcasting.

Two cuts on the *same* variable are not independent (``and_(a, a) = a**2``,
not ``a``): combine them into one cut (for example :func:`soft_window`) instead.
"""

from __future__ import annotations

import functools

from jax import Array

from diffhep.errors import InputError

__all__ = ["and_", "or_", "not_", "all_of", "any_of"]


def and_(a: Array, b: Array) -> Array:
    """Soft AND: ``a * b``, broadcast shape of ``a`` and ``b``.

    Example:
        >>> import jax.numpy as jnp
        >>> and_(jnp.array([0.0, 1.0, 0.5]), jnp.array([1.0, 1.0, 0.5])).tolist()
        [0.0, 1.0, 0.25]
    """
    return a * b


def or_(a: Array, b: Array) -> Array:
    """Soft OR: ``1 - (1 - a)(1 - b)`` (independent cuts), broadcast shape.

    Example:
        >>> import jax.numpy as jnp
        >>> or_(jnp.array([0.0, 1.0, 0.5]), jnp.array([0.0, 0.0, 0.5])).tolist()
        [0.0, 1.0, 0.75]
    """
    return 1.0 - (1.0 - a) * (1.0 - b)


def not_(a: Array) -> Array:
    """Soft NOT: ``1 - a``, shape of ``a``."""
    return 1.0 - a


def _check(name: str, weights: tuple[Array, ...]) -> None:
    if not weights:
        raise InputError(f"{name}() needs at least one weight array, got none")


def all_of(*weights: Array) -> Array:
    """Soft AND of any number of weights: their product, broadcast shape.

    Example:
        >>> import jax.numpy as jnp
        >>> all_of(jnp.array([1.0, 0.5]), jnp.array([1.0, 0.5]), jnp.array([0.0, 1.0])).tolist()
        [0.0, 0.25]
    """
    _check("all_of", weights)
    return functools.reduce(and_, weights)


def any_of(*weights: Array) -> Array:
    """Soft OR of any number of weights: ``1 - prod(1 - w)``, broadcast shape.

    Example:
        >>> import jax.numpy as jnp
        >>> any_of(jnp.array([0.0, 0.5]), jnp.array([0.0, 0.5]), jnp.array([1.0, 0.0])).tolist()
        [1.0, 0.75]
    """
    _check("any_of", weights)
    return not_(all_of(*(not_(w) for w in weights)))
