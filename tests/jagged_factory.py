"""Factory of random jagged inputs shared by the tests (empty, single, long events)."""

from __future__ import annotations

import awkward as ak
import numpy as np


def random_collection(seed: int, n_events: int = 40, *, long_event: int = 25) -> ak.Array:
    """Records ``{pt, eta}`` per event: counts 0..6, plus one very long event and an empty one."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 7, size=n_events)
    counts[0] = 0
    counts[1] = 1
    counts[-1] = long_event
    n = int(counts.sum())
    pt = rng.exponential(20.0, size=n) + 3.0
    eta = rng.uniform(-2.4, 2.4, size=n)
    return ak.unflatten(ak.zip({"pt": pt, "eta": eta}), counts)
