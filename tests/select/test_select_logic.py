"""AND / OR / NOT of soft weights: boolean limits, De Morgan, gradients, jit and vmap."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from diffhep.errors import InputError
from diffhep.select import all_of, and_, any_of, hard_above, not_, or_, soft_above


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def test_hard_inputs_give_boolean_logic_exhaustively():
    for n in (1, 2, 3, 4):
        table = np.array(list(itertools.product([0.0, 1.0], repeat=n)))  # (2^n, n)
        cols = [jnp.asarray(table[:, i]) for i in range(n)]
        as_bool = table.astype(bool)
        np.testing.assert_array_equal(all_of(*cols), np.all(as_bool, axis=1))
        np.testing.assert_array_equal(any_of(*cols), np.any(as_bool, axis=1))
        np.testing.assert_array_equal(not_(cols[0]), ~as_bool[:, 0])
        if n == 2:
            np.testing.assert_array_equal(and_(*cols), as_bool[:, 0] & as_bool[:, 1])
            np.testing.assert_array_equal(or_(*cols), as_bool[:, 0] | as_bool[:, 1])


unit = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(unit, unit, unit), min_size=1, max_size=8))
def test_de_morgan_and_laws_hold_for_soft_weights(rows):
    a, b, c = (jnp.asarray(col) for col in zip(*rows))
    np.testing.assert_allclose(not_(and_(a, b)), or_(not_(a), not_(b)), atol=1e-15)
    np.testing.assert_allclose(not_(or_(a, b)), and_(not_(a), not_(b)), atol=1e-15)
    np.testing.assert_allclose(not_(any_of(a, b, c)), all_of(not_(a), not_(b), not_(c)), atol=1e-15)
    np.testing.assert_allclose(or_(a, b), or_(b, a), atol=1e-15)
    np.testing.assert_allclose(any_of(a, b, c), or_(or_(a, b), c), atol=1e-15)
    np.testing.assert_allclose(all_of(a, b, c), and_(and_(a, b), c), atol=1e-15)
    for w in (and_(a, b), or_(a, b), any_of(a, b, c), all_of(a, b, c)):
        assert np.all((np.asarray(w) >= 0) & (np.asarray(w) <= 1))


def test_logic_broadcasts_event_and_object_weights():
    event = jnp.array([0.5, 1.0])
    np.testing.assert_allclose(and_(event[:, None], jnp.ones((2, 3))), np.repeat([[0.5], [1.0]], 3, axis=1))


def test_logic_gradients_finite_at_0_and_1_and_match_finite_differences():
    a = jnp.array([0.0, 1.0, 0.3, 1.0, 0.0])
    b = jnp.array([1.0, 1.0, 0.6, 0.0, 0.0])
    c = jnp.array([0.2, 0.0, 1.0, 0.5, 1.0])

    def f(a, b, c):
        return jnp.sum(jnp.arange(1, 6) * (any_of(a, b, c) + all_of(a, b, c) + or_(not_(a), b)))

    check_grads(f, (a, b, c), order=1, modes=["fwd", "rev"])
    assert all(np.all(np.isfinite(g)) for g in jax.grad(f, argnums=(0, 1, 2))(a, b, c))


def test_logic_under_jit_and_vmap_over_cuts():
    x = jnp.linspace(-2.0, 2.0, 11)
    y = jnp.linspace(2.0, -2.0, 11)

    def passed(cut):
        return any_of(soft_above(x, cut, 1e6), soft_above(y, cut, 1e6))

    cuts = jnp.array([-1.05, 0.05, 1.05])
    got = jax.jit(jax.vmap(passed))(cuts)
    for k, cut in enumerate(cuts):
        np.testing.assert_array_equal(got[k], np.asarray(hard_above(x, cut) + hard_above(y, cut) > 0))


@pytest.mark.parametrize("combine", [all_of, any_of])
def test_empty_combination_is_an_input_error(combine):
    with pytest.raises(InputError, match="at least one weight"):
        combine()
