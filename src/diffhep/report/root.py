"""Hard-cut histograms as a ROOT file (uproot), written atomically.

Names follow the AGC and cabinetry, ``{region}_{sample}{variation}``: one ``TH1D``
per region and sample, with the bin contents as values and the sum of squared
weights as ``fSumw2``; the x axis carries the observable's label. A systematic
variation ``<sample>/<systematic>/<up|down>`` is ``{region}_<sample>_<systematic>_<up|down>``.
The histograms at the final cuts are at the top of the file; others in a folder
(``initial/`` at the starting cuts of an optimisation, ``workspace/`` the templates
of ``workspace.json`` that ``cabinetry_config.yml`` reads). Read back with
``uproot.open(path)["sr_signal"].values()``.
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
    folders: Mapping[str, Mapping[str, Mapping[str, Any]]],
    edges: Mapping[str, np.ndarray],
    observables: Mapping[str, str],
) -> Path:
    """Write ``folder -> region -> sample -> Histogram`` (``counts``, ``sumw2``) as TH1Ds.

    Args:
        path: the ROOT file (replaced atomically).
        folders: for example ``{"": hists_after, "initial": hists_before}``; folder ``""``
            is the top of the file.
        edges: region -> bin edges.
        observables: region -> axis label.

    Raises:
        ValueError: two histograms of a folder would have the same name (region ``a_b`` with
            sample ``c`` and region ``a`` with sample ``b_c``), nothing written.
    """
    objects: dict[str, Any] = {}
    made_of: dict[str, tuple[str, str]] = {}
    for folder, regions in folders.items():
        for region, samples in regions.items():
            for sample, h in samples.items():
                name = f"{region}_{sample.replace('/', '_')}"
                key = f"{folder}/{name}" if folder else name
                if key in made_of:
                    raise ValueError(
                        f"histograms.root: region {region!r} sample {sample!r} and region {made_of[key][0]!r} "
                        f"sample {made_of[key][1]!r} would both be {key!r}; rename one of them"
                    )
                made_of[key] = (region, sample)
                objects[key] = to_weighted_hist(
                    h.counts, h.sumw2, edges[region], name=region, label=observables.get(region, region)
                )
    return write_root(path, objects)
