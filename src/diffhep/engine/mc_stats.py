"""Monte Carlo statistics of a configured analysis: mean event weights, effective MC events, the background minimum.

* :func:`mean_weights`: each sample's mean MC event weight ``sum(w) / N`` over
  all its ``N`` events before any cut, the floor of its empty bins in the spec
  (:func:`diffhep.likelihood.mc_floor`). Loading normalises a sample to
  ``sum(w) = xsec * lumi`` over every event of its files
  (:func:`~diffhep.engine.loading.load_sample`, and chunk by chunk the same),
  so ``w = xsec * lumi / N`` with ``N`` the files' number of entries: read
  from the files' metadata, it is the same number in memory, streamed and on
  Dask, needs no event, and is a constant of the objective (not differentiated).
* :func:`effective_mc_events`: Kish's effective number of MC events of a
  bin, ``(sum w)^2 / sum w^2`` (the raw count for equal weights), NumPy or JAX.
* :func:`background_totals` and :func:`background_penalty`: the smooth penalty of
  ``objective.min_background``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.config.sections import MinBackground
from diffhep.engine.loading import SampleDef
from diffhep.histogram import Histogram
from diffhep.io.read import expand_files, num_entries

__all__ = ["mean_weights", "effective_mc_events", "background_totals", "background_penalty"]


def mean_weights(
    samples: Mapping[str, SampleDef], lumi_pb: float, entries: Mapping[str, int] | None = None
) -> dict[str, float]:
    """Sample -> its mean MC event weight ``xsec_pb * lumi_pb / N`` (events per MC event).

    ``N`` is the number of entries of the sample's files (its nominal files;
    a variation's own ``files`` do not change it), or ``entries[sample]`` (events
    given in memory). Loading reads every entry and normalises the weights to
    ``sum(w) = xsec * lumi``, so this is ``sum(w) / N`` of the loaded events.
    """
    out = {}
    for name, sample in samples.items():
        n = entries[name] if entries is not None else num_entries(expand_files(list(sample.files)), tree=sample.tree)
        n = n if sample.max_events is None else min(n, sample.max_events)  # inputs.max_events_per_sample
        out[name] = sample.xsec_pb * lumi_pb / max(n, 1)
    return out


def effective_mc_events(counts: Any, sumw2: Any) -> Any:
    """Kish's effective number of MC events per bin, ``counts**2 / sumw2`` (0 where either is <= 0).

    NumPy in, NumPy out (the report); JAX in, JAX out with a finite gradient
    everywhere (the objective).

    Example:
        >>> effective_mc_events(np.array([6.0, 0.0, 2.0]), np.array([12.0, 0.0, 4.0])).tolist()
        [3.0, 0.0, 1.0]
    """
    xp = np if isinstance(counts, np.ndarray) and isinstance(sumw2, np.ndarray) else jnp
    ok = (counts > 0) & (sumw2 > 0)
    return xp.where(ok, counts**2 / xp.where(ok, sumw2, 1.0), 0.0)


def background_totals(
    histograms: Mapping[str, Mapping[str, Histogram]], mean_weights: Mapping[str, float]
) -> tuple[Array, Array]:
    """``(counts, sumw2)`` of the total background over every bin of every region, shape ``(bins,)``.

    ``mean_weights``: background -> its mean MC event weight. ``counts`` is the
    plain sum of the backgrounds' counts; ``sumw2`` the sum of their ``sumw2``
    each floored at one event's, ``w**2`` (the staterror of the spec,
    :func:`diffhep.likelihood.mc_floor`).
    """
    counts, sumw2 = [], []
    for r in histograms:
        counts.append(sum(jnp.asarray(histograms[r][k].counts) for k in mean_weights))
        sumw2.append(sum(jnp.maximum(jnp.asarray(histograms[r][k].sumw2), w * w) for k, w in mean_weights.items()))
    return jnp.concatenate(counts), jnp.concatenate(sumw2)


def background_penalty(
    histograms: Mapping[str, Mapping[str, Histogram]], mean_weights: Mapping[str, float], minimum: MinBackground
) -> Array:
    """``strength * sum over bins of (1 - x / minimum)^2`` where ``x`` is below its minimum, shape ``()``.

    ``x`` is, per bin of every region, the total background (``minimum.events``,
    events: the plain sum of the backgrounds, before the spec's floors) and its
    effective number of MC events (``minimum.mc_events``), each with its own
    minimum, summed. The effective number is ``counts**2 / sumw2`` of
    :func:`background_totals` (``mean_weights``: background -> its mean MC
    event weight), whose ``sumw2`` is at least one mean-weight event's per
    background: continuous where soft cuts leave a fraction ``p`` of an event
    (it counts ``p**2`` events, where plain Kish would count 1 for any ``p > 0``
    and 0 at ``p = 0``); for equal weights and whole events, the raw count. A
    squared hinge: zero above the minimum, ``strength`` per empty bin and
    minimum, continuous with a continuous gradient.
    """
    counts, sumw2 = background_totals(histograms, mean_weights)
    penalty = jnp.zeros((), dtype=counts.dtype)
    for x, least in ((counts, minimum.events), (effective_mc_events(counts, sumw2), minimum.mc_events)):
        if least is not None:
            penalty = penalty + jnp.sum(jnp.maximum(1.0 - x / least, 0.0) ** 2)
    return minimum.strength * penalty
