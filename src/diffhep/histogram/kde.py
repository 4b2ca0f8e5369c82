"""Weighted binned kernel-density histograms (differentiable).

Each event spreads its weight over the bins with a Gaussian kernel of width
``bandwidth``: bin ``b`` receives ``w * [Phi((e_{b+1} - x)/h) - Phi((e_b - x)/h)]``.
As ``bandwidth -> 0`` this is the ordinary weighted histogram. We write it
ourselves because :func:`relaxed.hist` takes no event weights, and soft cuts
*are* event weights.

The kernel matrix is ``(events, bins + 1)`` and is built inside the jitted
function; when the observable does not depend on the parameters (the common
case: structure is static) XLA computes it once per call.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array
from jax.scipy.special import ndtr

__all__ = ["Histogram", "kde_hist", "bin_fractions"]


class Histogram(NamedTuple):
    """A weighted histogram.

    Attributes:
        counts: ``Float[Array, "bins"]`` sum of weights per bin.
        sumw2: ``Float[Array, "bins"]`` sum of squared weights per bin (the
            MC statistical variance of ``counts``).
    """

    counts: Array
    sumw2: Array


def bin_fractions(x: Array, edges: Array, bandwidth: float | Array) -> Array:
    """Fraction of each event's Gaussian kernel inside each bin.

    Args:
        x: ``Float[Array, "events"]`` observable values (units of ``edges``).
        edges: ``Float[Array, "bins+1"]`` increasing bin edges.
        bandwidth: kernel standard deviation, same units as ``x``.

    Returns:
        ``Float[Array, "events bins"]``.
    """
    cdf = ndtr((jnp.asarray(edges)[None, :] - x[:, None]) / bandwidth)
    return cdf[:, 1:] - cdf[:, :-1]


def kde_hist(
    x: Array, weights: Array, edges: Array, bandwidth: float | Array
) -> Histogram:
    """Weighted binned KDE histogram of ``x``.

    Args:
        x: ``Float[Array, "events"]`` observable per event.
        weights: ``Float[Array, "events"]`` event weights (normalisation times
            soft selection).
        edges: ``Float[Array, "bins+1"]`` bin edges.
        bandwidth: kernel width in units of ``x``; 0 < bandwidth.

    Returns:
        :class:`Histogram` with ``counts = sum_e w_e k_eb`` and
        ``sumw2 = sum_e w_e^2 k_eb``, where ``k_eb`` is the kernel fraction of
        event ``e`` in bin ``b`` (both converge to the hard-histogram values).
    """
    frac = bin_fractions(x, edges, bandwidth)
    return Histogram(counts=weights @ frac, sumw2=(weights * weights) @ frac)
