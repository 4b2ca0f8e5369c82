"""Hard (ordinary) histograms with ``hist``, at the output edge of the pipeline."""

from __future__ import annotations

import hist
import numpy as np

from diffhep.histogram.types import Histogram

__all__ = ["hard_hist", "to_hist"]


def to_hist(edges: np.ndarray, *, name: str = "x", label: str | None = None) -> hist.Hist:
    """An empty weighted ``hist.Hist`` with a variable axis on ``edges``."""
    return hist.Hist(
        hist.axis.Variable(np.asarray(edges), name=name, label=label or name),
        storage=hist.storage.Weight(),
    )


def hard_hist(
    x: np.ndarray, weights: np.ndarray, edges: np.ndarray, *, name: str = "x", label: str | None = None
) -> tuple[hist.Hist, Histogram]:
    """Fill a weighted ``hist.Hist``; return it and its (counts, sumw2) as NumPy."""
    h = to_hist(edges, name=name, label=label)
    h.fill(np.asarray(x), weight=np.asarray(weights))
    view = h.view(flow=False)
    return h, Histogram(counts=np.asarray(view.value), sumw2=np.asarray(view.variance))
