"""Optax optimisation of cut values (and of the weights of network observables).

* :mod:`~diffhep.optimize.bounds`: cut values inside their bounds <-> unconstrained variables;
* :mod:`~diffhep.optimize.settings`: :class:`OptimizerSettings`, the config's ``optimizer`` section (Optax by name);
* :mod:`~diffhep.optimize.run`: :func:`run_optimization`, the one loop: a jitted
  value-and-gradient step, checkpointed and resumable, annealed slopes, early stopping;
* :mod:`~diffhep.optimize.networks`: network weights as a second parameter group (``optax.multi_transform``);
* :mod:`~diffhep.optimize.checkpoint`: checkpoints written atomically, bit-identical resume;
* :mod:`~diffhep.optimize.scan`: hard-cut pyhf significance on a grid or random points around the optimum;
* :mod:`~diffhep.optimize.progress`: the progress bar.
"""

from diffhep.optimize.bounds import from_unconstrained, to_unconstrained
from diffhep.optimize.run import OptimizationResult, run_optimization
from diffhep.optimize.scan import ScanResult, compare_with_scan, hard_significance
from diffhep.optimize.settings import EarlyStopping, OptimizerSettings, ScanSettings

__all__ = [
    "from_unconstrained",
    "to_unconstrained",
    "EarlyStopping",
    "OptimizerSettings",
    "ScanSettings",
    "OptimizationResult",
    "run_optimization",
    "ScanResult",
    "compare_with_scan",
    "hard_significance",
]
