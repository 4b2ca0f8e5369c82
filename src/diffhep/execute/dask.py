"""The streaming map-reduce on ``dask.distributed``: prepared chunks stay on the workers.

:class:`DaskStep` submits one ``prepare`` task per non-empty chunk when it is
created and holds the futures, so each chunk's static structure is computed
once, on a worker, and stays in that worker's memory across optimisation
steps. A step then sends only ``theta`` (``P`` numbers) with one task per chunk,
scheduled where the chunk's data lives, which returns ``(H_c, dH_c/dtheta)``
(bins x parameters numbers); the parts are added on the workers in a tree of
``add`` tasks and only the total comes back. The chain rule with the
objective runs on the client (:func:`~diffhep.execute.streaming.chain_rule`).

The prepared data are results of ``client.submit(prepare, chunk)``, never
scattered: when a worker dies, the scheduler recomputes its chunks from their
tasks on another worker and reruns the step's lost tasks, and the result is
the same (the sum tree is fixed, so even the rounding is).

Works with any ``distributed.Client`` or a scheduler address such as
``"tcp://10.0.0.1:8786"`` (from ``dask scheduler`` and ``dask worker ADDRESS``).
On a batch system, dask-jobqueue starts the workers as jobs
(``SLURMCluster(cores=4, memory="16GB").scale(jobs=10)``, then
``Client(cluster)``); on Kubernetes, dask-gateway
(``Gateway().new_cluster().get_client()``) or the dask-kubernetes operator.
The workers need diffhep installed and the input files readable; a
:class:`ChunkCache` needs a file system shared by the workers. ``distributed``
is imported only when a step is created from an address.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from diffhep.execute.buckets import pad_to_buckets, padded_shapes
from diffhep.execute.cache import ChunkCache
from diffhep.execute.chunks import Chunk
from diffhep.execute.streaming import (
    _JACOBIANS,
    ChunkSums,
    HistogramsFn,
    ObjectiveFn,
    StepResult,
    add_parts,
    chain_rule,
    check_chunks,
    chunk_jacobian,
    fill_datasets,
    fixed_vector,
    prepare_chunk,
    theta_vector,
    to_sums,
)

__all__ = ["DaskStep"]

#: Worker side: (digest of the pickled histograms_fn, parameter names) -> jitted
#: chunk Jacobian, so that every step (and every DaskStep with the same
#: function) reuses the programs compiled at the first one.
_WORKER_PROGRAMS: dict[tuple[str, tuple[str, ...]], Callable] = {}


#: First calls (compilations) of a program for a data shape run one at a time: JAX's
#: compilation cache is not safe for concurrent compilations of one program in
#: threads of one process (a LocalCluster with ``processes=False`` crashed).
_COMPILING = threading.Lock()
_COMPILED: set[tuple] = set()


def _call(key: Any, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, serialised with other first calls of ``key`` for the shapes of ``args``."""
    try:
        signature = (key, padded_shapes(args))
        hash(signature)
    except TypeError:
        return function(*args)
    if signature in _COMPILED:
        return function(*args)
    with _COMPILING:
        result = jax.block_until_ready(function(*args))
        _COMPILED.add(signature)
    return result


def _prepare_task(
    prepare: Callable[[Chunk], Any], chunk: Chunk, cache: ChunkCache | None, pad: Callable | None, x64: bool
) -> Any:
    """Prepared (padded) chunk data as NumPy leaves, so that Dask sizes (and may spill) them."""
    with jax.enable_x64(x64):
        return jax.tree.map(np.asarray, prepare_chunk(chunk, prepare, cache, pad))


