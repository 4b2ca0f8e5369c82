"""Host-to-device copies, checked on any backend with JAX's transfer guard (what matters on a GPU).

In memory, :meth:`ConfiguredAnalysis.load` leaves every event buffer on the
device and an optimisation step copies nothing more than its inputs; streaming
copies each chunk once per step (``tests/execute/test_execute_streaming.py``). The guard
raises on any implicit host-to-device copy, on CPU as on GPU.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from diffhep.bench import agc as bench_agc
from diffhep.config import load_config
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.optimize.bounds import to_unconstrained
from diffhep.optimize.run import compiled_step
from diffhep.optimize.settings import OptimizerSettings

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "bench_tiny.yaml"


def test_in_memory_step_copies_no_event_data(tmp_path):
    config = load_config(bench_agc.prepare_config(CONFIG, 2000, tmp_path))
    analysis = ConfiguredAnalysis.from_config(config.data, base=config.base_dir)
    data = analysis.load()
    leaves = jax.tree.leaves(data)
    on_host = [type(x).__name__ for x in leaves if isinstance(x, np.ndarray) and x.size > 1]
    assert not on_host, f"event buffers left on the host: {on_host}"
    optimizer, step = compiled_step(analysis, OptimizerSettings.from_config(config.data.get("optimizer")))
    cuts = {k: float(p["init"]) for k, p in config.data["parameters"].items()}
    u = jax.device_put(to_unconstrained(tuple(analysis.parameters), cuts))
    state = jax.device_put(optimizer.init(u))
    slope = jax.device_put(np.asarray(1.0, dtype=jax.numpy.result_type(float)))
    expected = step(u, state, data, slope)
    with jax.transfer_guard_host_to_device("disallow"):  # raises on any implicit copy to the device
        for _ in range(2):
            got = step(u, state, data, slope)
    np.testing.assert_allclose(float(got[2]), float(expected[2]), rtol=1e-12)
    assert np.isfinite(float(got[3])) and float(got[3]) > 0
