import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jagged_factory import check_second_order, random_collection
from jax.test_util import check_grads

from diffhep.errors import InputError
from diffhep.jagged import Jagged, from_awkward, to_awkward


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_is_lossless(seed):
    arr = random_collection(seed)
    j = from_awkward(arr)
    back = to_awkward(j)
    assert ak.to_list(back) == ak.to_list(arr)
    assert j.n_events == len(arr)
    assert j.max_count == int(ak.max(ak.num(arr)))


@pytest.mark.parametrize("seed", [0, 1])
def test_reductions_match_awkward(seed):
    arr = random_collection(seed)
    j = from_awkward(arr)
    np.testing.assert_allclose(j.sum(j.pt), ak.to_numpy(ak.sum(arr.pt, axis=1)))
    np.testing.assert_allclose(j.count(), ak.to_numpy(ak.num(arr)))
    expected_max = ak.to_numpy(ak.fill_none(ak.max(arr.pt, axis=1), -np.inf))
    np.testing.assert_allclose(j.max(j.pt), expected_max)
    dense = np.asarray(j.pad(j.pt, fill=-1.0))
    padded = ak.to_numpy(ak.fill_none(ak.pad_none(arr.pt, j.max_count, clip=True), -1.0))
    np.testing.assert_allclose(dense, padded)


def test_sort_by_gives_leading_first():
    arr = random_collection(3)
    j = from_awkward(arr, sort_by="pt")
    expected = arr.pt[ak.argsort(arr.pt, axis=1, ascending=False)]
    assert ak.to_list(to_awkward(j, j.pt)) == ak.to_list(expected)


def test_broadcast_event_values_to_objects():
    arr = random_collection(4)
    j = from_awkward(arr)
    ev = np.arange(len(arr), dtype=float)
    got = to_awkward(j, j.broadcast(jnp.asarray(ev)))
    assert ak.to_list(got) == ak.to_list(ak.broadcast_arrays(ev, arr.pt)[0])


def test_jit_grad_vmap_through_jagged():
    j = from_awkward(random_collection(5))

    def f(c, j):
        return jnp.sum(j.sum(jax.nn.sigmoid(0.3 * (j.pt - c))) ** 2)

    assert jnp.allclose(jax.jit(f)(20.0, j), f(20.0, j))
    g = jax.jit(lambda c: f(c, j))
    check_grads(g, (20.0,), order=1, modes=["fwd", "rev"])
    check_second_order(g, jnp.asarray(20.0))
    batched = jax.jit(jax.vmap(f, in_axes=(0, None)))(jnp.array([10.0, 20.0, 30.0]), j)
    np.testing.assert_allclose(batched, [g(c) for c in (10.0, 20.0, 30.0)], rtol=1e-12)


def test_jagged_is_a_pytree_with_static_structure():
    j = from_awkward(random_collection(6))
    leaves, treedef = jax.tree.flatten(j)
    rebuilt = jax.tree.unflatten(treedef, leaves)
    assert isinstance(rebuilt, Jagged) and rebuilt.n_events == j.n_events


def test_errors_name_the_field():
    j = from_awkward(random_collection(7))
    with pytest.raises(InputError, match=r"no field 'ptt'.*did you mean 'pt'"):
        j["ptt"]
    with pytest.raises(InputError, match="events \\* var"):
        from_awkward(ak.Array([1.0, 2.0]))
    with pytest.raises(InputError, match="cannot sort by 'phi'"):
        from_awkward(random_collection(7), sort_by="phi")
