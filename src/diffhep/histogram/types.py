"""The histogram value that flows between the stages."""

from __future__ import annotations

from typing import NamedTuple

from jax import Array

__all__ = ["Histogram"]


class Histogram(NamedTuple):
    """A weighted histogram.

    Attributes:
        counts: ``Float[Array, "bins"]`` sum of weights per bin.
        sumw2: ``Float[Array, "bins"]`` sum of squared weights per bin (the
            MC statistical variance of ``counts``).
    """

    counts: Array
    sumw2: Array
