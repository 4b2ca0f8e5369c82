"""Soft and hard cutflows: yields against Awkward, gradients, jit/vmap, printing, errors."""

import json

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jagged_factory import random_collection
from jax.test_util import check_grads

from diffhep.errors import ConfigError, InputError
from diffhep.jagged import from_awkward
from diffhep.select import (
    Cutflow,
    Step,
    at_least,
    cutflow,
    hard_above,
    hard_below,
    none_pass,
    soft_above,
    soft_below,
)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


N_EVENTS = 120


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(5)
    muons = random_collection(10, n_events=N_EVENTS, long_event=8)
    jets = random_collection(11, n_events=N_EVENTS, long_event=12)
    met = rng.exponential(40.0, size=N_EVENTS)
    base = rng.choice([-1.0, 1.0], p=[0.1, 0.9], size=N_EVENTS) * 0.37  # genWeight x normalisation
    return muons, jets, met, base


def steps_for(muons, jets, met, cuts, slope):
    """Three steps: >= 2 muons above cut 0, no jet above cut 1, MET below cut 2."""
    mu_pt, jet_pt, met_max = cuts
    return [
        Step(
            "two muons",
            at_least(muons, soft_above(muons.pt, mu_pt, slope), 2),
            at_least(muons, hard_above(muons.pt, mu_pt), 2),
        ),
        Step(
            "jet veto",
            none_pass(jets, soft_above(jets.pt, jet_pt, slope)),
            none_pass(jets, hard_above(jets.pt, jet_pt)),
        ),
        ("met", soft_below(met, met_max, slope), hard_below(met, met_max)),
    ]


def test_cutflow_matches_awkward_and_numpy(sample):
    muons_arr, jets_arr, met, base = sample
    muons, jets = from_awkward(muons_arr), from_awkward(jets_arr)
    cuts = (15.0, 60.0, 50.0)
    steps = steps_for(muons, jets, jnp.asarray(met), cuts, 0.5)
    flow = cutflow(steps, jnp.asarray(base))
    assert flow.names == ("all events", "two muons", "jet veto", "met")
    # hard: select with Awkward
    passed = [
        np.ones(N_EVENTS, bool),
        ak.to_numpy(ak.sum(muons_arr.pt > cuts[0], axis=1) >= 2),
        ak.to_numpy(ak.sum(jets_arr.pt > cuts[1], axis=1) == 0),
        met < cuts[2],
    ]
    cumulative = np.logical_and.accumulate(passed)
    np.testing.assert_allclose(flow.hard, cumulative @ base, rtol=1e-13)
    np.testing.assert_array_equal(flow.events, cumulative.sum(axis=1))
    # soft: cumulative product of the soft weights
    soft = np.cumprod(np.stack([np.ones(N_EVENTS)] + [np.asarray(s[1]) for s in steps]), axis=0)
    np.testing.assert_allclose(flow.soft, soft @ base, rtol=1e-13)
    assert np.all(np.diff(np.asarray(flow.events)) <= 0)
    # without the initial row
    bare = cutflow(steps, jnp.asarray(base), initial=None)
    assert bare.names == ("two muons", "jet veto", "met")
    np.testing.assert_allclose(bare.soft, flow.soft[1:], rtol=1e-15)


def test_soft_cutflow_is_differentiable_and_jittable(sample):
    muons_arr, jets_arr, met, base = sample
    muons, jets = from_awkward(muons_arr), from_awkward(jets_arr)
    met, base = jnp.asarray(met), jnp.asarray(base)
    cuts = jnp.array([15.0, 60.0, 50.0])

    @jax.jit
    def flow(cuts, slope, base):
        return cutflow(steps_for(muons, jets, met, cuts, slope), base)

    out = flow(cuts, 0.5, base)
    assert isinstance(out, Cutflow) and out.names[-1] == "met"
    weights = jnp.array([0.1, 1.0, -2.0, 3.0])
    check_grads(lambda c, b: jnp.dot(weights, flow(c, 0.5, b).soft), (cuts, base), order=1, modes=["rev"])
    # the gradient of the final yield: tighter cuts give a lower yield
    grad = jax.grad(lambda c: jnp.dot(jnp.array([0, 0, 0, 1.0]), flow(c, 0.5, jnp.abs(base)).soft))(cuts)
    assert grad[0] < 0 and grad[1] > 0 and grad[2] > 0
    # (vmap over slopes, and convergence to the hard cutflow: test_select_anneal.py)


def test_cutflow_to_dict_is_json_and_to_table_lists_steps():
    flow = cutflow(
        [("a", jnp.array([0.5, 1.0]), jnp.array([1.0, 1.0])), ("b", jnp.array([0.5, 0.0]), jnp.array([0.0, 0.0]))],
        jnp.array([1.0, 3.0]),
    )
    d = json.loads(json.dumps(flow.to_dict()))
    assert list(d) == ["all events", "a", "b"]
    assert d["a"] == {"soft": 3.5, "hard": 4.0, "events": 2}
    assert d["b"] == {"soft": 0.25, "hard": 0.0, "events": 0}
    table = flow.to_table().splitlines()
    assert table[0].split() == ["step", "soft", "hard", "soft/hard", "events"]
    assert table[-1].split() == ["b", "0.25", "0", "-", "0"]


def test_cutflow_errors_are_one_line():
    w = jnp.ones(3)
    with pytest.raises(ConfigError, match="unique, repeated: a"):
        cutflow([("a", w, w), ("a", w, w)], w)
    with pytest.raises(InputError, match="step 'b': hard weights have shape"):
        cutflow([("b", w, jnp.ones(4))], w)
    with pytest.raises(InputError, match=r"\(name, soft, hard\)"):
        cutflow([("c", w)], w)
    with pytest.raises(InputError, match="at least one step"):
        cutflow([], w, initial=None)
