"""Optax optimisation of cut values."""

from diffhep.optimize.loop import OptimizationError, OptimizeResult, make_step, optimize

__all__ = ["OptimizationError", "OptimizeResult", "make_step", "optimize"]
