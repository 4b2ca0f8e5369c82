"""Executing an analysis step over data that do not fit in memory: streaming and Dask.

Pipeline of one optimisation step over chunked data:

* :mod:`diffhep.execute.chunks`: :func:`plan_chunks` splits files into
  ``(file, start, stop)`` ranges (200k events by default, as in the AGC);
  :class:`ReadAndPrepare` reads a chunk with uproot and computes its static
  structure;
* :mod:`diffhep.execute.cache`: :class:`ChunkCache` keeps prepared chunks on
  disk (memory-mapped, padded once) so that later passes read no ROOT file;
* :mod:`diffhep.execute.buckets`: :func:`pad_to_buckets` pads chunks to a few
  shapes so that they share compiled programs;
* :mod:`diffhep.execute.streaming`: :class:`ChunkedStep` /
  :func:`streaming_value_and_grad`: per chunk ``(H_c, dH_c/dtheta)`` in forward
  mode, summed, then the chain rule with the objective; one chunk in memory;
* :mod:`diffhep.execute.dask`: :class:`DaskStep`, the same map-reduce on
  ``dask.distributed`` with prepared chunks kept in worker memory;
  :mod:`diffhep.execute.pinning`: :class:`~diffhep.execute.pinning.CoreShare`, each
  worker of a local cluster on its own share of the cores (imports ``distributed``);
* :mod:`diffhep.execute.settings`: :class:`ExecutionSettings`, the config's
  ``execution:`` section (mode, chunk size, scheduler, workers, cache);
* :mod:`diffhep.execute.compile_cache`: JAX's persistent compilation cache as the
  command line turns it on (compiled programs kept on disk for the next process).

Configured analyses run through these with
:class:`diffhep.engine.chunked.ChunkedAnalysis`.
"""

from diffhep.execute.buckets import bucket, pad_to_buckets
from diffhep.execute.cache import ChunkCache
from diffhep.execute.chunks import AGC_CHUNK_SIZE, Chunk, ReadAndPrepare, plan_chunks, read_chunk
from diffhep.execute.dask import DaskStep
from diffhep.execute.settings import MODES, ExecutionSettings
from diffhep.execute.streaming import (
    ChunkedStep,
    ChunkSums,
    StepResult,
    chain_rule,
    streaming_value_and_grad,
)

__all__ = [
    "AGC_CHUNK_SIZE",
    "Chunk",
    "ChunkCache",
    "ChunkSums",
    "ChunkedStep",
    "DaskStep",
    "ExecutionSettings",
    "MODES",
    "ReadAndPrepare",
    "StepResult",
    "bucket",
    "chain_rule",
    "pad_to_buckets",
    "plan_chunks",
    "read_chunk",
    "streaming_value_and_grad",
]
