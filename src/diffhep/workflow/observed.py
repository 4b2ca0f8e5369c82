"""Observed data in a job: the blinding, the workspace's observations and the observed numbers.

The blinding rule: a region is a *signal region* when the signal samples have a
nonzero expected hard-cut yield there (at the cuts evaluated). Without
``unblind``, the data of the signal regions are neither plotted nor written into
``workspace.json`` (its signal regions observe the Asimov data at POI = 1
instead) nor used in any observed number (every one is then :data:`BLINDED`);
the data of the other regions (control regions) are shown. Pseudodata (the sum
of the nominal MC samples, ``observations: pseudodata``) are never blinded. The
optimisation objective never sees data: it is built from the Monte Carlo alone
(Asimov).

The observed numbers are diffhep's own (:func:`diffhep.infer.hypotest`, and the
Hessian of :mod:`diffhep.likelihood.hessian` as in :func:`diffhep.infer.poi_uncertainty`)
on the model of the workspace written, in 64-bit floats, as ``pyhf`` computes them on
``workspace.json``: the discovery significance ``Z0 = norm.isf(p0)`` (``q0``), CLs at
POI = 1 (``qtilde``) with pyhf's expected band (Asimov data from the fit to the
observed data with the POI at 0), the best-fit POI in its bounds and its
uncertainty from the Hessian of the NLL at the best fit.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from jax import Array
from scipy.stats import norm

from diffhep.engine.protocol import Analysis, Histograms
from diffhep.infer import hypotest
from diffhep.likelihood import Model
from diffhep.likelihood.hessian import nll_hessian
from diffhep.likelihood.workspace import from_workspace, observed_data
from diffhep.report import plot_region

__all__ = ["BLINDED", "Observations", "signal_regions", "observations", "observed_numbers", "postfit_yields", "summary",
           "plot_postfit", "postfit_patterns"]  # fmt: skip

#: What every observed number reads while signal-region data are hidden.
BLINDED = "blinded"
#: The observed numbers (:func:`observed_numbers`), in the order reported.
NUMBERS = ("z0", "p0", "z0_expected", "cls", "cls_expected", "cls_expected_band", "mu_hat", "mu_uncertainty",
           "bestfit")  # fmt: skip


class Observations(NamedTuple):
    """What an evaluation observes.

    Attributes:
        kind: ``"data"``, ``"pseudodata"`` or ``"asimov"`` (no observations: nothing to show).
        counts: region -> observed counts per bin (events) that may be shown and fitted:
            every region, less the blinded ones.
        signal_regions: the regions where the signal has a nonzero hard-cut yield.
        blinded: the signal regions whose data are hidden (empty with ``unblind`` or pseudodata).
    """

    kind: str
    counts: dict[str, np.ndarray]
    signal_regions: list[str]
    blinded: list[str]

    @property
    def complete(self) -> bool:
        """Whether every region is observed (observed numbers can be reported)."""
        return self.kind != "asimov" and not self.blinded


def signal_regions(analysis: Analysis, hard: Histograms) -> list[str]:
    """The regions where the signal samples' hard-cut yield is nonzero."""
    return [
        region
        for region, samples in hard.items()
        if any(float(np.sum(np.abs(samples[s].counts))) > 0 for s in analysis.signal if s in samples)
    ]


def observations(analysis: Analysis, cuts: Mapping[str, float], hard: Histograms, *, unblind: bool) -> Observations:
    """The observations of ``analysis`` at ``cuts`` (``hard``: its hard-cut histograms there), blinded unless
    ``unblind`` (see the module docstring). An analysis without ``observed`` observes nothing (Asimov)."""
    observed = analysis.observed(cuts, hard) if hasattr(analysis, "observed") else None
    kind = str(getattr(analysis, "observations", "asimov")) if observed is not None else "asimov"
    signal = signal_regions(analysis, hard)
    if observed is None:
        return Observations("asimov", {}, signal, [])
    blinded = [] if unblind or kind == "pseudodata" else signal
    counts = {r: np.asarray(c, dtype=float) for r, c in observed.items() if r not in blinded}
    return Observations(kind, counts, signal, blinded)


def observed_numbers(workspace: Mapping[str, Any], *, poi_test: float = 1.0) -> dict[str, Any]:
    """Observed and expected numbers of ``workspace``'s observations (see the module docstring).

    Returns:
        ``{"z0", "p0", "z0_expected", "cls", "cls_expected", "cls_expected_band", "mu_hat",
        "mu_uncertainty", "mu_test", "converged"}``: ``z0``/``p0`` the observed discovery significance
        and p-value, ``z0_expected`` pyhf's median expected one (``q0``); ``cls`` the observed CLs at
        ``poi_test``, ``cls_expected`` its median expected value and ``cls_expected_band`` the band at
        ``(2, 1, 0, -1, -2)`` sigma (pyhf's order); ``mu_hat`` the best-fit POI and ``mu_uncertainty``
        its uncertainty; ``converged`` whether every fit converged (NaN numbers where not).
    """
    with jax.enable_x64(True):
        model = from_workspace(workspace)
        data = observed_data(workspace, model)
        cls = hypotest(poi_test, data, model, test_stat="qtilde", on_failure="flag")
        q0 = hypotest(0.0, data, model, test_stat="q0", on_failure="flag")
        p0, p0_expected = float(q0.cls_obs), float(q0.cls_exp_median)
        # the best fit: qtilde's free fit to the data (the POI within its bounds, as pyhf's fit)
        best, fitted = cls.fits.free_fit_to_data, bool(cls.status.converged[0])
        poi = model.config.poi_index
        converged = bool(cls.converged) and bool(q0.converged)
        return {
            "z0": float(norm.isf(p0)),
            "p0": p0,
            "z0_expected": float(norm.isf(p0_expected)),
            "cls": float(cls.cls_obs),
            "cls_expected": float(cls.cls_exp_median),
            "cls_expected_band": [float(x) for x in cls.cls_exp],
            "mu_hat": float(best[poi]) if fitted else float("nan"),
            "mu_uncertainty": _poi_uncertainty(model, best, data) if fitted else float("nan"),
            "mu_test": float(poi_test),
            "converged": converged,
            "bestfit": {name: float(x) for name, x in zip(model.config.par_names, np.asarray(best), strict=True)},
        }


