"""The end-to-end job: load -> optimise -> evaluate with hard cuts and pyhf -> scan -> write.

* :mod:`~diffhep.workflow.job`: :func:`run_job`, :func:`evaluate`, :func:`write_outputs`
  for any :class:`~diffhep.engine.Analysis`;
* :mod:`~diffhep.workflow.observed`: observed data (``role: data`` or pseudodata): the blinding
  of signal regions, the workspace's observations, the observed numbers.
"""

from diffhep.workflow.job import Evaluation, build_results, evaluate, run_job, write_outputs

__all__ = ["Evaluation", "build_results", "evaluate", "run_job", "write_outputs"]
