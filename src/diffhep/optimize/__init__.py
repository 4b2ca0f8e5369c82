"""Optax optimisation of cut values."""

from diffhep.optimize.loop import OptimizeResult, make_step, optimize

__all__ = ["OptimizeResult", "make_step", "optimize"]
