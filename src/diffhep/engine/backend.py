"""The few segment operations of the step, in JAX (soft path) and NumPy (hard path).

The soft path runs in JAX (``jit``, ``grad``); the hard path evaluates the same
config with 0/1 weights, which needs no derivative and no compilation, so it
runs in NumPy: per-event sums are ``numpy.bincount``, "the first passing
object" is a cumulative count, histograms are ``bincount`` over bins.

:func:`exclusive_product` is :func:`diffhep.select.exclusive_product`. A
segmented Hillis-Steele scan (``ceil(log2(max_count))`` shifts) compiles about
2x faster, but at 2e6 objects its value and gradient ran 1.8x slower with 2.4x
the temporaries, and the step runs many times.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.histogram import BinnedKernel, Histogram
from diffhep.jagged import Jagged
from diffhep.select import exclusive_product as select_exclusive_product

__all__ = ["is_numpy", "segment_sum", "exclusive_product", "first_pass", "fill_by_sample", "hard_bins"]


def is_numpy(xp: Any) -> bool:
    """Whether ``xp`` is NumPy (the hard path)."""
    return xp is np


def segment_sum(jagged: Jagged, values: Any, xp: Any = jnp) -> Any:
    """Per-event sum of ``(objects,)`` values, ``(events,)``."""
    if is_numpy(xp):
        values = np.broadcast_to(np.asarray(values, dtype=np.float64), (jagged.n_objects,))
        return np.bincount(np.asarray(jagged.segment_ids), weights=values, minlength=jagged.n_events)
    return jagged.sum(values)


def exclusive_product(jagged: Jagged, values: Array) -> Array:
    """Product of ``values`` over the objects before each one in its event, ``(objects,)``; 1 for the first."""
    return select_exclusive_product(jagged, values)


def _none_before(jagged: Jagged, passing: np.ndarray) -> np.ndarray:
    """NumPy: True where no object before this one in its event passes (0/1 ``passing``)."""
    passing = np.asarray(passing, dtype=np.float64)
    before = np.cumsum(passing) - passing
    first = np.arange(len(passing)) - np.asarray(jagged.local_index)
    return (before - before[first]) == 0 if len(passing) else np.zeros(0, dtype=bool)


def first_pass(jagged: Jagged, weights: Any, xp: Any = jnp) -> Any:
    """Probability that each object is the first passing one in its event, ``(objects,)``.

    ``w_i prod_{j<i} (1 - w_j)`` (JAX); with NumPy (hard, 0/1 weights) the
    indicator of the first passing object.
    """
    if is_numpy(xp):
        weights = np.asarray(weights, dtype=np.float64)
        return weights * _none_before(jagged, weights != 0)
    return weights * exclusive_product(jagged, 1.0 - weights)


def none_before(jagged: Jagged, weights: Any, xp: Any = jnp) -> Any:
    """``prod_{j<i} (1 - w_j)`` within each segment, ``(objects,)`` (NumPy: 0/1 weights)."""
    if is_numpy(xp):
        return _none_before(jagged, np.asarray(weights) != 0).astype(np.float64)
    return exclusive_product(jagged, 1.0 - weights)


def hard_bins(x: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(bin, inside)`` of every value, bins ``[e_b, e_{b+1})`` with the last closed (as ``numpy.histogram``)."""
    x = np.asarray(x, dtype=np.float64)
    n_bins = len(edges) - 1
    index = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_bins - 1)
    return index, ((x >= edges[0]) & (x <= edges[-1])).astype(np.float64)


def fill_by_sample(
    kernel: BinnedKernel, weights: Any, sample: Any, keys: Sequence[str], xp: Any = jnp
) -> dict[str, Histogram]:
    """Weighted histograms per sample, ``key -> Histogram`` with ``(bins,)`` counts and sumw2.

    Args:
        kernel: kernel fractions of every entry (event or candidate).
        weights: ``Float[Array, "entries"]`` weights.
        sample: ``Int[Array, "entries"]`` index of each entry's sample in ``keys``.
        keys: sample keys (static).
        xp: ``jax.numpy`` (``K`` segment sums, as :func:`diffhep.histogram.fill` with the
            samples' bins side by side) or ``numpy`` (bandwidth-0 kernels only).
    """
    n_bins, k, n = kernel.n_bins, kernel.width, len(keys)
    if is_numpy(xp):
        w = np.asarray(weights, dtype=np.float64) * np.asarray(kernel.fractions[:, 0], dtype=np.float64)
        slot = np.asarray(sample) * n_bins + np.asarray(kernel.first_bin)
        counts = np.bincount(slot, weights=w, minlength=n * n_bins).reshape(n, n_bins)
        sumw2 = np.bincount(slot, weights=w * np.asarray(weights, dtype=np.float64), minlength=n * n_bins).reshape(
            n, n_bins
        )
        return {key: Histogram(counts=counts[i], sumw2=sumw2[i]) for i, key in enumerate(keys)}
    slots = n_bins + k
    both = jnp.stack([weights, weights * weights], axis=-1)
    base = sample * slots + kernel.first_bin
    total = jnp.zeros((n * slots, 2), dtype=both.dtype)
    for j in range(k):
        total = total + jax.ops.segment_sum(both * kernel.fractions[:, j, None], base + j, num_segments=n * slots)
    total = total.reshape(n, slots, 2)[:, :n_bins]
    return {key: Histogram(counts=total[i, :, 0], sumw2=total[i, :, 1]) for i, key in enumerate(keys)}
