"""Streaming value and gradient of an analysis step: one chunk at a time, forward-mode Jacobians.

Histograms are sums over events, and the cut parameters ``theta`` are few
(``P`` of them, typically below 50). One pass per step is therefore enough:
each chunk ``c`` returns its histograms ``H_c`` and their Jacobian
``J_c = dH_c / dtheta`` (``P`` forward-mode tangents, one jitted program per
padded chunk shape); the driver adds them up per dataset and applies the chain
rule with ``dObjective / dH`` from one ``jax.vjp`` of the objective::

    value = objective(H),  H = sum_c H_c,
    grad_p = sum_leaves <dObjective/dH, sum_c J_c[..., p]>

Only one chunk (the one being computed, plus the next one being read while
it runs) is in memory at a time, so peak memory does not depend on the number
of events. Prepared chunks can be kept on disk (:class:`ChunkCache`) so that
later steps read no ROOT file, and are padded to a few size buckets
(:func:`~diffhep.execute.buckets.pad_to_buckets`) so that all full chunks share
one compiled program.

Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> from diffhep.execute import Chunk
    >>> chunks = [Chunk("sig", "a.root", "Events", 0, 3), Chunk("sig", "a.root", "Events", 3, 5)]
    >>> x = np.arange(5.0)
    >>> prepare = lambda c: {"x": x[c.start:c.stop]}
    >>> hist = lambda theta, d: {"n": jnp.sum(jax.nn.sigmoid(d["x"] - theta["cut"]))}
    >>> res = streaming_value_and_grad(hist, lambda h: h["sig"]["n"] ** 2, chunks, {"cut": 2.0},
    ...                                prepare=prepare, pad=None)
    >>> ref = jax.value_and_grad(lambda c: jnp.sum(jax.nn.sigmoid(x - c)) ** 2)(2.0)
    >>> bool(jnp.allclose(res.value, ref[0]) and jnp.allclose(res.grad["cut"], ref[1]))
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.errors import InputError
from diffhep.execute.buckets import pad_to_buckets, padded_shapes
from diffhep.execute.cache import ChunkCache
from diffhep.execute.chunks import Chunk

__all__ = [
    "ChunkSums",
    "StepResult",
    "ChunkedStep",
    "streaming_value_and_grad",
    "chunk_jacobian",
    "chain_rule",
]

#: ``histograms_fn(theta, chunk_data) -> pytree of float arrays`` (same structure for every chunk).
HistogramsFn = Callable[[Mapping[str, Array], Any], Any]
#: ``objective_fn({dataset: histograms}) -> scalar``.
ObjectiveFn = Callable[[dict[str, Any]], Array]


class ChunkSums(NamedTuple):
    """Histograms and their Jacobian summed over chunks.

    Attributes:
        histograms: dataset -> pytree of ``Float[Array, "..."]`` (e.g. bins).
        jacobian: dataset -> the same pytree with leaves ``Float[Array, "... parameters"]``.
        names: the parameters, in the order of the last Jacobian axis.
    """

    histograms: dict[str, Any]
    jacobian: dict[str, Any]
    names: tuple[str, ...]


class StepResult(NamedTuple):
    """One step: ``value``, ``grad`` (parameter -> ``d value / d theta``) and the summed ``histograms``."""

    value: Array
    grad: dict[str, Array]
    histograms: dict[str, Any]


def theta_vector(theta: Mapping[str, Any]) -> tuple[tuple[str, ...], np.ndarray]:
    """Parameter names and values ``Float[ndarray, "parameters"]`` of a flat dict of scalars."""
    if not isinstance(theta, Mapping) or not theta:
        raise InputError(f"theta must be a non-empty dict of parameter name -> scalar, got {theta!r}")
    values = []
    for name, value in theta.items():
        if np.ndim(value) != 0:
            raise InputError(f"theta[{name!r}] must be a scalar, got shape {np.shape(value)}")
        values.append(float(value))
    return tuple(theta), np.asarray(values, dtype=jnp.result_type(float))


def fixed_vector(fixed: Mapping[str, Any] | None) -> tuple[tuple[str, ...], np.ndarray]:
    """Names and values of the non-differentiated scalars (possibly none)."""
    if not fixed:
        return (), np.zeros((0,), dtype=jnp.result_type(float))
    return theta_vector(fixed)


def chunk_jacobian(
    histograms_fn: HistogramsFn, names: Sequence[str], fixed: Sequence[str] = ()
) -> Callable[..., tuple[Any, Any]]:
    """Jitted ``(theta_vec, data, fixed_vec=None) -> (H, J)``, ``J`` leaves ``H.shape + (parameters,)``.

    Forward mode: the ``P`` unit tangents are pushed through ``histograms_fn``
    in one ``vmap`` of ``jax.jvp`` (as ``jax.jacfwd`` does), so ``H`` is computed once.
    ``fixed`` names scalars passed to ``histograms_fn`` in the same dict as the
    parameters (e.g. a slope multiplier) but not differentiated: their values
    are arguments of the compiled program, so changing them never recompiles.
    """
    names, fixed = tuple(names), tuple(fixed)

    def run(theta_vec: Array, data: Any, fixed_vec: Array | None = None) -> tuple[Any, Any]:
        extra = {} if fixed_vec is None else {n: fixed_vec[i] for i, n in enumerate(fixed)}

        def f(t: Array) -> Any:
            return histograms_fn({**{n: t[i] for i, n in enumerate(names)}, **extra}, data)

        basis = jnp.eye(len(names), dtype=theta_vec.dtype)
        push = jax.vmap(lambda v: jax.jvp(f, (theta_vec,), (v,)), out_axes=(None, -1))
        return push(basis)

    return eqx.filter_jit(run)


def _contract(objective_fn: ObjectiveFn) -> Callable[[Any, Any], tuple[Array, tuple[Array, ...]]]:
    def run(histograms: Any, jacobian: Any) -> tuple[Array, tuple[Array, ...]]:
        value, vjp = jax.vjp(objective_fn, histograms)
        (cotangent,) = vjp(jnp.ones_like(value))
        pairs = zip(jax.tree.leaves(cotangent), jax.tree.leaves(jacobian))
        grad = sum(jnp.tensordot(g, j, axes=jnp.ndim(g)) for g, j in pairs)
        return value, tuple(grad[..., i] for i in range(jnp.shape(grad)[-1]))  # split here: no index copies

    return eqx.filter_jit(run)


#: Compiled programs per function object, so that repeated steps (and repeated
#: calls of :func:`streaming_value_and_grad`) with the same functions reuse them.
_JACOBIANS: dict[tuple[Callable, tuple[str, ...]], Callable] = {}
_CONTRACTIONS: dict[Callable, Callable] = {}


def _memo(table: dict, key: Any, build: Callable[[], Callable]) -> Callable:
    """``table[key]``, built on first use (unhashable keys are not cached)."""
    try:
        hash(key)
    except TypeError:
        return build()
    if key not in table:
        table[key] = build()
    return table[key]


def chain_rule(objective_fn: ObjectiveFn, sums: ChunkSums) -> StepResult:
    """``objective_fn`` of the summed histograms and its gradient through the summed Jacobian."""
    contract = _memo(_CONTRACTIONS, objective_fn, lambda: _contract(objective_fn))
    value, grad = contract(sums.histograms, sums.jacobian)
    if jnp.shape(value) != ():
        raise InputError(f"objective_fn must return a scalar, got shape {jnp.shape(value)}")
    return StepResult(value, {n: grad[i] for i, n in enumerate(sums.names)}, sums.histograms)


def add_parts(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
    """Sum two ``{dataset: (H, J)}`` results leaf by leaf (datasets in either)."""
    if a is None:
        return dict(b)
    out = dict(a)
    for dataset, value in b.items():
        out[dataset] = jax.tree.map(lambda x, y: x + y, out[dataset], value) if dataset in out else value
    return out


def to_sums(parts: dict[str, Any], datasets: Sequence[str], names: tuple[str, ...]) -> ChunkSums:
    """:class:`ChunkSums` from ``{dataset: (H, J)}``; datasets with only empty chunks get zeros."""
    if any(d not in parts for d in datasets):
        zeros = jax.tree.map(jnp.zeros_like, next(iter(parts.values())))
        parts = {d: parts.get(d, zeros) for d in datasets}
    full = {d: parts[d] for d in datasets}
    as_jax = {d: jax.tree.map(jnp.asarray, v) for d, v in full.items()}
    return ChunkSums({d: v[0] for d, v in as_jax.items()}, {d: v[1] for d, v in as_jax.items()}, names)


def fill_datasets(parts: dict[str, Any], datasets: Sequence[str]) -> dict[str, Any]:
    """``parts`` with zeros (shaped as any part) for the datasets missing from it, in ``datasets`` order."""
    zeros = jax.tree.map(np.zeros_like, next(iter(parts.values())))
    return {d: parts.get(d, zeros) for d in datasets}


def check_chunks(chunks: Sequence[Chunk]) -> list[Chunk]:
    """``chunks`` as a list, with at least one non-empty chunk, or a one-line InputError."""
    chunks = list(chunks)
    if not chunks:
        raise InputError("no chunks to process: plan_chunks(files) returned an empty list")
    for chunk in chunks:
        if not isinstance(chunk, Chunk):
            raise InputError(f"chunks must be diffhep.execute.Chunk ranges from plan_chunks, got {chunk!r}")
    if all(c.n_events == 0 for c in chunks):
        raise InputError(f"all {len(chunks)} chunks are empty (0 events): check the input files")
    return chunks


def prepare_chunk(
    chunk: Chunk, prepare: Callable[[Chunk], Any], cache: ChunkCache | None, pad: Callable[[Any], Any] | None
) -> Any:
    """``pad(prepare(chunk))``, ``prepare`` going through ``cache`` when given (stored unpadded).

    A ``pad`` with a ``cache_tag`` attribute (a string naming what it does, e.g.
    :class:`~diffhep.engine.chunk_padding.ShapePadder`'s) has its result kept in ``cache`` too, as a
    tagged entry: later passes map the padded chunk from disk and neither pad nor copy it.
    """
    tag = getattr(pad, "cache_tag", None) if cache is not None else None
    if tag:
        padded = cache.load(chunk, tag)
        if padded is not None:
            cache.hits += 1
            return padded
    data = cache.get(chunk, prepare) if cache is not None else prepare(chunk)
    if pad is None:
        return data
    padded = pad(data)
    if tag:
        cache.store(chunk, padded, tag)
    return padded


class ChunkedStep:
    """Value and gradient of ``objective(sum over chunks of histograms_fn(theta, data))``, streamed.

    Args:
        histograms_fn: ``(theta, chunk_data) -> pytree of float arrays``, jit-able
            and differentiable in ``theta`` (a dict of scalars).
        chunks: from :func:`~diffhep.execute.plan_chunks`; empty ones are skipped.
        prepare: ``chunk -> chunk_data``: reads the chunk and computes its static
            structure (e.g. :class:`~diffhep.execute.ReadAndPrepare`).
        cache: keeps prepared data on disk after the first pass (default: prepare every pass).
        pad: applied to each prepared chunk to limit the number of compiled
            shapes (default :func:`pad_to_buckets`; ``None`` to compile each
            chunk shape on its own).

    Attributes:
        signatures: distinct padded chunk shapes seen, one compiled program each.
    """

    def __init__(
        self,
        histograms_fn: HistogramsFn,
        chunks: Sequence[Chunk],
        *,
        prepare: Callable[[Chunk], Any],
        cache: ChunkCache | None = None,
        pad: Callable[[Any], Any] | None = pad_to_buckets,
    ) -> None:
        self.histograms_fn = histograms_fn
        self.chunks = check_chunks(chunks)
        self.prepare = prepare
        self.cache = cache
        self.pad = pad
        self.signatures: set[tuple] = set()

    @property
    def datasets(self) -> list[str]:
        """Dataset names, in chunk order."""
        return list(dict.fromkeys(c.dataset for c in self.chunks))

    def _prepared(self) -> Any:
        """Yields ``(chunk, padded data)`` of every non-empty chunk, one at a time.

        With a cache, the next chunk's entry is prefetched (:meth:`ChunkCache.prefetch`) before a chunk is
        handed out: the kernel reads it from disk while this one computes.
        """
        chunks = [c for c in self.chunks if c.n_events > 0]
        tag = getattr(self.pad, "cache_tag", None) or ""
        for i, chunk in enumerate(chunks):
            if self.cache is not None and i + 1 < len(chunks):
                _ = self.cache.prefetch(chunks[i + 1], tag) or (tag and self.cache.prefetch(chunks[i + 1]))
            data = prepare_chunk(chunk, self.prepare, self.cache, self.pad)
            self.signatures.add(padded_shapes(data))
            yield chunk, data

    def sums(self, theta: Mapping[str, Any], *, fixed: Mapping[str, Any] | None = None) -> ChunkSums:
        """Histograms and Jacobians summed over all chunks, per dataset.

        ``fixed``: scalars passed to ``histograms_fn`` with ``theta`` but not
        differentiated (e.g. a slope multiplier).
        """
        names, vec = theta_vector(theta)
        fixed_names, fixed_vec = fixed_vector(fixed)
        fn = self.histograms_fn
        run = _memo(_JACOBIANS, (fn, names, fixed_names), lambda: chunk_jacobian(fn, names, fixed_names))
        # Explicit copies to the device: theta once per step, each chunk's arrays once per step
        # (then every operation of the chunk's program runs on the device; nothing else is copied).
        theta_vec, fixed_arg = jax.device_put(vec), (jax.device_put(fixed_vec) if fixed_names else None)
        parts: dict[str, Any] | None = None
        for chunk, data in self._prepared():  # reading overlaps the previous chunk's computation
            if parts is not None:
                jax.block_until_ready(parts)  # at most two chunks alive
            parts = add_parts(parts, {chunk.dataset: run(theta_vec, jax.device_put(data), fixed_arg)})
            del data
        assert parts is not None  # check_chunks guarantees a non-empty chunk
        return to_sums(parts, self.datasets, names)

    def value_and_grad(
        self, objective_fn: ObjectiveFn, theta: Mapping[str, Any], *, fixed: Mapping[str, Any] | None = None
    ) -> StepResult:
        """``objective_fn({dataset: histograms})`` and its gradient w.r.t. ``theta``."""
        return chain_rule(objective_fn, self.sums(theta, fixed=fixed))

    def reduce(self, function: Callable[..., Any], *args: Any) -> dict[str, Any]:
        """``{dataset: sum over its chunks of function(*args, data)}`` (a pytree of arrays per chunk).

        For passes without derivatives (hard-cut histograms, cutflows);
        datasets with only empty chunks get zeros.
        """
        parts: dict[str, Any] | None = None
        for chunk, data in self._prepared():
            parts = add_parts(parts, {chunk.dataset: jax.tree.map(np.asarray, function(*args, data))})
        assert parts is not None
        return fill_datasets(parts, self.datasets)


def streaming_value_and_grad(
    histograms_fn: HistogramsFn,
    objective_fn: ObjectiveFn,
    chunks: Sequence[Chunk],
    theta: Mapping[str, Any],
    *,
    prepare: Callable[[Chunk], Any],
    cache: ChunkCache | None = None,
    pad: Callable[[Any], Any] | None = pad_to_buckets,
) -> StepResult:
    """One streamed step: see :class:`ChunkedStep` (compiled programs are reused
    across calls with the same ``histograms_fn`` and ``objective_fn`` objects)."""
    step = ChunkedStep(histograms_fn, chunks, prepare=prepare, cache=cache, pad=pad)
    return step.value_and_grad(objective_fn, theta)
