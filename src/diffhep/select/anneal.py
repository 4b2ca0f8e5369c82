"""Slope schedules: sharpen soft cuts while an optimiser runs.

Slopes are ordinary (traceable) inputs of the soft cuts, so an optimisation
loop can pass ``schedule(step)`` each step without recompiling. Schedules are
Optax schedules (callables ``step -> value``), so they compose with
:func:`optax.join_schedules` and the rest of Optax. As the slope grows, soft
selections converge to the hard ones for values away from the cut.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import optax
from jax import Array

from diffhep.errors import ConfigError

__all__ = ["geometric_slope", "linear_slope", "slopes_at"]


def _check(start: float, end: float, steps: int, hold: int, *, positive: bool) -> None:
    if positive and not (start > 0 and end > 0):
        raise ConfigError(f"a geometric slope schedule needs start, end > 0, got {start}, {end}")
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"a slope schedule needs steps >= 1, got {steps!r}")
    if not isinstance(hold, int) or hold < 0:
        raise ConfigError(f"a slope schedule needs hold >= 0, got {hold!r}")


def geometric_slope(start: float, end: float, steps: int, *, hold: int = 0) -> optax.Schedule:
    """Slope ``start`` for ``hold`` steps, then geometric to ``end`` over ``steps``, then ``end``.

    Equivalently a temperature ``1/slope`` decaying geometrically. Built on
    :func:`optax.exponential_decay`.

    Example:
        >>> schedule = geometric_slope(1.0, 100.0, steps=2)
        >>> [round(float(schedule(i)), 6) for i in range(4)]
        [1.0, 10.0, 100.0, 100.0]
    """
    _check(start, end, steps, hold, positive=True)
    return optax.exponential_decay(
        init_value=start,
        transition_steps=steps,
        decay_rate=end / start,
        transition_begin=hold,
        end_value=end,
    )


def linear_slope(start: float, end: float, steps: int, *, hold: int = 0) -> optax.Schedule:
    """Slope ``start`` for ``hold`` steps, then linear to ``end`` over ``steps``, then ``end``.

    Built on :func:`optax.linear_schedule`.
    """
    _check(start, end, steps, hold, positive=False)
    return optax.linear_schedule(start, end, transition_steps=steps, transition_begin=hold)


def slopes_at(schedules: Mapping[str, optax.Schedule | float], step: int | Array) -> dict[str, Array]:
    """Evaluate one schedule (or constant) per cut at ``step``: ``{name: slope}``.

    Example:
        >>> slopes = slopes_at({"muon_pt": geometric_slope(1.0, 100.0, 2), "met": 0.2}, 1)
        >>> {k: round(float(v), 6) for k, v in slopes.items()}
        {'muon_pt': 10.0, 'met': 0.2}
    """
    return {name: (s(step) if callable(s) else jnp.asarray(s)) for name, s in schedules.items()}
