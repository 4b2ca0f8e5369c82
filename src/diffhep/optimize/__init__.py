"""Optax optimisation of cut values, and the end-to-end optimisation job.

- :func:`optimize` / :func:`make_step` — the minimal loop on a loss function;
- :class:`OptimizerSettings` — the config's ``optimizer`` section (Optax by name);
- :func:`run_optimization` — the checkpointed, resumable job loop on an
  :class:`~diffhep.analysis.protocol.Analysis`, returning :class:`OptimizationResult`;
- :func:`compare_with_scan` — hard-cut pyhf significance on a grid around the optimum;
- :func:`run_job` / :func:`write_outputs` — load, optimise, evaluate, scan, write.
"""

from diffhep.optimize.loop import OptimizeResult, make_step, optimize
from diffhep.optimize.run import OptimizationResult, run_optimization
from diffhep.optimize.settings import EarlyStopping, OptimizerSettings, ScanSettings

__all__ = [
    "OptimizeResult",
    "make_step",
    "optimize",
    "EarlyStopping",
    "OptimizerSettings",
    "ScanSettings",
    "OptimizationResult",
    "run_optimization",
    "ScanResult",
    "compare_with_scan",
    "hard_significance",
    "Evaluation",
    "evaluate",
    "write_outputs",
    "run_job",
]

_LAZY = {
    "ScanResult": "scan",
    "compare_with_scan": "scan",
    "hard_significance": "scan",
    "Evaluation": "job",
    "evaluate": "job",
    "write_outputs": "job",
    "run_job": "job",
}


def __getattr__(name: str):
    """Import the job's modules on first use (they pull in pyhf, uproot and Matplotlib)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"diffhep.optimize.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'diffhep.optimize' has no attribute {name!r}")
