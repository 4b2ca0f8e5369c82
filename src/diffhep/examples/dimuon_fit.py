"""The hand-written dimuon analysis as a fit: soft histograms -> HistFactory -> Z0, and its hard twin.

A library example of the core used directly (no config): :mod:`diffhep.examples.dimuon`
gives the per-event weights; this module histograms them (weighted KDE), builds the
HistFactory model with traced yields and evaluates the expected discovery
significance (:func:`soft_significance`, jit- and grad-able). :func:`evaluate_hard`
applies the same cuts as ordinary hard cuts in plain Awkward, fills ``hist``
histograms and asks ``pyhf`` for the significance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import awkward as ak
import hist
import numpy as np
from jax import Array

from diffhep.errors import ConfigError
from diffhep.examples import dimuon
from diffhep.histogram import Histogram, fill, hard_hist
from diffhep.infer import expected_discovery_significance, pyhf_discovery_significance
from diffhep.likelihood import build_model, make_spec, to_pyhf

__all__ = [
    "Setup",
    "soft_histograms",
    "mean_weights",
    "spec_from_histograms",
    "soft_significance",
    "HardResult",
    "evaluate_hard",
]


@dataclass(frozen=True)
class Setup:
    """Static description of the fit: samples, binning, systematics.

    Attributes:
        signal: name of the signal sample (gets the normfactor ``mu``).
        edges: bin edges of the observable, GeV.
        bandwidth: KDE kernel width, GeV.
        normsys: background name -> (hi, lo) normalisation factors.
        channel: channel name in the HistFactory spec.
    """

    signal: str = "signal"
    edges: np.ndarray = field(default_factory=lambda: dimuon.EDGES)
    bandwidth: float = dimuon.BANDWIDTH
    normsys: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: {"dy": (1.05, 0.95), "ttbar": (1.10, 0.90), "qcd": (1.30, 0.70)}
    )
    channel: str = "mumu"


def soft_histograms(
    data: Mapping[str, dimuon.DimuonData],
    cuts: Mapping[str, Array],
    slopes: Mapping[str, float | Array],
    setup: Setup,
) -> dict[str, Histogram]:
    """Weighted KDE histogram of the dimuon mass per sample (``bins`` each).

    Uses each sample's precomputed kernel (see :func:`dimuon.prepare`), which must
    have been made with this setup's edges and bandwidth.
    """
    want = (tuple(float(e) for e in setup.edges), float(setup.bandwidth))
    for name, d in data.items():
        if (d.kernel.edges, d.kernel.bandwidth) != want:
            raise ConfigError(
                f"sample {name!r} was prepared with bandwidth {d.kernel.bandwidth} and "
                f"{d.kernel.n_bins} bins but the setup has bandwidth {setup.bandwidth} and "
                f"{len(setup.edges) - 1} bins; call dimuon.prepare(..., edges=setup.edges, "
                "bandwidth=setup.bandwidth)"
            )
    return {name: fill(d.kernel, dimuon.soft_weights(d, cuts, slopes)) for name, d in data.items()}


def mean_weights(normalisations: Mapping[str, float], events: Mapping[str, ak.Array]) -> dict[str, float]:
    """Sample -> its mean MC event weight: normalisation times the mean generator weight (events)."""
    return {k: float(normalisations[k] * np.mean(ak.to_numpy(ev.genWeight).astype(np.float64)))
            for k, ev in events.items()}  # fmt: skip


def spec_from_histograms(hists: Mapping[str, Histogram], setup: Setup, weights: Mapping[str, float]) -> dict:
    """The pyhf HistFactory spec of the histograms (yields may be traced JAX values).

    ``weights``: sample -> its mean MC event weight (:func:`mean_weights`): a
    background's empty bins hold one MC event of it (:func:`diffhep.likelihood.mc_floor`).
    """
    return make_spec(
        setup.channel,
        {name: (h.counts, h.sumw2) for name, h in hists.items()},
        signal=setup.signal,
        normsys=dict(setup.normsys),
        mean_weights={k: w for k, w in weights.items() if k != setup.signal},
    )


def soft_significance(
    data: Mapping[str, dimuon.DimuonData],
    cuts: Mapping[str, Array],
    slopes: Mapping[str, float | Array],
    setup: Setup,
) -> Array:
    """Expected discovery significance Z0 (Asimov, profiled nuisances); jit- and grad-able."""
    weights = {name: d.mean_weight for name, d in data.items()}
    spec = spec_from_histograms(soft_histograms(data, cuts, slopes, setup), setup, weights)
    return expected_discovery_significance(build_model(spec))


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
        hists[name], binned[name] = hard_hist(mass, weight, setup.edges, name="mass", label="dimuon mass [GeV]")
    spec = to_pyhf(spec_from_histograms(binned, setup, mean_weights(normalisations, events)))
    return HardResult(
        hists=hists,
        spec=spec,
        significance=float(pyhf_discovery_significance(spec)),
        yields={k: float(np.sum(h.counts)) for k, h in binned.items()},
    )