def postfit_yields(workspace: Mapping[str, Any], bestfit: Mapping[str, float]) -> dict[str, dict[str, np.ndarray]]:
    """Region -> sample -> expected counts per bin at the best-fit parameters ``bestfit`` (name -> value, as
    :func:`observed_numbers` returns them): the post-fit model, by pyhf's ``return_by_sample``."""
    import pyhf

    model = pyhf.Workspace(dict(workspace)).model()  # pyhf's current backend: numbers only, no fit
    pars = pyhf.tensorlib.astensor([bestfit[name] for name in model.config.par_names])
    by_sample = np.asarray(model.main_model.expected_data(pars, return_by_sample=True), dtype=np.float64)
    return {
        channel: {s: by_sample[i, part] for i, s in enumerate(model.config.samples)}
        for channel, part in model.config.channel_slices.items()
    }


def _poi_uncertainty(model: Model, best: Array, data: Array) -> float:
    """``sqrt([H^-1]_{poi,poi})``, ``H`` the Hessian of the NLL at ``best`` in the free parameters (the POI
    and those not ``suggested_fixed``), as :func:`diffhep.infer.poi_uncertainty` at a best fit; the
    written-out Hessian (:func:`~diffhep.likelihood.hessian.nll_hessian`) compiles in about a second."""
    hessian = np.asarray(jax.jit(nll_hessian)(model, best, data), dtype=np.float64)
    poi = model.config.poi_index
    free = ~np.asarray(model.config.suggested_fixed(), dtype=bool)
    free[poi] = True
    inverse = np.linalg.inv(hessian[np.ix_(free, free)])
    k = int(np.sum(free[:poi]))  # the POI's place among the free parameters
    return float(np.sqrt(inverse[k, k]))


def summary(obs: Observations, workspace: Mapping[str, Any]) -> dict[str, Any]:
    """The ``observed`` entry of ``results.json``: what was observed, what is blinded, and the numbers
    (:func:`observed_numbers`; each :data:`BLINDED` while a signal region is blinded, ``None`` without
    observations)."""
    out: dict[str, Any] = {
        "observations": obs.kind,
        "poi": workspace["measurements"][0]["config"]["poi"],
        "signal_regions": obs.signal_regions,
        "blinded_regions": obs.blinded,
        "workspace_observations": {
            r: ("asimov" if obs.kind == "asimov" or r in obs.blinded else obs.kind)
            for r in (o["name"] for o in workspace["observations"])
        },
    }
    if obs.kind == "asimov":
        out.update({k: None for k in NUMBERS})
    elif obs.blinded:
        out.update({k: BLINDED for k in NUMBERS})
    else:
        out.update(observed_numbers(workspace))
    return out


def plot_postfit(output: Path, analysis: Analysis, workspace: Mapping[str, Any], observed: Mapping[str, Any] | None,
                 data: Mapping[str, np.ndarray] | None) -> dict[str, str]:  # fmt: skip
    """``region_<name>_postfit.png`` for every region: the samples at the best fit to the observations, the data
    and their ratio; label -> file. Nothing while blinded or without observations (no best fit)."""
    bestfit = (observed or {}).get("bestfit")
    if not isinstance(bestfit, Mapping):
        return {}
    files = {}
    for region, samples in postfit_yields(workspace, bestfit).items():
        counts = {k: samples[k] for k in getattr(analysis, "samples", samples) if k in samples}
        name = f"region_{region}_postfit.png"
        plot_region(
            output / name,
            region,
            analysis.observables[region],
            analysis.edges[region],
            before=None,
            after=counts,
            signal=[s for s in analysis.signal if s in counts],
            z_after=float("nan"),
            data_after=(data or {}).get(region),
            data_label=str(observed["observations"]),  # type: ignore[index]
            title=f"{region}: post-fit, {observed['poi']} = {observed['mu_hat']:.3g}",  # type: ignore[index]
        )
        files[f"region {region} post-fit ({observed['observations']})"] = name  # type: ignore[index]
    return files


def postfit_patterns(analysis: Analysis) -> list[str]:
    """The post-fit plots :func:`plot_postfit` may write, as glob patterns (removed before a new run)."""
    return [f"region_{glob.escape(str(region))}_postfit.png" for region in analysis.edges]
