"""Joint counts of nested selections ("≥ a selected, ≥ b of them tagged")."""

import itertools

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jagged_factory import random_collection
from jax.test_util import check_grads

from diffhep.errors import InputError
from diffhep.jagged import from_awkward
from diffhep.select import (
    and_,
    at_least,
    at_least_joint,
    count_distribution,
    exactly,
    hard_above,
    hard_below,
    joint_count_distribution,
    soft_above,
    soft_below,
)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def brute_force_joint(w_sel, w_tag, a, b):
    """Enumerate each object as not selected (0), selected untagged (1), selected tagged (2)."""
    out = np.zeros((a + 1, b + 1))
    for states in itertools.product([0, 1, 2], repeat=len(w_sel)):
        p = np.prod([[1 - s, s - t, t][k] for s, t, k in zip(w_sel, w_tag, states)])
        out[min(sum(k > 0 for k in states), a), min(sum(k == 2 for k in states), b)] += p
    return out


def jet_weights(j, slope):
    """Selected: pt > 25 GeV; tagged: selected and |eta| < 1.2 (a stand-in for a b-tag)."""
    w_sel = soft_above(j.pt, 25.0, slope)
    w_btag = soft_below(jnp.abs(j.eta), 1.2, slope)
    return w_sel, and_(w_sel, w_btag)


@pytest.mark.parametrize(("a", "b"), [(2, 1), (3, 2), (1, 3)])
def test_joint_distribution_matches_enumeration(a, b):
    j = from_awkward(random_collection(0, n_events=12, long_event=7))
    w_sel, w_tag = jet_weights(j, 0.3)
    dist = np.asarray(joint_count_distribution(j, w_sel, w_tag, a, b))
    seg = np.asarray(j.segment_ids)
    for e in range(j.n_events):
        on = seg == e
        expected = brute_force_joint(np.asarray(w_sel)[on], np.asarray(w_tag)[on], a, b)
        np.testing.assert_allclose(dist[e], expected, atol=1e-13)
    np.testing.assert_allclose(dist.sum(axis=(1, 2)), 1.0, atol=1e-13)
    # marginals are the one-count distributions
    np.testing.assert_allclose(dist.sum(axis=2), count_distribution(j, w_sel, a), atol=1e-13)
    np.testing.assert_allclose(dist.sum(axis=1), count_distribution(j, w_tag, b), atol=1e-13)


def test_hard_joint_count_equals_awkward():
    # three random samples (each with an empty, a single-object and a 40-object event) in one
    # collection: one shape, so one compiled program per (a, b) instead of one per sample and (a, b)
    arr = ak.concatenate([random_collection(seed, n_events=80, long_event=40) for seed in (1, 2, 3)])
    j = from_awkward(arr)
    sel = arr.pt > 25.0
    n_sel = ak.to_numpy(ak.sum(sel, axis=1))
    n_tag = ak.to_numpy(ak.sum(sel & (abs(arr.eta) < 1.2), axis=1))
    w_sel = hard_above(j.pt, 25.0)
    w_tag = and_(w_sel, hard_below(jnp.abs(j.eta), 1.2))
    for a, b in [(0, 0), (1, 1), (4, 1), (2, 2), (1, 3)]:
        np.testing.assert_array_equal(at_least_joint(j, w_sel, w_tag, a, b), (n_sel >= a) & (n_tag >= b))
        dist = np.asarray(joint_count_distribution(j, w_sel, w_tag, a, b))
        expected = np.zeros_like(dist)
        expected[np.arange(j.n_events), np.minimum(n_sel, a), np.minimum(n_tag, b)] = 1.0
        np.testing.assert_array_equal(dist, expected)


def test_joint_is_not_the_product_of_independent_counts():
    # one selected untagged jet and one unselected "tagged" jet: no selected b-jet
    jets = from_awkward(ak.Array([[{"sel": 1.0, "btag": 0.0}, {"sel": 0.0, "btag": 1.0}]]))
    w_tag = and_(jets.sel, jets.btag)
    assert at_least_joint(jets, jets.sel, w_tag, 1, 1)[0] == 0.0
    assert at_least(jets, jets.sel, 1)[0] * at_least(jets, jets.btag, 1)[0] == 1.0


def test_joint_gradients_match_finite_differences_and_are_finite_at_0_and_1():
    j = from_awkward(random_collection(4, n_events=16, long_event=10))
    rng = np.random.default_rng(4)
    w_sel = rng.uniform(size=j.n_objects)
    w_sel[::4], w_sel[1::5] = 1.0, 0.0
    frac = rng.uniform(size=j.n_objects)
    frac[::3], frac[1::7] = 1.0, 0.0
    scale = jnp.arange(1.0, j.n_events + 1)

    @jax.jit
    def f(w_sel, frac):  # w_tag = w_sel * frac keeps w_tag <= w_sel
        return jnp.sum(scale * at_least_joint(j, w_sel, w_sel * frac, 3, 1))

    args = (jnp.asarray(w_sel), jnp.asarray(frac))
    check_grads(f, args, order=1, modes=["rev"])
    assert all(np.all(np.isfinite(g)) for g in jax.grad(f, argnums=(0, 1))(*args))


