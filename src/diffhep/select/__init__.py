"""Relaxed selection: soft cuts on objects and events, differentiable counting."""

from diffhep.select.counts import at_least, count_distribution, exactly, none_pass
from diffhep.select.cuts import (
    hard_above,
    hard_below,
    hard_window,
    soft_above,
    soft_below,
    soft_window,
)

__all__ = [
    "at_least",
    "count_distribution",
    "exactly",
    "none_pass",
    "hard_above",
    "hard_below",
    "hard_window",
    "soft_above",
    "soft_below",
    "soft_window",
]
