"""Cut parameters: the values an optimiser moves, with bounds, units and slopes.

The typed form of the config's ``parameters:`` section; the transform to the
unconstrained variables the optimiser moves is :mod:`diffhep.optimize.bounds`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from diffhep.errors import ConfigError, closest

__all__ = ["CutParameter", "check_values"]


@dataclass(frozen=True)
class CutParameter:
    """One optimisable cut value.

    Attributes:
        name: identifier used in results and on the command line.
        init: starting value (units of ``unit``).
        low, high: bounds; the optimiser never leaves ``(low, high)``.
        slope: sigmoid slope of the soft cut, in 1/``unit``.
        unit: physical unit of the value, for example ``"GeV"``.
        description: one line for reports.
    """

    name: str
    init: float
    low: float
    high: float
    slope: float
    unit: str = "GeV"
    description: str = ""

    def __post_init__(self) -> None:
        if not self.low < self.init < self.high:
            raise ConfigError(
                f"cut parameter {self.name!r}: init {self.init} must lie strictly inside "
                f"the bounds ({self.low}, {self.high})"
            )
        if not self.slope > 0:
            raise ConfigError(f"cut parameter {self.name!r}: slope must be > 0, got {self.slope}")


def check_values(params: Sequence[CutParameter], values: Mapping[str, float]) -> dict[str, float]:
    """Validate user-given cut values: known names, finite, inside bounds."""
    known = {p.name: p for p in params}
    for name in values:
        if name not in known:
            raise ConfigError(f"unknown cut parameter {name!r}{closest(name, known)}")
    out = {}
    for p in params:
        v = float(values.get(p.name, p.init))
        if not (p.low < v < p.high):
            raise ConfigError(f"cut parameter {p.name!r} = {v} is outside its bounds ({p.low}, {p.high})")
        out[p.name] = v
    return out
