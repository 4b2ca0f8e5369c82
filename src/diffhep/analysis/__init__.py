"""Analyses built from the stages: the default dimuon resonance search."""

from diffhep.analysis.params import CutParameter, check_values, from_unconstrained, to_unconstrained

__all__ = ["CutParameter", "check_values", "from_unconstrained", "to_unconstrained"]
