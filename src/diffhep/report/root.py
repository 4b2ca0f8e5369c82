"""Hard-cut histograms as a ROOT file (uproot), written atomically.

Layout: one ``TH1D`` per ``<stage>/<region>/<sample>`` (stage ``initial`` or
``optimised``), with the bin contents as values and the sum of squared weights
as ``fSumw2``; the x axis carries the observable's label. A systematic
variation ``<sample>/<systematic>/<up|down>`` is written as
``<stage>/<region>/<sample>_<systematic>_<up|down>`` (a ``TH1D`` and a directory
cannot share the name ``<sample>``). Read back with
``uproot.open(path)["optimised/sr/signal"].values()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hist
import numpy as np

from diffhep.outputs import write_root

__all__ = ["to_weighted_hist", "write_histograms"]


def to_weighted_hist(counts: Any, sumw2: Any, edges: np.ndarray, *, name: str, label: str) -> hist.Hist:
    """A ``hist.Hist`` with ``Weight`` storage (uproot writes it as a ``TH1D`` with ``fSumw2``)."""
    h = hist.Hist(
        hist.axis.Variable(np.asarray(edges, dtype=float), name=name, label=label), storage=hist.storage.Weight()
    )
    view = h.view()
    view.value = np.asarray(counts, dtype=float)
    view.variance = np.asarray(sumw2, dtype=float)
    return h


def write_histograms(
    path: str | Path,
    stages: Mapping[str, Mapping[str, Mapping[str, Any]]],
    edges: Mapping[str, np.ndarray],
    observables: Mapping[str, str],
) -> Path:
    """Write ``stage -> region -> sample -> Histogram`` (``counts``, ``sumw2``) as TH1Ds.

    Args:
        path: the ROOT file (replaced atomically).
        stages: for example ``{"initial": hists_before, "optimised": hists_after}``.
        edges: region -> bin edges.
        observables: region -> axis label.
    """
    objects = {}
    for stage, regions in stages.items():
        for region, samples in regions.items():
            for sample, h in samples.items():
                objects[f"{stage}/{region}/{sample.replace('/', '_')}"] = to_weighted_hist(
                    h.counts, h.sumw2, edges[region], name=region, label=observables.get(region, region)
                )
    return write_root(path, objects)
