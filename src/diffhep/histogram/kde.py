"""Weighted binned kernel-density histograms (differentiable).

Each event spreads its weight over the bins with a Gaussian kernel of width
``bandwidth``: bin ``b`` receives ``w * [Phi((e_{b+1} - x)/h) - Phi((e_b - x)/h)]``.
As ``bandwidth -> 0`` this is the ordinary weighted histogram. We write it
ourselves because :func:`relaxed.hist` takes no event weights, and soft cuts
*are* event weights.

:func:`kde_hist` evaluates only the few bins each kernel reaches
(:mod:`diffhep.histogram.kernel`); when the observable is static, compute the
:class:`~diffhep.histogram.kernel.BinnedKernel` once and call
:func:`~diffhep.histogram.kernel.fill` in the step. :func:`bin_fractions` is the
dense ``events x bins`` reference.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import ndtr

from diffhep.histogram.kernel import binned_kernel, fill
from diffhep.histogram.types import Histogram

__all__ = ["Histogram", "kde_hist", "bin_fractions"]


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


def kde_hist(x: Array, weights: Array, edges: np.ndarray | Array, bandwidth: float) -> Histogram:
    """Weighted binned KDE histogram of ``x``.

    Args:
        x: ``Float[Array, "events"]`` observable per event.
        weights: ``Float[Array, "events"]`` event weights (normalisation times
            soft selection).
        edges: ``bins + 1`` increasing bin edges, concrete (not traced).
        bandwidth: kernel width in units of ``x``, concrete; 0 gives the hard
            histogram.

    Returns:
        :class:`Histogram` with ``counts = sum_e w_e k_eb`` and
        ``sumw2 = sum_e w_e^2 k_eb``, where ``k_eb`` is the kernel fraction of
        event ``e`` in bin ``b`` (both converge to the hard-histogram values).
    """
    return fill(binned_kernel(x, np.asarray(edges), bandwidth), weights)
