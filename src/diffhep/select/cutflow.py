"""Soft and hard cutflows side by side.

A cutflow is an ordered list of named steps, each a per-event weight; step
``k`` keeps the product of the weights of steps ``0..k``. The soft cutflow is
the expected weighted yield ``sum(base * prod_{i<=k} soft_i)`` after each step
(differentiable in the cut values and slopes); the hard cutflow applies the
hard versions of the same steps, and also counts the raw (unweighted) number of
events that pass. ``base`` is the per-event weight before any cut
(normalisation x generator weight, in events: pb x pb^-1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.errors import ConfigError, InputError

__all__ = ["Step", "Cutflow", "cutflow"]


class Step(NamedTuple):
    """One cutflow step.

    Attributes:
        name: label of the step (unique in a cutflow).
        soft: ``Float[Array, "events"]`` soft weight of this step alone.
        hard: ``Float[Array, "events"]`` the same step with hard cuts (0 or 1).
    """

    name: str
    soft: Array
    hard: Array


class Cutflow(eqx.Module):
    """Yields after each step (a pytree: ``jit``/``vmap``/``grad`` friendly).

    Attributes:
        names: step labels, in order (static).
        soft: ``Float[Array, "steps"]`` expected weighted yield, soft steps (events).
        hard: ``Float[Array, "steps"]`` weighted yield, hard steps (events).
        events: ``Int[Array, "steps"]`` raw number of events passing the
            hard steps (events with non-zero cumulative hard weight).
    """

    names: tuple[str, ...] = eqx.field(static=True)
    soft: Array
    hard: Array
    events: Array

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{name: {"soft": float, "hard": float, "events": int}}`` in step order (JSON-ready)."""
        soft, hard, events = (np.asarray(a) for a in (self.soft, self.hard, self.events))
        return {
            name: {"soft": float(soft[i]), "hard": float(hard[i]), "events": int(events[i])}
            for i, name in enumerate(self.names)
        }

    def to_table(self) -> str:
        """A plain-text table: step, soft yield, hard yield, soft/hard, raw events."""
        rows = [("step", "soft", "hard", "soft/hard", "events")]
        for name, row in self.to_dict().items():
            ratio = f"{row['soft'] / row['hard']:.4f}" if row["hard"] else "-"
            rows.append((name, f"{row['soft']:.6g}", f"{row['hard']:.6g}", ratio, str(row["events"])))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = [
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows
        ]
        return "\n".join(lines)


def _as_step(step: Step | Sequence[Any], n_events: int) -> Step:
    if not isinstance(step, Step):
        if len(step) != 3:
            raise InputError(f"a cutflow step is (name, soft, hard), got {len(step)} items")
        step = Step(*step)
    for kind in ("soft", "hard"):
        shape = jnp.shape(getattr(step, kind))
        if shape != (n_events,):
            raise InputError(
                f"cutflow step {step.name!r}: {kind} weights have shape {shape}, "
                f"expected one weight per event ({n_events},)"
            )
    return step


def cutflow(
    steps: Sequence[Step | tuple[str, Array, Array]],
    base_weights: Array,
    *,
    initial: str | None = "all events",
) -> Cutflow:
    """Soft and hard yields after each of ``steps``, applied cumulatively in order.

    Args:
        steps: :class:`Step` or ``(name, soft, hard)`` tuples, in order.
        base_weights: ``Float[Array, "events"]`` event weights before any cut
            (normalisation x generator weight).
        initial: label of a first row with the yield before any cut, or
            ``None`` for no such row.

    Returns:
        a :class:`Cutflow` (``initial`` row first, if any).

    Example:
        >>> import jax.numpy as jnp
        >>> flow = cutflow([("met", jnp.array([0.5, 1.0, 0.0]), jnp.array([1.0, 1.0, 0.0])),
        ...                 ("jets", jnp.array([1.0, 0.5, 1.0]), jnp.array([1.0, 0.0, 1.0]))],
        ...                base_weights=jnp.array([2.0, 2.0, 2.0]))
        >>> flow.to_dict()["jets"]
        {'soft': 2.0, 'hard': 2.0, 'events': 1}
        >>> print(flow.to_table())
        step        soft  hard  soft/hard  events
        all events     6     6     1.0000       3
        met            3     4     0.7500       2
        jets           2     2     1.0000       1
    """
    base = jnp.asarray(base_weights)
    if base.ndim != 1:
        raise InputError(f"base_weights must be one weight per event, got shape {base.shape}")
    checked = [_as_step(s, base.shape[0]) for s in steps]
    names = ([initial] if initial is not None else []) + [s.name for s in checked]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"cutflow step names must be unique, repeated: {', '.join(dup)}")
    if not names:
        raise InputError("a cutflow needs at least one step (or an initial row)")
    ones = jnp.ones_like(base)
    soft_w = [ones] if initial is not None else []
    hard_w = list(soft_w)
    for s in checked:
        soft_w.append((soft_w[-1] if soft_w else ones) * s.soft)
        hard_w.append((hard_w[-1] if hard_w else ones) * s.hard)
    soft_cum, hard_cum = jnp.stack(soft_w), jnp.stack(hard_w)  # (steps, events)
    return Cutflow(
        names=tuple(names),
        soft=soft_cum @ base,
        hard=hard_cum @ base,
        events=jnp.sum(hard_cum != 0, axis=1),
    )
