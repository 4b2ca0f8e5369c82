"""A tiny analysis with a network observable, its events in memory (tests of :mod:`diffhep.engine.network`).

Two event-level inputs that separate signal (``x1`` high, ``x2`` low) from background, a
MET cut, an event-number branch ``event`` (a permutation, both parities), a network of the
two inputs in the one region, the closed-form Asimov objective (cheap to compile).
"""

from __future__ import annotations

import copy

import awkward as ak
import numpy as np

from diffhep.engine.configured import ConfiguredAnalysis

CONFIG = {
    "name": "net",
    "lumi_pb": 10.0,
    "samples": {
        "sig": {"role": "signal", "files": ["s.root"], "xsec_pb": 5.0, "weight": "genWeight"},
        "bkg": {"role": "background", "files": ["b.root"], "xsec_pb": 50.0, "weight": "genWeight"},
    },
    "parameters": {"met_max": {"init": 60, "bounds": [10, 150], "slope": 0.2, "unit": "GeV"}},
    "regions": {
        "sr": {
            "select": "MET_pt < met_max",
            "observable": {"network": "mlp", "inputs": ["x1", "x2 * 2"], "hidden": [4, 3]},
            "binning": {"bins": 4, "range": [0, 1]},
            "bandwidth": 0.1,
        }
    },
    "objective": {"name": "asimov_significance"},  # closed form: cheap to compile
    "optimizer": {"learning_rate": 0.05, "steps": 4},
}


def events(n: int, mu: float, seed: int) -> ak.Array:
    rng = np.random.default_rng(seed)
    return ak.Array(
        {
            "x1": rng.normal(mu, 1.0, n),
            "x2": rng.normal(-mu, 1.0, n),
            "MET_pt": rng.exponential(30.0, n),
            "event": rng.permutation(n) * 7 + 3,  # event numbers: not the index, both parities
            "genWeight": np.ones(n),
        }
    )


SAMPLES = {"sig": events(60, 1.0, 1), "bkg": events(120, -0.5, 2)}


def analysis(config=CONFIG, samples=SAMPLES) -> ConfiguredAnalysis:
    return ConfiguredAnalysis.from_config(copy.deepcopy(config), events=samples)