def _jacobian_task(
    token: str, histograms_fn: HistogramsFn, names: tuple[str, ...], theta: np.ndarray, data: Any,
    dataset: str, x64: bool, fixed_names: tuple[str, ...] = (), fixed: np.ndarray | None = None,
) -> dict[str, Any]:  # fmt: skip
    try:  # a hashable function (equal after unpickling) shares the programs of streaming steps
        hash(histograms_fn)
        table, key = _JACOBIANS, (histograms_fn, names, fixed_names)
    except TypeError:
        table, key = _WORKER_PROGRAMS, (token, names, fixed_names)
    if key not in table:
        table[key] = chunk_jacobian(histograms_fn, names, fixed_names)
    with jax.enable_x64(x64):
        fixed_arg = jax.device_put(fixed) if fixed_names else None
        # the chunk's arrays go to the worker's device once per step (they are kept on the host between steps)
        result = _call(key, table[key], jax.device_put(theta), jax.device_put(data), fixed_arg)
        return {dataset: jax.tree.map(np.asarray, result)}


def _map_task(function: Callable[[Any], Any], data: Any, x64: bool) -> Any:
    with jax.enable_x64(x64):
        return jax.tree.map(np.asarray, function(data))


def _reduce_task(function: Callable[..., Any], args: tuple, data: Any, dataset: str, x64: bool) -> dict[str, Any]:
    with jax.enable_x64(x64):
        return {dataset: jax.tree.map(np.asarray, _call(function, function, *args, data))}


def _digest(fn: Callable) -> str:
    """Content digest of ``fn`` (its cloudpickle), or a fresh token if it cannot be pickled."""
    import cloudpickle

    try:
        return hashlib.sha256(cloudpickle.dumps(fn)).hexdigest()[:24]
    except Exception:  # pickling errors surface when the first step is submitted
        return uuid.uuid4().hex


def _add_task(*parts: dict[str, Any]) -> dict[str, Any]:
    total: dict[str, Any] | None = None
    for part in parts:
        total = add_parts(total, part)
    assert total is not None
    return total