def test_ttbar_like_selection_under_jit_and_vmap_over_slopes_converges():
    """Exactly one lepton and at least four jets of which at least one b-tagged."""
    leptons_arr = random_collection(7, n_events=50, long_event=3)
    jets_arr = random_collection(8, n_events=50, long_event=12)
    leptons, jets = from_awkward(leptons_arr), from_awkward(jets_arr)

    def weights(slope):
        w_lep = soft_above(leptons.pt, 25.0, slope)
        w_sel, w_tag = jet_weights(jets, slope)
        return exactly(leptons, w_lep, 1) * at_least_joint(jets, w_sel, w_tag, 4, 1)

    slopes = jnp.array([0.1, 1.0, 1e3, 1e7])
    got = np.asarray(jax.jit(jax.vmap(weights))(slopes))
    one_lepton = ak.to_numpy(ak.sum(leptons_arr.pt > 25.0, axis=1)) == 1
    sel = jets_arr.pt > 25.0
    four_jets = ak.to_numpy(ak.sum(sel, axis=1)) >= 4
    one_btag = ak.to_numpy(ak.sum(sel & (abs(jets_arr.eta) < 1.2), axis=1)) >= 1
    hard = (one_lepton & four_jets & one_btag).astype(float)
    assert hard.sum() > 0
    errors = np.abs(got - hard).max(axis=1)
    assert np.all(np.diff(errors) <= 0) and errors[0] > 0.1 and errors[-1] < 1e-9


# A few fixed layouts (counts per event: no object at all, one event, empty first and last
# events, a long one) and limits (a, b): examples differ in their weights, and XLA's
# compilations per shape and limits are reused (and shared by the two tests below).
LAYOUTS = [(0,), (5,), (0, 1, 4, 2, 7, 2, 2, 0, 5, 1, 0)]
#: (a, b): both 0, a < b, a > b, a beyond most events' counts.
LIMITS = [(0, 0), (1, 3), (2, 1), (4, 2)]


@st.composite
def object_pairs(draw, element):
    """(counts, list of (a, b) per object) on one of the fixed layouts."""
    counts = draw(st.sampled_from(LAYOUTS))
    pairs = draw(st.lists(st.tuples(element, element), min_size=sum(counts), max_size=sum(counts)))
    return counts, pairs


@settings(max_examples=20, deadline=None)
@given(object_pairs(st.booleans()), st.sampled_from(LIMITS))
def test_hard_joint_count_property(events, limits):
    a, b = limits
    counts, pairs = events
    sel = np.array([s for s, _ in pairs], dtype=np.float64)
    tag = np.array([s and t for s, t in pairs], dtype=np.float64)
    j = from_awkward(ak.unflatten(ak.Array({"sel": sel, "tag": tag}), list(counts)))
    got = np.asarray(at_least_joint(j, j.sel, j.tag, a, b))
    seg = np.repeat(np.arange(len(counts)), counts)
    n_sel = np.bincount(seg, weights=sel, minlength=len(counts))
    n_tag = np.bincount(seg, weights=tag, minlength=len(counts))
    np.testing.assert_array_equal(got, (n_sel >= a) & (n_tag >= b))


@settings(max_examples=20, deadline=None)
@given(object_pairs(st.floats(0, 1)), st.sampled_from(LIMITS))
def test_joint_distribution_is_a_distribution(events, limits):
    a, b = limits
    counts, pairs = events
    w_sel = np.array([s for s, _ in pairs], dtype=np.float64)
    w_tag = w_sel * np.array([t for _, t in pairs], dtype=np.float64)
    j = from_awkward(ak.unflatten(ak.Array({"sel": w_sel, "tag": w_tag}), list(counts)))
    dist = np.asarray(joint_count_distribution(j, j.sel, j.tag, a, b))
    assert dist.shape == (len(counts), a + 1, b + 1)
    assert np.all((dist >= -1e-15) & (dist <= 1 + 1e-15))
    np.testing.assert_allclose(dist.sum(axis=(1, 2)), 1.0, atol=1e-13)
    np.testing.assert_allclose(dist.sum(axis=2), count_distribution(j, j.sel, a), atol=1e-13)


def test_negative_limits_are_input_errors():
    j = from_awkward(random_collection(0, n_events=5))
    with pytest.raises(InputError, match="n_tag must be an integer >= 0"):
        at_least_joint(j, j.pt, j.pt, 1, -1)
