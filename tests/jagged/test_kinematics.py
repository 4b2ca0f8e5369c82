"""JAX four-vectors against the ``vector`` package on Awkward arrays (float64)."""

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import vector
from jagged_factory import check_second_order, random_leptons
from jax.test_util import check_grads

from diffhep.errors import InputError
from diffhep.jagged import (
    combinations,
    delta_phi,
    delta_r,
    four_momenta,
    from_awkward,
    from_ptetaphim,
    from_pxpypze,
    to_awkward,
)

vector.register_awkward()

TOL = {"rtol": 1e-10, "atol": 1e-10}


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _p4(arr):
    return ak.zip({"pt": arr.pt, "eta": arr.eta, "phi": arr.phi, "mass": arr.mass}, with_name="Momentum4D")


def _flat(x):
    return ak.to_numpy(ak.flatten(x, axis=None))


@pytest.fixture(scope="module")
def leptons():
    return random_leptons(0)


def test_single_vectors_match_vector(leptons):
    j = from_awkward(leptons)
    p4, ref = four_momenta(j), _p4(leptons)
    for name in ("px", "py", "pz"):
        np.testing.assert_allclose(getattr(p4, name), _flat(getattr(ref, name)), **TOL)
    np.testing.assert_allclose(p4.energy, _flat(ref.E), **TOL)
    np.testing.assert_allclose(p4.pt, _flat(ref.pt), **TOL)
    np.testing.assert_allclose(p4.eta, _flat(ref.eta), **TOL)
    np.testing.assert_allclose(p4.phi, _flat(ref.phi), **TOL)
    # E^2 - |p|^2 of one light particle cancels: error ~ sqrt(eps) * E (vector keeps the stored mass)
    np.testing.assert_allclose(p4.mass, _flat(ref.mass), atol=float(1e-7 * p4.energy.max()))


@pytest.mark.parametrize("n", [2, 3])
def test_combination_mass_and_pt_match_vector(leptons, n):
    j = from_awkward(leptons)
    combos = combinations(j, n)
    total = combos.sum_members(four_momenta(j))
    parts = ak.unzip(ak.combinations(_p4(leptons), n))
    ref = parts[0]
    for part in parts[1:]:
        ref = ref + part
    scale = _flat(ref.E)  # E^2 - p^2 loses digits relative to E, as in vector
    np.testing.assert_allclose(total.mass, _flat(ref.mass), rtol=1e-10, atol=1e-12 * scale.max())
    np.testing.assert_allclose(total.pt, _flat(ref.pt), **TOL)
    np.testing.assert_allclose(total.eta, _flat(ref.eta), **TOL)
    np.testing.assert_allclose(total.phi, _flat(ref.phi), **TOL)
    assert ak.to_list(ak.num(to_awkward(combos, total.mass))) == ak.to_list(ak.num(ref))


def test_angular_distances_match_vector(leptons):
    j = from_awkward(leptons)
    pairs = combinations(j, 2)
    a, b = ak.unzip(ak.combinations(_p4(leptons), 2))
    eta, phi = pairs.gather(j.eta), pairs.gather(j.phi)
    np.testing.assert_allclose(delta_phi(phi[:, 0], phi[:, 1]), _flat(a.deltaphi(b)), **TOL)
    np.testing.assert_allclose(delta_r(eta[:, 0], phi[:, 0], eta[:, 1], phi[:, 1]), _flat(a.deltaR(b)), **TOL)
    p4 = pairs.gather(four_momenta(j))
    first, second = jax.tree.map(lambda v: v[:, 0], p4), jax.tree.map(lambda v: v[:, 1], p4)
    np.testing.assert_allclose(first.delta_r(second), _flat(a.deltaR(b)), **TOL)