class DaskStep:
    """Streaming steps on a Dask cluster, with prepared chunks kept in worker memory.

    Args:
        client: a ``distributed.Client`` or a scheduler address (a client is
            then opened, and closed by :meth:`close`).
        chunks: from :func:`~diffhep.execute.plan_chunks`; empty ones are skipped.
        prepare: ``chunk -> chunk_data``, run on the workers (must be picklable,
            e.g. :class:`~diffhep.execute.ReadAndPrepare`).
        histograms_fn: ``(theta, chunk_data) -> pytree of float arrays``.
        cache: on-disk cache seen by the workers (a shared file system), optional.
        pad: padding of each prepared chunk (see :class:`ChunkedStep`).
        x64: 64-bit JAX on the workers (default: as on the client now).
        split_every: fan-in of the summation tree.

    Example::

        from distributed import Client, LocalCluster
        with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
            with DaskStep(client, plan_chunks(files), prepare, histograms_fn) as step:
                for _ in range(100):
                    result = step.value_and_grad(objective_fn, theta)
                    theta = update(theta, result.grad)
    """

    def __init__(
        self,
        client: Any,
        chunks: Sequence[Chunk],
        prepare: Callable[[Chunk], Any],
        histograms_fn: HistogramsFn,
        *,
        cache: ChunkCache | None = None,
        pad: Callable[[Any], Any] | None = pad_to_buckets,
        x64: bool | None = None,
        split_every: int = 4,
    ) -> None:
        self.chunks = check_chunks(chunks)
        self._own_client = isinstance(client, str)
        if self._own_client:
            from distributed import Client

            client = Client(client)
        self.client = client
        self.histograms_fn = histograms_fn
        self.x64 = bool(jax.config.jax_enable_x64) if x64 is None else bool(x64)
        self.split_every = max(int(split_every), 2)
        self.token = uuid.uuid4().hex[:12]
        self._program = _digest(histograms_fn)
        self._steps = 0
        self._datasets = list(dict.fromkeys(c.dataset for c in self.chunks))
        self._data = [
            (
                chunk,
                client.submit(
                    _prepare_task, prepare, chunk, cache, pad, self.x64, key=f"diffhep-prepare-{self.token}-{i}"
                ),
            )  # fmt: skip
            for i, chunk in enumerate(self.chunks)
            if chunk.n_events > 0
        ]

    def wait_prepared(self) -> None:
        """Block until every chunk is prepared on the workers (errors are raised here)."""
        from distributed import wait

        futures = [f for _, f in self._data]
        wait(futures)
        for future in futures:
            if future.status == "error":
                future.result()

    def _tree_sum(self, parts: list[Any], tag: str) -> dict[str, Any]:
        """Add the per-chunk futures on the workers in a fixed tree; the total."""
        level = 0
        while len(parts) > 1:
            level += 1
            groups = [parts[i : i + self.split_every] for i in range(0, len(parts), self.split_every)]
            parts = [
                self.client.submit(_add_task, *group, key=f"diffhep-add-{tag}-{level}-{i}")
                for i, group in enumerate(groups)
            ]
        return parts[0].result()

    def sums(self, theta: Mapping[str, Any], *, fixed: Mapping[str, Any] | None = None) -> ChunkSums:
        """Histograms and Jacobians summed over all chunks on the workers, per dataset.

        ``fixed``: scalars passed with ``theta`` but not differentiated (see :class:`ChunkedStep`).
        """
        names, vec = theta_vector(theta)
        fixed_names, fixed_vec = fixed_vector(fixed)
        dtype = np.float64 if self.x64 else np.float32
        vec, fixed_vec = vec.astype(dtype), fixed_vec.astype(dtype)
        self._steps += 1
        tag = f"{self.token}-{self._steps}"
        parts = [
            self.client.submit(
                _jacobian_task,
                self._program,
                self.histograms_fn,
                names,
                vec,
                data,
                chunk.dataset,
                self.x64,
                fixed_names,
                fixed_vec,
                key=f"diffhep-chunk-{tag}-{i}",
            )  # fmt: skip
            for i, (chunk, data) in enumerate(self._data)
        ]
        return to_sums(self._tree_sum(parts, tag), self._datasets, names)

    def value_and_grad(
        self, objective_fn: ObjectiveFn, theta: Mapping[str, Any], *, fixed: Mapping[str, Any] | None = None
    ) -> StepResult:
        """``objective_fn({dataset: histograms})`` and its gradient w.r.t. ``theta``."""
        return chain_rule(objective_fn, self.sums(theta, fixed=fixed))

    def reduce(self, function: Callable[..., Any], *args: Any) -> dict[str, Any]:
        """``{dataset: sum over its chunks of function(*args, data)}``, computed where the data live.

        ``function`` and ``args`` must be picklable; datasets with only empty chunks get zeros.
        """
        self._steps += 1
        tag = f"{self.token}-{self._steps}"
        parts = [
            self.client.submit(
                _reduce_task, function, args, data, chunk.dataset, self.x64, key=f"diffhep-reduce-{tag}-{i}"
            )  # fmt: skip
            for i, (chunk, data) in enumerate(self._data)
        ]
        return fill_datasets(self._tree_sum(parts, tag), self._datasets)

    def gather(self, function: Callable[[Any], Any]) -> list[Any]:
        """``[function(data) for each held chunk]``, computed on the workers (small results: shapes, sizes)."""
        return self.client.gather([self.client.submit(function, data) for _, data in self._data])

    def transform(self, function: Callable[[Any], Any]) -> None:
        """Replace each held chunk's data by ``function(data)``, computed where it lives (e.g. padding).

        The new data keep their lineage: a lost worker's chunks are prepared and transformed again.
        """
        self._steps += 1
        self._data = [
            (
                chunk,
                self.client.submit(
                    _map_task, function, data, self.x64, key=f"diffhep-transform-{self.token}-{self._steps}-{i}"
                ),
            )  # fmt: skip
            for i, (chunk, data) in enumerate(self._data)
        ]

    def close(self) -> None:
        """Release the prepared data on the workers; close the client if this step opened it."""
        self._data = []
        if self._own_client:
            self.client.close()

    def __enter__(self) -> DaskStep:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
