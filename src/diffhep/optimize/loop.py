"""Optimise cut values with Optax: one jitted value-and-gradient step per iteration.

Cut values are optimised through the unconstrained transform of
:func:`diffhep.analysis.params.from_unconstrained`, so bounds hold without
clipping and every cut moves on a comparable scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
import optax
from jax import Array

from diffhep.analysis.params import CutParameter, from_unconstrained, to_unconstrained
from diffhep.optimize.progress import progress_bar

__all__ = ["OptimizeResult", "optimize", "make_step"]


class OptimizeResult(NamedTuple):
    """Outcome of :func:`optimize`.

    Attributes:
        values: cut name -> final value (physical units).
        history: per step, ``{"step", "loss", <cut name>: value}`` before the update.
        stopped: ``None``, or why the run stopped early (non-finite loss or gradient).
    """

    values: dict[str, float]
    history: list[dict[str, float]]
    stopped: str | None


def make_step(
    loss_fn: Callable[[dict[str, Array], Any], Array],
    params: Sequence[CutParameter],
    optimizer: optax.GradientTransformation,
) -> Callable:
    """The jitted step ``(u, opt_state, data) -> (u, opt_state, loss, grad)``."""

    def loss_u(u: dict[str, Array], data: Any) -> Array:
        return loss_fn(from_unconstrained(params, u), data)

    @jax.jit
    def step(u, opt_state, data):
        loss, grad = jax.value_and_grad(loss_u)(u, data)
        updates, opt_state = optimizer.update(grad, opt_state, u)
        return optax.apply_updates(u, updates), opt_state, loss, grad

    return step


def optimize(
    loss_fn: Callable[[dict[str, Array], Any], Array],
    params: Sequence[CutParameter],
    data: Any,
    *,
    steps: int = 200,
    optimizer: optax.GradientTransformation | None = None,
    init: dict[str, float] | None = None,
    progress: bool = True,
) -> OptimizeResult:
    """Minimise ``loss_fn(cut_values, data)`` over the cut values.

    Args:
        loss_fn: JAX-traceable loss of cut values (dict name -> scalar) and a
            pytree of event data (passed as a jit argument, never baked in as
            a constant).
        params: the cut parameters with bounds.
        data: pytree of arrays handed to ``loss_fn``.
        steps: number of optimiser steps.
        optimizer: Optax transformation on the unconstrained variables
            (default: Adam, learning rate 0.05).
        init: starting values (default: each parameter's ``init``).
        progress: show a progress bar with the loss and the cut values.
    """
    optimizer = optimizer or optax.adam(0.05)
    start = {p.name: (init or {}).get(p.name, p.init) for p in params}
    u = to_unconstrained(params, start)
    opt_state = optimizer.init(u)
    step = make_step(loss_fn, params, optimizer)
    history: list[dict[str, float]] = []
    stopped = None
    bar = progress_bar(range(steps), desc="optimising", disable=not progress, dynamic_ncols=True)
    for i in bar:
        values = {k: float(v) for k, v in from_unconstrained(params, u).items()}
        new_u, new_state, loss, grad = step(u, opt_state, data)
        loss = float(loss)
        history.append({"step": i, "loss": loss, **values})
        finite_grad = all(bool(np.isfinite(np.asarray(g)).all()) for g in jax.tree.leaves(grad))
        if not math.isfinite(loss) or not finite_grad:
            stopped = (
                f"stopped at step {i}: non-finite {'loss' if not math.isfinite(loss) else 'gradient'}"
                f" at cuts {values}; keeping the last good values"
            )
            break
        u, opt_state = new_u, new_state
        if progress:
            bar.set_postfix({"loss": f"{loss:.4g}", **{k: f"{v:.1f}" for k, v in values.items()}})
    bar.close()
    final = {k: float(v) for k, v in from_unconstrained(params, u).items()}
    return OptimizeResult(values=final, history=history, stopped=stopped)
