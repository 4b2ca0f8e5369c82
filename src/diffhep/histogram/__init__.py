"""Histograms: differentiable weighted KDE histograms and hard ``hist`` ones.

- :mod:`~diffhep.histogram.types`: :class:`Histogram`, the ``(counts, sumw2)``
  value that flows between the stages;
- :mod:`~diffhep.histogram.kde`: :func:`kde_hist` — weighted binned KDE of an
  observable (traced or not);
- :mod:`~diffhep.histogram.kernel`: :func:`binned_kernel` / :func:`fill` —
  precompute a static observable's banded kernel fractions once, fill with new
  weights every step;
- :mod:`~diffhep.histogram.hard`: :func:`hard_hist` — ``hist.Hist`` fill for
  hard-cut evaluation.
"""

from diffhep.histogram.hard import hard_hist, to_hist
from diffhep.histogram.kde import bin_fractions, kde_hist
from diffhep.histogram.kernel import BinnedKernel, binned_kernel, fill
from diffhep.histogram.types import Histogram

__all__ = [
    "Histogram",
    "BinnedKernel",
    "binned_kernel",
    "fill",
    "bin_fractions",
    "kde_hist",
    "hard_hist",
    "to_hist",
]
