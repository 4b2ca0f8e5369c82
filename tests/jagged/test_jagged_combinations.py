"""Combinations and cartesian products against ``ak.argcombinations`` / ``ak.argcartesian``."""

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import vector
from jagged_factory import random_collection, random_leptons
from jax.test_util import check_grads

from diffhep.errors import InputError
from diffhep.jagged import (
    Combinations,
    cartesian,
    combinations,
    four_momenta,
    from_awkward,
    leading,
    to_awkward,
)

vector.register_awkward()


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _stack(records):
    """``ak.argcombinations``-style tuples -> ``events * var * n`` lists."""
    return ak.concatenate([c[:, :, np.newaxis] for c in ak.unzip(records)], axis=2)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_combinations_match_awkward(n):
    arr = random_collection(0, long_event=9)
    j = from_awkward(arr)
    combos = combinations(j, n)
    assert combos.n == n and combos.combos.n_events == len(arr)
    assert ak.to_list(to_awkward(combos)) == ak.to_list(_stack(ak.argcombinations(arr, n)))
    np.testing.assert_array_equal(combos.combos.count(), ak.num(ak.argcombinations(arr, n)))
    parts = ak.unzip(ak.combinations(arr.pt, n))
    np.testing.assert_allclose(combos.sum_members(j.pt), ak.flatten(sum(parts[1:], parts[0])))
    np.testing.assert_allclose(combos.gather(j.pt), ak.flatten(_stack(ak.combinations(arr.pt, n))))
    w = jnp.asarray(np.random.default_rng(n).uniform(0, 1, j.n_objects))
    aw = ak.unflatten(np.asarray(w), ak.num(arr))
    wparts = ak.unzip(ak.combinations(aw, n))
    expected = wparts[0]
    for part in wparts[1:]:
        expected = expected * part
    np.testing.assert_allclose(combos.weight(w), ak.flatten(expected), rtol=1e-14)


def test_cartesian_matches_awkward():
    e, mu = random_collection(1), random_collection(2)
    je, jmu = from_awkward(e), from_awkward(mu)
    pairs = cartesian(je, jmu)
    assert ak.to_list(to_awkward(pairs)) == ak.to_list(_stack(ak.argcartesian([e, mu])))
    expected = ak.unzip(ak.cartesian([e.pt, mu.eta]))
    np.testing.assert_allclose(pairs.sum_members(je.pt, jmu.eta), ak.flatten(expected[0] + expected[1]))
    np.testing.assert_allclose(pairs.weight(je.pt, jmu.eta), ak.flatten(expected[0] * expected[1]))
    got = to_awkward(pairs, pairs.gather(je.pt, jmu.eta))
    assert ak.to_list(got) == ak.to_list(_stack(ak.cartesian([e.pt, mu.eta])))


def _p4(arr):
    return ak.zip({k: arr[k] for k in ("pt", "eta", "phi", "mass")}, with_name="Momentum4D")


def test_pair_of_pairs_from_two_flavours():
    """One opposite-charge electron pair x one opposite-charge muon pair: the 2e2mu mass."""
    ele, mu = random_leptons(3), random_leptons(4)
    je, jm = from_awkward(ele), from_awkward(mu)
    ee, mm = combinations(je, 2), combinations(jm, 2)
    ee = ee.keep(np.prod(np.asarray(ee.gather(je.charge)), axis=1) < 0)
    mm = mm.keep(np.prod(np.asarray(mm.gather(jm.charge)), axis=1) < 0)
    zz = cartesian(ee.combos, mm.combos)

    @jax.jit
    def four_lepton(je, jm, ee, mm, zz):
        return zz.sum_members(ee.sum_members(four_momenta(je)), mm.sum_members(four_momenta(jm)))

    p4_4l = four_lepton(je, jm, ee, mm, zz)

    def os_pairs(arr):
        a, b = ak.unzip(ak.combinations(arr, 2))
        keep = a.charge * b.charge < 0
        return _p4(a)[keep] + _p4(b)[keep]

    z_e, z_m = ak.unzip(ak.cartesian([os_pairs(ele), os_pairs(mu)]))
    ref = z_e + z_m
    assert ak.to_list(ak.num(to_awkward(zz, p4_4l.mass))) == ak.to_list(ak.num(ref))
    np.testing.assert_allclose(p4_4l.mass, ak.flatten(ref.mass), rtol=1e-10)


