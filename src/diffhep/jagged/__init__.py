"""Jagged (ragged) collections as flat JAX buffers with static structure."""

from diffhep.jagged.core import Jagged, from_awkward, to_awkward

__all__ = ["Jagged", "from_awkward", "to_awkward"]
