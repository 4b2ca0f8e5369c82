"""Each worker of a local Dask cluster on its own share of the machine's cores.

XLA's CPU client sizes its thread pools by the cores the process may run on, so
every worker of a ``LocalCluster`` otherwise computes with as many threads as
the machine has cores: two workers on two cores run four busy threads that take
turns. :class:`CoreShare` (a ``distributed`` worker plugin, run again when a
worker restarts) restricts worker ``i`` of ``n`` to cores ``[i * k, (i + 1) * k)``,
``k = cores // n`` (at least one), before the worker's first task starts JAX.
On the AGC ttbar template at 1e6 events, 2 workers on 2 cores: 538 kHz
unpinned, 583 kHz pinned (2026-12-08, one run each). Linux only (elsewhere, and
for workers whose name is not their index, nothing changes). A cluster of
another kind (a batch system's, a scheduler address) is left as it is.
"""

from __future__ import annotations

import os
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["CoreShare", "share_of"]


def share_of(index: int, workers: int, cores: list[int]) -> list[int]:
    """The cores of worker ``index`` of ``workers`` on ``cores`` (round robin when there are more workers)."""
    k = max(1, len(cores) // max(1, workers))
    start = (index * k) % len(cores)
    return cores[start : start + k]


class CoreShare(WorkerPlugin):
    """Restrict each worker process (all its threads) to :func:`share_of` the cores it may run on."""

    name = "diffhep-core-share"

    def __init__(self, workers: int) -> None:
        self.workers = int(workers)

    def setup(self, worker: Any) -> None:
        if not hasattr(os, "sched_setaffinity"):
            return
        try:
            index = int(worker.name)
        except (TypeError, ValueError):
            return
        cores = share_of(index, self.workers, sorted(os.sched_getaffinity(0)))
        for thread in os.listdir("/proc/self/task"):  # every thread: the ones started later inherit it
            try:
                os.sched_setaffinity(int(thread), cores)
            except OSError:  # a thread that ended meanwhile
                pass
