"""Loading an analysis builds its static structure on the host: no JAX program per array shape.

``jnp.asarray`` of a NumPy array compiles a small program for every new shape (``jit(stage)``,
``convert_element_type`` where the dtype changes), and eager ``jnp`` operations one each; a
``load()`` that built the structure with them compiled ~50 programs, again for every sample size
(:func:`diffhep.jagged.to_jax`). The kernels of static observables are the programs it compiles.
"""

from __future__ import annotations

import logging
import re

import jax
import numpy as np
import pytest

from diffhep.config import load_config_dict
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.io.generate import generate_sample
from diffhep.jagged import to_jax

CONFIG = {
    "name": "compiles",
    "lumi_pb": 1000.0,
    "samples": {
        "signal": {"role": "signal", "files": ["signal.root"], "xsec_pb": 0.5},
        "dy": {"role": "background", "files": ["dy.root"], "xsec_pb": 60.0, "weight": "genWeight"},
    },
    "parameters": {"muon_pt_min": {"init": 20, "bounds": [5, 60], "slope": 0.5}},
    "objects": {"muons": {"collection": "Muon", "cuts": "pt > muon_pt_min", "order": "pt"}},
    "regions": {
        "pairs": {
            "select": "count(muons) >= 2",
            "observable": "pair_mass(muons)",  # candidates: pairs and their runs, built on the host
            "binning": {"bins": 6, "range": [60, 140]},
            "bandwidth": 2,
        },
        "met": {"observable": "MET_pt", "binning": {"bins": 4, "range": [0, 100]}, "bandwidth": 5},
    },
    "systematics": {"dy_scale": {"type": "histosys", "samples": ["dy"], "up": {"scale": {"Muon_pt": 1.02}}}},
    "measurement": {"poi": "mu"},
    "objective": {"name": "asimov_significance"},
}


class _Compiles(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = re.match(r"Compiling (\S+)", record.getMessage())
        if match:
            self.names.append(match.group(1))


@pytest.mark.parametrize("x64", [False, True])
def test_load_compiles_only_the_kernels(tmp_path, x64):
    generate_sample(tmp_path / "signal.root", "signal", 157 + x64, seed=1)  # sizes no other test uses
    generate_sample(tmp_path / "dy.root", "dy", 263 + x64, seed=2)
    handler, log = _Compiles(), logging.getLogger("jax")
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.DEBUG)
    try:
        with jax.enable_x64(x64), jax.log_compiles(True):
            data = ConfiguredAnalysis.from_config(load_config_dict(CONFIG, base_dir=tmp_path)).load()
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert data.weight.dtype == (np.float64 if x64 else np.float32)
    assert data.objects["muons"].segment_ids.dtype == np.int32
    # the kernels (soft and hard) of the two regions, and a dtype conversion in the evaluation of the static
    # observable MET_pt (an expression evaluated with JAX as the step evaluates it): 5 programs, 31 before to_jax
    assert handler.names.count("jit(_kernel_arrays)") == 4 and len(handler.names) <= 5, handler.names


def test_to_jax_converts_on_the_host():
    x = np.array([0.1, 1e-40, -2.5])
    with jax.enable_x64(False):
        assert to_jax(x, np.float32).tolist() == x.astype(np.float32).tolist()  # the same rounding, subnormal included
        assert to_jax(np.arange(3, dtype=np.int64)).dtype == np.int32  # canonicalised as JAX does
    with jax.enable_x64(True):
        y = to_jax(x)
        assert y.dtype == np.float64 and y.tolist() == x.tolist()
        assert to_jax(y) is y  # a JAX array of the dtype as it is
    with jax.enable_x64(True):  # a copy, taken now: jax.device_put of the caller's array shared it 11 times in 30
        for n in [3, 8, 64, 1000, 4096, 100_000] * 5:
            host = np.arange(n, dtype=np.float64)
            y = to_jax(host)
            host[0] = 7.0
            assert float(y[0]) == 0.0, n
