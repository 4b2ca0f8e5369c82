"""Factory of random jagged inputs shared by the tests (empty, single, long events)."""

from __future__ import annotations

import awkward as ak
import numpy as np


def random_collection(seed: int, n_events: int = 40, *, long_event: int = 25) -> ak.Array:
    """Records ``{pt, eta}`` per event: counts 0..6, plus one very long event and an empty one."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 7, size=n_events)
    counts[0] = 0
    counts[1] = 1
    counts[-1] = long_event
    n = int(counts.sum())
    pt = rng.exponential(20.0, size=n) + 3.0
    eta = rng.uniform(-2.4, 2.4, size=n)
    return ak.unflatten(ak.zip({"pt": pt, "eta": eta}), counts)


def random_counts(seed: int, n_events: int = 40, *, long_event: int = 25) -> np.ndarray:
    """Counts 0..6 per event with an empty first event, a single-object second one and a long last one."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 7, size=n_events)
    counts[0], counts[1], counts[-1] = 0, 1, long_event
    return counts


def random_leptons(seed: int, n_events: int = 40, *, long_event: int = 12) -> ak.Array:
    """Records ``{pt, eta, phi, mass, charge}`` (GeV, rad) with empty, single and long events."""
    rng = np.random.default_rng(seed + 1000)
    counts = random_counts(seed, n_events, long_event=long_event)
    n = int(counts.sum())
    columns = {
        "pt": rng.exponential(20.0, size=n) + 5.0,
        "eta": rng.uniform(-2.4, 2.4, size=n),
        "phi": rng.uniform(-np.pi, np.pi, size=n),
        "mass": rng.choice([0.000511, 0.10566, 0.0], size=n),
        "charge": rng.choice([-1.0, 1.0], size=n),
    }
    return ak.unflatten(ak.zip(columns), counts)


def padded_structure(counts: np.ndarray | list[int], n_events: int, n_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """``(segment_ids, local_index)`` of ``counts`` padded to fixed sizes.

    One extra event (index ``len(counts)``) takes the remaining objects and
    events after it are empty, so property tests over random ``counts`` keep one
    compiled shape: compare only the first ``len(counts)`` events.
    """
    counts = np.asarray(counts, dtype=np.int64)
    assert len(counts) < n_events and counts.sum() <= n_objects
    full = np.zeros(n_events, dtype=np.int64)
    full[: len(counts)] = counts
    full[len(counts)] = n_objects - counts.sum()
    segment_ids = np.repeat(np.arange(n_events, dtype=np.int32), full)
    offsets = np.concatenate([[0], np.cumsum(full)])
    local_index = (np.arange(n_objects) - offsets[:-1][segment_ids]).astype(np.int32)
    return segment_ids, local_index


def check_second_order(f, x, *, seed: int = 0, eps: float = 1e-5, rtol: float = 1e-6, atol: float = 1e-8) -> None:
    """Check second derivatives of scalar-summed ``f`` at ``x`` by finite differences (float64).

    Compares the Hessian-vector product ``d/dt grad(sum f)(x + t v)`` (forward
    over reverse, jit-compiled once) with central differences of the gradient
    along a random direction ``v``: one compile instead of the many small
    ones of ``check_grads(..., order=2)`` run eagerly.
    """
    import jax
    import jax.numpy as jnp

    grad = jax.jit(jax.grad(lambda x: jnp.sum(f(x))))
    v = jnp.asarray(np.random.default_rng(seed).normal(size=np.shape(x)))
    hvp = jax.jit(lambda x, v: jax.jvp(grad, (x,), (v,))[1])(x, v)
    fd = (grad(x + eps * v) - grad(x - eps * v)) / (2 * eps)
    assert np.all(np.isfinite(np.asarray(hvp)))
    np.testing.assert_allclose(hvp, fd, rtol=rtol, atol=atol)
