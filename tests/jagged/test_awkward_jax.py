"""The documented Awkward JAX-backend example works in this environment.

This is the baseline diffhep improves on (eager only, not jit-able); the
benchmark compares against it, so we make sure it runs here.
"""

import awkward as ak
import jax
import numpy as np
import pytest


@pytest.fixture(scope="module", autouse=True)
def _jax_backend():
    # Registering the backend turns on JAX 64-bit mode globally: restore the
    # previous setting so that other test modules see what they expect.
    x64 = jax.config.jax_enable_x64
    ak.jax.register_and_check()
    yield
    jax.config.update("jax_enable_x64", x64)


def reverse_sum(array):
    return ak.sum(array[::-1], axis=0)


def test_value_jvp_vjp_match_the_documentation():
    array = ak.Array([[1.0, 2.0, 3.0], [], [4.0, 5.0]], backend="jax")
    assert ak.to_list(reverse_sum(array)) == [5.0, 7.0, 3.0]

    tangent = ak.Array([[0.0, 0.0, 0.0], [], [0.0, 1.0]], backend="jax")
    value, jvp = jax.jvp(reverse_sum, (array,), (tangent,))
    assert ak.to_list(value) == [5.0, 7.0, 3.0]
    assert ak.to_list(jvp) == [0.0, 1.0, 0.0]

    value, vjp_fn = jax.vjp(reverse_sum, array)
    (grad,) = vjp_fn(value)
    assert ak.to_list(grad) == [[5.0, 7.0, 3.0], [], [5.0, 7.0]]


def test_awkward_jax_backend_cannot_be_jitted():
    """The limitation that motivates diffhep's flat-buffer design."""
    array = ak.Array([[1.0, 2.0, 3.0], [], [4.0, 5.0]], backend="jax")
    # Awkward turns a traced length into a Python int while rebuilding the array's layout.
    with pytest.raises(jax.errors.ConcretizationTypeError, match="concrete value is expected"):
        np.asarray(jax.jit(reverse_sum)(array))
