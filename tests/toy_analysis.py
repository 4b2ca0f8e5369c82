"""A small self-contained analysis implementing :class:`diffhep.engine.protocol.Analysis`.

Synthetic NumPy events: an observable ``m`` (signal a Gaussian peak, background
a falling exponential) and two event-level cut variables, ``x`` (the signal is
larger) and ``y`` (the signal is smaller). Two cuts, ``x > x_min`` and
``y < y_max``; region ``sr`` passes both, region ``cr`` passes ``x`` and fails
``y``. The objective is Cowan's Asimov significance with the background's MC
statistical uncertainty, summed in quadrature over the regions; the hard twin
is a pyhf workspace with the same ingredients (``staterror`` per region). Both
see an empty background bin as one MC event of the background's (equal) weight
(:func:`diffhep.likelihood.mc_floor`), as diffhep's own specs do.

``data["nan_slope"]`` (from ``nan_slope=``) makes the objective NaN once the
slope multiplier reaches it, to test how the job handles a non-finite objective.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from diffhep.config.parameters import CutParameter
from diffhep.histogram import Histogram, binned_kernel, fill
from diffhep.infer import asimov_significance
from diffhep.likelihood import mc_floor

EDGES = np.linspace(100.0, 148.0, 7)
BANDWIDTH = 0.5


class ToyAnalysis:
    """Signal peak over a falling background, two cuts, two regions."""

    name = "toy"
    signal = ("signal",)
    observables = {"sr": "m [GeV]", "cr": "m [GeV]"}
    edges = {"sr": EDGES, "cr": EDGES}

    def __init__(
        self, *, n_signal: int = 2000, n_background: int = 4000, seed: int = 5, nan_slope: float = math.inf
    ) -> None:
        self.parameters = (
            CutParameter("x_min", init=0.5, low=0.0, high=4.0, slope=4.0, unit=""),
            CutParameter("y_max", init=4.5, low=0.5, high=5.0, slope=4.0, unit=""),
        )
        self.nan_slope = nan_slope
        rng = np.random.default_rng(seed)
        self.events = {
            "signal": {
                "m": rng.normal(125.0, 3.0, n_signal),
                "x": rng.normal(2.5, 0.8, n_signal),
                "y": np.abs(rng.normal(0.0, 1.0, n_signal)),
                "w": np.full(n_signal, 40.0 / n_signal),
            },
            "background": {
                "m": 100.0 + rng.exponential(25.0, n_background),
                "x": rng.exponential(1.0, n_background),
                "y": rng.uniform(0.0, 5.0, n_background),
                "w": np.full(n_background, 2000.0 / n_background),
            },
        }
        #: the background's mean MC event weight (all its events weigh the same)
        self.mean_weight = float(self.events["background"]["w"].mean())
        self._data = None

    def load(self) -> dict:
        """Per sample the cut variables, weights and the observable's kernel fractions (once)."""
        if self._data is None:
            dtype = jnp.result_type(float)
            data = {}
            for name, ev in self.events.items():
                data[name] = {k: jnp.asarray(ev[k], dtype=dtype) for k in ("x", "y", "w")}
                data[name]["kernel"] = binned_kernel(jnp.asarray(ev["m"], dtype=dtype), EDGES, BANDWIDTH)
            data["nan_slope"] = jnp.asarray(self.nan_slope, dtype=dtype)
            self._data = data
        return self._data

    def _weights(self, cuts, d, slope_scale):
        px = jax.nn.sigmoid(self.parameters[0].slope * slope_scale * (d["x"] - cuts["x_min"]))
        py = jax.nn.sigmoid(self.parameters[1].slope * slope_scale * (cuts["y_max"] - d["y"]))
        return {"sr": d["w"] * px * py, "cr": d["w"] * px * (1.0 - py)}

    def soft_histograms(self, cuts, data, slope_scale=1.0):
        out: dict[str, dict[str, Histogram]] = {"sr": {}, "cr": {}}
        for sample in self.events:
            for region, w in self._weights(cuts, data[sample], slope_scale).items():
                out[region][sample] = fill(data[sample]["kernel"], w)
        return out

    def objective(self, cuts, data, slope_scale=1.0):
        hists = self.soft_histograms(cuts, data, slope_scale)
        z2 = 0.0
        for region in hists:
            s, b = hists[region]["signal"].counts, hists[region]["background"]
            counts, sumw2 = mc_floor(b.counts, b.sumw2, self.mean_weight)
            z2 = z2 + asimov_significance(s, counts, jnp.sqrt(sumw2)) ** 2
        z = jnp.sqrt(z2)
        return jnp.where(slope_scale >= data["nan_slope"], jnp.nan, z)

    def _pass(self, cuts: Mapping[str, float], ev: dict) -> dict[str, np.ndarray]:
        px = ev["x"] > cuts["x_min"]
        py = ev["y"] < cuts["y_max"]
        return {"sr": px & py, "cr": px & ~py}

    def hard_histograms(self, cuts):
        out: dict[str, dict[str, Histogram]] = {"sr": {}, "cr": {}}
        for sample, ev in self.events.items():
            for region, mask in self._pass(cuts, ev).items():
                w = ev["w"] * mask
                counts, _ = np.histogram(ev["m"], EDGES, weights=w)
                sumw2, _ = np.histogram(ev["m"], EDGES, weights=w * w)
                out[region][sample] = Histogram(counts=counts, sumw2=sumw2)
        return out

    def cutflow(self, cuts, data):
        flow = {}
        for sample, ev in self.events.items():
            soft_x = 1.0 / (1.0 + np.exp(-self.parameters[0].slope * (ev["x"] - cuts["x_min"])))
            soft_y = 1.0 / (1.0 + np.exp(-self.parameters[1].slope * (cuts["y_max"] - ev["y"])))
            hard_x, hard_y = ev["x"] > cuts["x_min"], ev["y"] < cuts["y_max"]
            flow[sample] = [
                {"step": "all", "soft": float(ev["w"].sum()), "hard": float(ev["w"].sum())},
                {"step": "x > x_min", "soft": float((ev["w"] * soft_x).sum()), "hard": float(ev["w"][hard_x].sum())},
                {
                    "step": "y < y_max",
                    "soft": float((ev["w"] * soft_x * soft_y).sum()),
                    "hard": float(ev["w"][hard_x & hard_y].sum()),
                },
            ]
        return flow

    def workspace(self, histograms):
        channels, observations = [], []
        for region, samples in histograms.items():
            sig, bkg = samples["signal"], samples["background"]
            counts, sumw2 = (np.asarray(x, dtype=float) for x in mc_floor(bkg.counts, bkg.sumw2, self.mean_weight))
            sigma = np.sqrt(sumw2)
            channels.append(
                {
                    "name": region,
                    "samples": [
                        {
                            "name": "signal",
                            "data": np.asarray(sig.counts, dtype=float).tolist(),
                            "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                        },
                        {
                            "name": "background",
                            "data": counts.tolist(),
                            "modifiers": [
                                {"name": f"staterror_{region}", "type": "staterror", "data": sigma.tolist()},
                            ],
                        },
                    ],
                }
            )
            observations.append({"name": region, "data": (np.asarray(sig.counts) + counts).tolist()})
        return {
            "channels": channels,
            "observations": observations,
            "measurements": [{"name": "toy", "config": {"poi": "mu", "parameters": []}}],
            "version": "1.0.0",
        }