def test_nested_combinations_of_disjoint_pairs():
    """Two disjoint pairs of one collection (4mu): members compose by indexing."""
    j = from_awkward(random_leptons(5))
    pairs = combinations(j, 2)
    zz = combinations(pairs.combos, 2)
    leptons = np.asarray(pairs.members)[np.asarray(zz.members)]  # (zz, 2, 2) muon indices
    disjoint = np.array([len(set(x.ravel())) == 4 for x in leptons], dtype=bool)
    zz = zz.keep(disjoint)
    quads = combinations(j, 4)  # every 4-subset appears in 3 pairings

    @jax.jit
    def masses(j, pairs, zz, quads):
        p4 = four_momenta(j)
        return zz.sum_members(pairs.sum_members(p4)).mass, quads.sum_members(p4).mass

    m4, m_quads = masses(j, pairs, zz, quads)
    m_quads = np.sort(np.repeat(np.asarray(m_quads), 3))
    np.testing.assert_allclose(np.sort(np.asarray(m4)), m_quads, rtol=1e-10)


def test_reductions_and_leading_apply_to_combinations():
    arr = random_leptons(6)
    j = from_awkward(arr)
    pairs = combinations(j, 2)
    mass = jax.jit(lambda j, pairs: pairs.sum_members(four_momenta(j)).mass)(j, pairs)
    best = jax.jit(lambda c, m: c.max(-jnp.abs(m - 91.19), fill=-1.0))(pairs.combos, mass)
    closest = ak.max(-abs(to_awkward(pairs, mass) - 91.19), axis=1)
    np.testing.assert_allclose(best, ak.fill_none(closest, -1.0))
    lead = leading(pairs.combos, mass, 2, fill=0.0)
    padded = ak.fill_none(ak.pad_none(to_awkward(pairs, mass), 2, clip=True), 0.0)
    np.testing.assert_allclose(lead.values, ak.to_numpy(padded))


def test_soft_best_candidate_is_differentiable():
    """Soft choice of the pair closest to the Z mass, under a lepton pt scale."""
    j = from_awkward(random_leptons(7, n_events=10, long_event=6))
    pairs = combinations(j, 2)

    def z_mass(scale, temperature=2.0):
        p4 = four_momenta(j.with_field("pt", scale * j.pt))
        mass = pairs.sum_members(p4).mass
        w = pairs.weight(jax.nn.sigmoid(scale * j.pt - 20.0))
        choice = pairs.combos.softmax(-jnp.abs(mass - 91.19), temperature)
        return pairs.combos.sum(choice * w * mass)

    check_grads(jax.jit(z_mass), (1.01,), order=1, modes=("fwd", "rev"))


def test_combinations_errors():
    j = from_awkward(random_collection(8))
    pairs = combinations(j, 2)
    with pytest.raises(InputError, match="take 1 or 2 value arrays, got 3"):
        pairs.gather(j.pt, j.pt, j.pt)
    with pytest.raises(InputError, match="n >= 1"):
        combinations(j, 0)
    with pytest.raises(InputError, match="same number of events"):
        cartesian(j, from_awkward(random_collection(8, n_events=5)))
    with pytest.raises(InputError, match="keep mask must have shape"):
        pairs.keep(np.ones(3, dtype=bool))
    assert isinstance(jax.tree.unflatten(*reversed(jax.tree.flatten(pairs))), Combinations)


def test_empty_collection():
    j = from_awkward(ak.values_astype(ak.Array([[], []]), np.float64))
    pairs = combinations(j, 2)
    assert pairs.members.shape == (0, 2)
    assert pairs.combos.count().tolist() == [0.0, 0.0]
    assert pairs.weight(j.values).shape == (0,)
