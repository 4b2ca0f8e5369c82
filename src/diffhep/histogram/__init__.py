"""Histograms: differentiable weighted KDE histograms and hard ``hist`` ones."""

from diffhep.histogram.hard import hard_hist, to_hist
from diffhep.histogram.kde import Histogram, bin_fractions, kde_hist

__all__ = ["Histogram", "bin_fractions", "kde_hist", "hard_hist", "to_hist"]