def test_delta_phi_wraps_to_half_open_interval():
    d = np.asarray(delta_phi(jnp.array([np.pi, -np.pi, 3.0, 0.5, 3 * np.pi]), jnp.array([0.0, 0.0, -3.0, 0.0, 0.0])))
    np.testing.assert_allclose(d, [np.pi, np.pi, 6.0 - 2 * np.pi, 0.5, np.pi], atol=1e-12)
    assert np.all((d > -np.pi) & (d <= np.pi))


def test_gradients_finite_at_degenerate_points():
    """Massless vectors, pt = 0 and delta_r of an object with itself give finite derivatives."""
    zero = jnp.zeros(3)
    g = jax.grad(lambda m: from_ptetaphim(jnp.full(3, 10.0), zero, zero, m).mass.sum())(zero)
    assert np.all(np.isfinite(g))
    g = jax.grad(lambda p: (from_pxpypze(p, p, 1.0, 2.0).phi + from_pxpypze(p, p, 1.0, 2.0).eta).sum())(zero)
    assert np.all(np.isfinite(g))
    g = jax.grad(lambda e: delta_r(e, 0.3, e, 0.3).sum())(jnp.ones(3))
    np.testing.assert_array_equal(g, 0.0)
    # m^2 < 0 from rounding is clipped at 0 with zero gradient
    spacelike = from_pxpypze(3.0, 0.0, 0.0, jnp.array(2.0))
    assert float(spacelike.mass) == 0.0
    assert float(jax.grad(lambda e: from_pxpypze(3.0, 0.0, 0.0, e).mass)(2.0)) == 0.0


def test_energy_scale_gradients(leptons):
    """Pair masses with a pt scale (a nuisance): finite differences, jit and vmap."""
    j = from_awkward(leptons[:12])
    pairs = combinations(j, 2)

    @jax.jit
    def masses(scale):
        p4 = from_ptetaphim(scale * j.pt, j.eta, j.phi, j.mass)
        return pairs.sum_members(p4).mass

    check_grads(masses, (1.02,), order=1, modes=("fwd", "rev"))
    # The pair masses are almost linear in the scale: the Hessian (~4e-3) is tiny next to the
    # gradient (~1e3 GeV), whose rounding error over eps = 1e-5 (~2e-8) sets the absolute tolerance.
    check_second_order(masses, jnp.asarray(1.02), atol=1e-6)
    angles = jax.jit(lambda eta: delta_r(eta, j.phi, 0.1, 0.2) + four_momenta(j.with_field("eta", eta)).eta)
    check_grads(angles, (j.eta,), order=1, modes=("fwd", "rev"))
    np.testing.assert_allclose(masses(1.1), 1.1 * masses(1.0), rtol=1e-3)  # lepton masses do not scale
    batched = jax.jit(jax.vmap(masses))(jnp.array([0.9, 1.0, 1.1]))
    np.testing.assert_allclose(batched[1], masses(1.0), rtol=1e-14)


def test_four_vector_arithmetic_and_pytree_sums(leptons):
    j = from_awkward(leptons)
    p4 = four_momenta(j)
    event_sum = j.sum(p4)  # per-event vector sum, as ak.sum over Momentum4D
    ref = _p4(leptons)
    np.testing.assert_allclose(event_sum.px, ak.to_numpy(ak.sum(ref.px, axis=1)), **TOL)
    weighted = j.sum(j.charge * p4)
    np.testing.assert_allclose(weighted.energy, ak.to_numpy(ak.sum(leptons.charge * ref.E, axis=1)), **TOL)
    diff = p4 - p4
    np.testing.assert_array_equal(diff.energy, 0.0)


def test_four_momenta_needs_fields():
    j = from_awkward(random_leptons(1)[["pt", "eta", "phi"]])
    with pytest.raises(InputError, match="needs field 'mass' \\(or pass mass=...\\)"):
        four_momenta(j)
    p4 = four_momenta(j, mass=0.0)
    np.testing.assert_allclose(p4.mass, 0.0, atol=float(1e-7 * p4.energy.max()))
