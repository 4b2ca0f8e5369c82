"""The streaming step on a 2-worker Dask LocalCluster: equal to in-memory, robust to a killed worker."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import test_execute_streaming as streaming
from test_execute_streaming import (
    CHUNK_SIZE,
    PAD,
    PREPARE,
    THETA,
    assert_same_step,
    histograms,
    in_memory_reference,
    make_files,
    objective,
)

from diffhep.execute import DaskStep, plan_chunks

distributed = pytest.importorskip("distributed")

from diffhep.execute.pinning import CoreShare, share_of  # noqa: E402 - needs distributed


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


class Recording:
    """``prepare`` that appends ``"<pid> <start>"`` to a log file, to count preparations."""

    def __init__(self, prepare, log: Path) -> None:
        self.prepare, self.log = prepare, str(log)

    def __call__(self, chunk):
        with open(self.log, "a") as out:
            out.write(f"{os.getpid()} {chunk.file} {chunk.start}\n")
        return self.prepare(chunk)


@pytest.fixture(scope="module")
def cluster():
    import cloudpickle

    # the workers cannot import the test modules: send their functions by value
    cloudpickle.register_pickle_by_value(streaming)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.register_plugin(CoreShare(2))  # as ChunkedAnalysis does with the clusters it starts
        yield cluster, client
    cloudpickle.unregister_pickle_by_value(streaming)
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_files(tmp_path_factory.mktemp("agc"))


@pytest.fixture(scope="module")
def chunks(files):
    return plan_chunks(files, chunk_size=CHUNK_SIZE)


@pytest.fixture(scope="module")
def reference(files):
    with jax.enable_x64(True):
        return in_memory_reference(files)


def test_dask_equals_in_memory(cluster, chunks, reference, tmp_path):
    local, client = cluster
    log = tmp_path / "prepared.log"
    with DaskStep(client, chunks, Recording(PREPARE, log), histograms, pad=PAD) as step:
        step.wait_prepared()
        first = step.value_and_grad(objective, THETA)
        second = step.value_and_grad(objective, {**THETA, "btag_min": 0.6})
    assert_same_step(first, reference)
    assert float(second.value) != float(first.value)
    assert len(log.read_text().splitlines()) == 7  # once per non-empty chunk, kept across steps
    with DaskStep(local.scheduler_address, chunks, PREPARE, histograms, pad=PAD) as by_address:
        assert_same_step(by_address.value_and_grad(objective, THETA), reference)


def _kill_when_busy(client, address: str, pid: int, done: threading.Event, killed: list) -> None:
    """SIGKILL ``pid`` as soon as the scheduler has a step task on ``address``."""
    while not done.is_set():
        tasks = client.processing(workers=[address]).get(address, ())
        if any(str(key).startswith("diffhep-chunk") for key in tasks):
            os.kill(pid, signal.SIGKILL)
            killed.append(time.monotonic())
            return
        time.sleep(0.002)


def test_killed_worker_does_not_change_the_result(cluster, chunks, reference, tmp_path):
    _, client = cluster
    log = tmp_path / "prepared.log"
    with DaskStep(client, chunks, Recording(PREPARE, log), histograms, pad=PAD) as step:
        step.wait_prepared()
        before = step.value_and_grad(objective, THETA)
        pids = client.run(os.getpid)
        holders = client.who_has([f for _, f in step._data])
        address = max(pids, key=lambda a: sum(a in w for w in holders.values()))  # holds the most chunks
        done, killed = threading.Event(), []
        killer = threading.Thread(target=_kill_when_busy, args=(client, address, pids[address], done, killed))
        killer.start()
        try:
            after = step.value_and_grad(objective, THETA)  # the worker dies during this step
            finished = time.monotonic()
        finally:
            done.set()
            killer.join()
    assert killed and killed[0] < finished, "the worker was not killed during the step"
    assert_same_step(after, reference)
    np.testing.assert_array_equal(after.value, before.value)
    for name in THETA:
        np.testing.assert_array_equal(after.grad[name], before.grad[name])
    prepared = log.read_text().splitlines()
    assert len(prepared) > 7  # the lost chunks were prepared again on another worker
    assert_core_shares(client)  # the restarted worker is on its share again


def assert_core_shares(client) -> None:
    """Each worker process, every thread of it, on its own share of the cores (one of two here)."""
    cores = sorted(os.sched_getaffinity(0))
    shares = client.run(lambda: {tuple(sorted(os.sched_getaffinity(int(t)))) for t in os.listdir("/proc/self/task")})
    names = client.run(lambda dask_worker: dask_worker.name)
    assert all(len(s) == 1 for s in shares.values()), shares  # all threads alike
    by_name = {int(names[a]): list(next(iter(s))) for a, s in shares.items()}
    assert by_name == {i: share_of(i, 2, cores) for i in (0, 1)}
    if len(cores) >= 2:
        assert not set(by_name[0]) & set(by_name[1])


def test_workers_run_on_their_own_cores(cluster):
    assert share_of(0, 2, [0, 1]) == [0] and share_of(1, 2, [0, 1]) == [1] and share_of(2, 2, [0, 1]) == [0]
    assert share_of(1, 2, list(range(16))) == list(range(8, 16)) and share_of(3, 8, [0]) == [0]
    assert_core_shares(cluster[1])
