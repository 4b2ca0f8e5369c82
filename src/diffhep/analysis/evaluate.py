"""Hard-cut evaluation with standard tools: ``hist`` histograms and ``pyhf``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import awkward as ak
import hist
import numpy as np

from diffhep.analysis import dimuon
from diffhep.analysis.pipeline import Setup, spec_from_histograms
from diffhep.histogram import Histogram, hard_hist
from diffhep.infer import pyhf_discovery_significance
from diffhep.likelihood import to_pyhf

__all__ = ["HardResult", "evaluate_hard", "workspace"]


class HardResult(NamedTuple):
    """Hard-cut evaluation at fixed cut values.

    Attributes:
        hists: sample -> filled weighted ``hist.Hist`` of the dimuon mass.
        spec: pyhf model spec (plain lists, JSON-ready).
        significance: expected discovery significance Z0 from ``pyhf.infer``
            (Asimov data at mu = 1, q0 test statistic, NumPy backend).
        yields: sample -> total selected yield (events).
    """

    hists: dict[str, hist.Hist]
    spec: dict
    significance: float
    yields: dict[str, float]


def evaluate_hard(
    events: Mapping[str, ak.Array],
    normalisations: Mapping[str, float],
    cuts: Mapping[str, float],
    setup: Setup,
) -> HardResult:
    """Apply ``cuts`` as ordinary hard cuts and compute the significance with pyhf."""
    hists: dict[str, hist.Hist] = {}
    binned: dict[str, Histogram] = {}
    for name, ev in events.items():
        mass, weight = dimuon.hard_selection(ev, cuts, normalisations[name])
        hists[name], binned[name] = hard_hist(
            mass, weight, setup.edges, name="mass", label="dimuon mass [GeV]"
        )
    spec = to_pyhf(spec_from_histograms(binned, setup))
    return HardResult(
        hists=hists,
        spec=spec,
        significance=float(pyhf_discovery_significance(spec)),
        yields={k: float(np.sum(h.counts)) for k, h in binned.items()},
    )


def workspace(spec: dict, *, poi: str = "mu", name: str = "diffhep") -> dict:
    """A pyhf workspace (JSON dict) for ``spec`` with Asimov (mu = 1) observations."""
    import warnings

    import pyhf

    with warnings.catch_warnings():
        # pyhf's schema validation uses jsonschema's deprecated RefResolver.
        warnings.filterwarnings("ignore", message="jsonschema.RefResolver", category=DeprecationWarning)
        return _workspace(pyhf, spec, poi, name)


def _workspace(pyhf, spec: dict, poi: str, name: str) -> dict:
    model = pyhf.Model(spec, poi_name=poi)
    pars = model.config.suggested_init()
    pars[model.config.poi_index] = 1.0
    expected = model.expected_actualdata(pars)
    observations, start = [], 0
    for channel in model.config.channels:
        nbins = model.config.channel_nbins[channel]
        observations.append({"name": channel, "data": [float(x) for x in expected[start : start + nbins]]})
        start += nbins
    ws = {
        "channels": spec["channels"],
        "observations": observations,
        "measurements": [{"name": name, "config": {"poi": poi, "parameters": []}}],
        "version": "1.0.0",
    }
    pyhf.Workspace(ws)  # validates against pyhf's schema
    return ws
