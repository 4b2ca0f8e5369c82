"""Network weights optimised with the cut values: two Optax groups, checkpointed and resumed bit for bit.

A toy analysis (:class:`ToyAnalysis`, small) whose signal-region events are also
weighted by a small network of the event's ``(x, y)``: the optimiser moves the two
bounded cuts and the unbounded weights together (``optax.multi_transform``, each
group its own learning rate), a run interrupted after 3 steps and resumed ends
with exactly the uninterrupted run's history, cuts and weights, and a non-finite
objective stops the run keeping the last good weights.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from toy_analysis import ToyAnalysis

from diffhep.errors import ConfigError
from diffhep.optimize import OptimizerSettings, run_optimization
from diffhep.optimize.networks import joint_optimizer, split_networks


class NetworkToy(ToyAnalysis):
    """The toy with its signal-region weights multiplied by ``sigmoid(net(x, y))``."""

    def __init__(self, **kwargs):
        super().__init__(n_signal=200, n_background=400, **kwargs)
        dtype = jnp.result_type(float)
        self.networks = {"sr": eqx.nn.MLP(2, "scalar", 4, 1, key=jax.random.PRNGKey(0), dtype=dtype)}

    def objective(self, cuts, data, slope_scale=1.0, networks=None):
        net = (networks or self.networks)["sr"]
        scaled = {}
        for name in self.events:
            d = dict(data[name])
            gate = jax.nn.sigmoid(jax.vmap(net)(jnp.stack([d["x"], d["y"]], axis=1)))
            scaled[name] = {**d, "w": d["w"] * gate}
        scaled["nan_slope"] = data["nan_slope"]
        return super().objective(cuts, scaled, slope_scale)


SETTINGS = OptimizerSettings(
    learning_rate=0.05, steps=6, checkpoint_every=1, slope_start=1.0, slope_end=2.0, network={"learning_rate": 0.02}
)


def _weights(networks):
    return [np.asarray(x) for x in jax.tree.leaves(split_networks(networks)[0])]


def test_two_groups_each_its_own_learning_rate() -> None:
    """One Adam step moves every parameter by about its group's learning rate (Adam's first step is lr * sign)."""
    u = {"cuts": {"a": jnp.zeros(())}, "networks": {"w": jnp.zeros(3)}}
    grad = {"cuts": {"a": jnp.ones(())}, "networks": {"w": jnp.array([1.0, -2.0, 3.0])}}
    opt = joint_optimizer(OptimizerSettings(learning_rate=0.5, network={"learning_rate": 0.01}))
    updates, _ = opt.update(grad, opt.init(u), u)
    np.testing.assert_allclose(updates["cuts"]["a"], -0.5, rtol=1e-4)
    np.testing.assert_allclose(updates["networks"]["w"], [-0.01, 0.01, -0.01], rtol=1e-4)


def test_resume_with_network_is_bit_identical(tmp_path) -> None:
    analysis = NetworkToy()
    data = analysis.load()
    whole = run_optimization(analysis, data, SETTINGS, output=tmp_path / "whole", progress=False)
    assert whole.steps == 6 and whole.stopped is None
    moved = [np.abs(a - b).max() for a, b in zip(_weights(whole.networks), _weights(analysis.networks))]
    assert min(moved) > 0  # every weight array was trained
    part = run_optimization(analysis, data, SETTINGS, output=tmp_path / "part", progress=False, max_steps=3)
    assert part.steps == 3
    resumed = run_optimization(analysis, data, SETTINGS, output=tmp_path / "part", progress=False, resume=True)
    assert resumed.resumed_from == 3
    assert resumed.history == whole.history
    assert resumed.values == whole.values
    for a, b in zip(_weights(resumed.networks), _weights(whole.networks), strict=True):
        np.testing.assert_array_equal(a, b)


def test_resume_refuses_other_network_shapes(tmp_path) -> None:
    analysis = NetworkToy()
    data = analysis.load()
    run_optimization(analysis, data, SETTINGS, output=tmp_path, progress=False, max_steps=2)
    other = NetworkToy()
    other.networks = {"sr": eqx.nn.MLP(2, "scalar", 5, 1, key=jax.random.PRNGKey(0), dtype=jnp.result_type(float))}
    with pytest.raises(ConfigError, match="network weights .* do not match"):
        run_optimization(other, other.load(), SETTINGS, output=tmp_path, progress=False, resume=True)


def test_nonfinite_objective_keeps_last_good_weights(tmp_path) -> None:
    analysis = NetworkToy(nan_slope=1.5)  # slopes 1 -> 2 over 6 steps: NaN from step 3 on
    result = run_optimization(analysis, analysis.load(), SETTINGS, output=tmp_path, progress=False)
    assert result.stopped is not None and "non-finite objective" in result.stopped
    assert math.isfinite(result.history[-2]["objective"]) and not math.isfinite(result.history[-1]["objective"])
    assert all(np.isfinite(w).all() for w in _weights(result.networks))
