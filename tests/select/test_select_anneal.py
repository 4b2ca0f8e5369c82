"""Slope schedules, and soft selections converging to hard ones as slopes grow."""

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jagged_factory import random_collection

from diffhep.errors import ConfigError
from diffhep.jagged import from_awkward, to_awkward
from diffhep.select import (
    and_,
    at_least,
    at_least_joint,
    cutflow,
    geometric_slope,
    hard_above,
    hard_below,
    linear_slope,
    slopes_at,
    soft_above,
    soft_below,
)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def test_geometric_and_linear_schedules():
    geo = geometric_slope(0.5, 50.0, steps=4, hold=2)
    values = np.array([float(geo(i)) for i in range(9)])
    np.testing.assert_allclose(values, [0.5, 0.5, 0.5, 0.5 * 10**0.5, 5.0, 5 * 10**0.5, 50.0, 50.0, 50.0], rtol=1e-6)
    lin = linear_slope(1.0, 3.0, steps=2)
    np.testing.assert_allclose([float(lin(i)) for i in range(4)], [1.0, 2.0, 3.0, 3.0])
    # they compose with Optax: stay at the end value, then restart from a new start
    joined = optax.join_schedules([geometric_slope(1.0, 10.0, 2), geometric_slope(10.0, 1000.0, 2)], [3])
    np.testing.assert_allclose([float(joined(i)) for i in range(6)], [1, 10**0.5, 10, 10, 100, 1000], rtol=1e-6)
    slopes = slopes_at({"a": geo, "b": 0.2}, jnp.asarray(4))
    np.testing.assert_allclose([slopes["a"], slopes["b"]], [5.0, 0.2], rtol=1e-6)


@pytest.mark.parametrize(
    ("args", "match"),
    [((0.0, 1.0, 5), "start, end > 0"), ((1.0, 2.0, 0), "steps >= 1"), ((1.0, 2.0, 3.5), "steps >= 1")],
)
def test_bad_schedules_are_config_errors(args, match):
    with pytest.raises(ConfigError, match=match):
        geometric_slope(*args)


def test_slope_is_traced_so_annealing_does_not_recompile():
    j = from_awkward(random_collection(0, n_events=20))
    traces = []

    @jax.jit
    def loss(cut, slope):
        traces.append(1)
        return at_least(j, soft_above(j.pt, cut, slope), 2).sum()

    schedule = geometric_slope(0.1, 100.0, steps=5)
    grads = [jax.grad(loss)(20.0, schedule(i)) for i in range(6)]
    assert len(traces) == 1 and all(np.isfinite(g) for g in grads)


def away_from(x, cut, margin):
    """Move values within ``margin`` of ``cut`` to ``cut +- margin``."""
    return jnp.where(jnp.abs(x - cut) < margin, cut + jnp.where(x < cut, -margin, margin), x)


def test_soft_selection_converges_monotonically_to_hard():
    cut, eta_max = 30.0, 1.2
    jets = from_awkward(random_collection(21, n_events=300, long_event=30))
    # keep values at least 0.01 away from the cuts
    jets = jets.with_field("pt", away_from(jets.pt, cut, 0.01))
    jets = jets.with_field("eta", jnp.sign(jets.eta) * away_from(jnp.abs(jets.eta), eta_max, 0.01))
    arr = to_awkward(jets)
    met = jnp.asarray(np.random.default_rng(21).uniform(0.0, 100.0, size=jets.n_events))
    base = jnp.ones(jets.n_events)

    def selection(slope):
        w_sel = soft_above(jets.pt, cut, slope)
        w_tag = and_(w_sel, soft_below(jnp.abs(jets.eta), eta_max, slope))
        steps = [
            ("3 jets", at_least(jets, w_sel, 3), at_least(jets, hard_above(jets.pt, cut), 3)),
            (
                "1 tag",
                at_least_joint(jets, w_sel, w_tag, 3, 1),
                at_least_joint(
                    jets,
                    hard_above(jets.pt, cut),
                    and_(hard_above(jets.pt, cut), hard_below(jnp.abs(jets.eta), eta_max)),
                    3,
                    1,
                ),
            ),
            ("met", soft_below(met, 50.0, slope), hard_below(met, 50.0)),
        ]
        flow = cutflow(steps, base)
        event_weight = steps[0][1] * steps[1][1] * steps[2][1]
        hard_weight = steps[0][2] * steps[1][2] * steps[2][2]
        return (
            jnp.max(jnp.abs(w_sel - hard_above(jets.pt, cut))),
            jnp.mean(jnp.abs(event_weight - hard_weight)),
            jnp.max(jnp.abs(flow.soft - flow.hard)),
        )

    schedule = geometric_slope(0.3, 1e5, steps=12)
    slopes = jnp.stack([schedule(i) for i in range(13)])
    errors = np.stack(jax.jit(jax.vmap(selection))(slopes))  # (quantities, steps)
    hard_counts = ak.to_numpy(ak.sum(arr.pt > cut, axis=1) >= 3)
    assert 0 < hard_counts.sum() < jets.n_events
    assert np.all(np.diff(errors, axis=1) <= 0), errors
    assert np.all(errors[:, 0] > 1e-3) and np.all(errors[:, -1] < 1e-9), errors
