"""Bounds as a transform: cut values inside ``(low, high)`` <-> unconstrained real variables.

The optimiser moves ``u`` on the real line; the cut value is
``low + (high - low) * sigmoid(u)``, so bounds hold by construction, without
clipping, and every cut moves on a comparable scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from jax import Array

from diffhep.config.parameters import CutParameter

__all__ = ["to_unconstrained", "from_unconstrained"]


def to_unconstrained(params: Sequence[CutParameter], values: Mapping[str, float]) -> dict[str, Array]:
    """Map cut values inside their bounds to the real line (inverse of :func:`from_unconstrained`)."""
    # Strongly typed (not weak) so that a jitted step sees the same dtype at
    # every call and compiles once.
    dtype = jnp.result_type(float)
    out = {}
    for p in params:
        frac = (jnp.asarray(values[p.name], dtype=dtype) - p.low) / (p.high - p.low)
        out[p.name] = (jnp.log(frac) - jnp.log1p(-frac)).astype(dtype)
    return out


def from_unconstrained(params: Sequence[CutParameter], u: Mapping[str, Array]) -> dict[str, Array]:
    """Cut values ``low + (high - low) * sigmoid(u)``: bounds hold by construction."""
    return {p.name: p.low + (p.high - p.low) * jax.nn.sigmoid(u[p.name]) for p in params}
