"""What an analysis's optimisation step compiles: its size by source function, and the time to compile it.

Loads CONFIG in memory (its samples must exist: ``diffhep generate --config CONFIG``), takes the
value and gradient of its soft objective at the starting cuts (the program of an optimisation
step), and prints

* the number of JAX equations of that program (nested ones included) grouped by the diffhep
  function that wrote them, the largest first: where a program is large, XLA takes long;
* the same for the histograms alone (the selection) and for the figure of merit alone (spec,
  likelihood, objective), each with its gradient;
* the seconds of tracing, lowering and XLA compilation of each, measured in this process.

Usage::

    python benchmarks/compile_step.py analyses/ttbar/config.yaml [--top 15] [--test-flags]

``--test-flags`` compiles with the XLA flags of the test suite (``tests/conftest.py``: backend
optimisations off); the default is XLA's own (what ``diffhep optimize`` compiles). Nothing is
cached: measure on an idle machine, one run at a time (issue 17 item 4).
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import sys
import time

TEST_FLAGS = (
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    " --xla_cpu_use_fusion_emitters=false --xla_disable_hlo_passes=constant_folding"
)


def _walk(jaxpr, by_function: collections.Counter) -> int:
    """Equations of ``jaxpr`` and of the jaxprs nested in it, counted by the user function that wrote each."""
    from jax._src import source_info_util  # the frame JAX attributes an equation to (no public API)

    n = 0
    for eqn in jaxpr.eqns:
        n += 1
        frame = source_info_util.user_frame(eqn.source_info.traceback) if eqn.source_info.traceback else None
        where = f"{frame.file_name.split('diffhep/')[-1]}:{frame.function_name}" if frame else "(JAX internal)"
        by_function[where] += 1
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                inner = sub if hasattr(sub, "eqns") else getattr(sub, "jaxpr", None)
                if inner is not None and hasattr(inner, "eqns"):
                    n += _walk(inner, by_function)
    return n


def _measure(label: str, fn, args: tuple, top: int) -> None:
    import jax

    start = time.perf_counter()
    closed = jax.make_jaxpr(fn)(*args)
    traced = time.perf_counter()
    by_function: collections.Counter = collections.Counter()
    n = _walk(closed.jaxpr, by_function)
    jitted = jax.jit(fn)
    lower_start = time.perf_counter()
    lowered = jitted.lower(*args)
    lowered_at = time.perf_counter()
    lowered.compile()
    compiled_at = time.perf_counter()
    print(f"\n{label}: {n:,} equations; trace {traced - start:.2f} s, lower {lowered_at - lower_start:.2f} s, "
          f"XLA compile {compiled_at - lowered_at:.2f} s")  # fmt: skip
    for where, count in by_function.most_common(top):
        print(f"  {count:7,d}  {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--top", type=int, default=12, help="functions listed per program (default 12)")
    parser.add_argument("--test-flags", action="store_true", help="the test suite's XLA flags")
    args = parser.parse_args()
    if args.test_flags:
        os.environ["XLA_FLAGS"] = TEST_FLAGS
    import jax
    import jax.numpy as jnp

    from diffhep.config import load_config
    from diffhep.engine.configured import ConfiguredAnalysis

    analysis = ConfiguredAnalysis(load_config(args.config))
    data = analysis.load()
    cuts = {p.name: jnp.asarray(float(p.init)) for p in analysis.parameters}
    print(f"{args.config}: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, JAX {jax.__version__}, "
          f"XLA flags: {'the tests' if args.test_flags else 'default'}")  # fmt: skip
    _measure(
        "step (value and gradient of the objective)", jax.value_and_grad(analysis.objective), (cuts, data), args.top
    )
    _measure("histograms alone (forward)", lambda c, d: analysis.soft_histograms(c, d), (cuts, data), args.top)
    histograms = analysis.soft_histograms(cuts, data)
    _measure("figure of merit alone (value and gradient)", jax.value_and_grad(analysis.figure_of_merit), (histograms,), args.top)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
