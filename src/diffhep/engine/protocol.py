"""What an optimisation job needs from an analysis (configured from YAML or written in Python).

The job (:mod:`diffhep.optimize`) and the command line only talk to this
interface, so a template configured from YAML and an analysis written by hand
are run, checkpointed, scanned and reported the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from jax import Array

from diffhep.config.parameters import CutParameter
from diffhep.histogram import Histogram

__all__ = ["Analysis", "Histograms"]

#: region -> sample -> histogram (JAX arrays in the soft path, NumPy in the hard
#: one). Systematic variations sit beside the samples under the key
#: ``"<sample>/<systematic>/up"`` (or ``/down``); stacks and yields skip them.
Histograms = Mapping[str, Mapping[str, Histogram]]


@runtime_checkable
class Analysis(Protocol):
    """A differentiable analysis with a hard-cut twin.

    Attributes:
        name: analysis name (outputs, reports).
        parameters: the optimisable cuts, in a fixed order.
        edges: region -> ``Float[ndarray, "bins+1"]`` bin edges of its observable.
        observables: region -> axis label of its observable (with unit).
        signal: names of the signal samples (scaled by the parameter of interest).
    """

    name: str
    parameters: Sequence[CutParameter]
    edges: Mapping[str, np.ndarray]
    observables: Mapping[str, str]
    signal: Sequence[str]

    def load(self) -> Any:
        """Read every sample once and compute the static structure: a pytree of arrays."""

    def soft_histograms(self, cuts: Mapping[str, Array], data: Any, slope_scale: Array | float = 1.0) -> Histograms:
        """Soft (differentiable, jit-able) histograms at ``cuts``; slopes multiplied by ``slope_scale``."""

    def objective(self, cuts: Mapping[str, Array], data: Any, slope_scale: Array | float = 1.0) -> Array:
        """The figure of merit to maximise (for example the expected significance), a scalar."""

    def hard_histograms(self, cuts: Mapping[str, float]) -> Histograms:
        """Histograms with hard cuts (NumPy arrays), for pyhf and for the report."""

    def cutflow(self, cuts: Mapping[str, float], data: Any) -> dict[str, list[dict[str, float]]]:
        """Sample -> steps ``[{"step": name, "soft": yield, "hard": yield}, ...]``."""

    def workspace(self, histograms: Histograms) -> dict:
        """A valid pyhf workspace (JSON dict) built from ``histograms``, Asimov observations."""
