"""Values exactly on bin edges are binned as ``hist`` (boost-histogram) bins them, by every hard path.

Every bin is ``[e_b, e_{b+1})``: a value on an inner edge goes to the bin above it, one on
the lowest edge to the first bin, one on the highest edge to the overflow (``numpy.histogram``
would put it in the last bin; the AGC fills ``hist``, so diffhep follows ``hist``). The
reference is ``hist`` itself, filled here directly.
"""

from __future__ import annotations

import hist
import jax
import numpy as np
import pytest

from diffhep.engine.backend import hard_bins
from diffhep.histogram.kernel import binned_kernel, fill

EDGES = np.array([110.0, 150.0, 200.0, 300.0, 550.0])
#: On every edge, just inside and outside the range, and ordinary values.
X = np.array([110.0, 150.0, 200.0, 300.0, 550.0, 549.999, 550.001, 109.999, 120.0, 420.0])
W = np.arange(1.0, len(X) + 1.0)


def _hist() -> tuple[np.ndarray, np.ndarray, float]:
    """``hist``'s sums of weights and of squared weights per bin, and its overflow."""
    h = hist.Hist(hist.axis.Variable(EDGES), storage=hist.storage.Weight())
    h.fill(X, weight=W)
    view = h.view(flow=True)
    return np.asarray(view.value[1:-1]), np.asarray(view.variance[1:-1]), float(view.value[-1])


def test_hist_reference_puts_the_upper_edge_in_the_overflow():
    counts, _, overflow = _hist()
    assert overflow == W[4] + W[6]  # 550 and 550.001
    assert counts[-1] == W[3] + W[5] + W[9]  # 300, 549.999, 420


def test_kernel_at_bandwidth_zero_bins_as_hist():
    counts, sumw2, _ = _hist()
    with jax.enable_x64(True):
        got = fill(binned_kernel(X, EDGES, 0.0), W)
    np.testing.assert_array_equal(np.asarray(got.counts), counts)
    np.testing.assert_array_equal(np.asarray(got.sumw2), sumw2)


@pytest.mark.parametrize("value, expected", [(550.0, None), (300.0, 3), (110.0, 0), (549.999, 3), (109.999, None)])
def test_hard_bins_of_the_engine_bin_as_hist(value, expected):
    index, inside = hard_bins(np.array([value]), EDGES)
    if expected is None:
        assert inside[0] == 0.0
    else:
        assert inside[0] == 1.0 and index[0] == expected
