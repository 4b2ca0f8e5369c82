"""Cold against warm compilation cache: ``diffhep optimize`` in a fresh process, twice (issue 17 item 4).

Runs ``diffhep optimize CONFIG --steps N`` with an empty ``--compile-cache`` folder
(every program compiled and stored), then again with the same folder (programs read),
and ``--repeat`` more warm runs; each in its own process, as a user reruns a job.
For every run it prints, from the wall-clock time of each line on stderr:

* ``ready``: from the start of the process to the line ``optimising ...`` (config
  read, events loaded, the starting cuts evaluated with hard cuts and pyhf; the
  optimisation step's program is compiled here, in the first evaluation);
* ``total``: the whole command;
* the cache's own line (programs read / compiled).

Usage::

    python benchmarks/compile_cache.py analyses/dimuon/config.yaml --steps 2 --repeat 2

The config's samples must exist (``diffhep generate --config CONFIG``). Prints the
medians of the warm runs and their ratio to the cold run. Measure on an idle machine.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(config: str, steps: int, cache: Path, output: Path) -> dict[str, float | str]:
    command = [sys.executable, "-m", "diffhep.cli", "optimize", config, "--steps", str(steps)]
    command += ["--output", str(output), "--compile-cache", str(cache)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    ready, line_of_cache = float("nan"), ""
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("optimising") and math.isnan(ready):
            ready = time.perf_counter() - start
        if line.startswith("compile cache"):
            line_of_cache = line.strip()
    if proc.wait() != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {proc.returncode})")
    return {"ready": ready, "total": time.perf_counter() - start, "cache": line_of_cache}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="warm runs after the first warm one")
    args = parser.parse_args(argv)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    with tempfile.TemporaryDirectory(prefix="diffhep-compile-cache-") as tmp:
        cache = Path(tmp) / "cache"
        runs = []
        for i in range(2 + args.repeat):
            result = _run(args.config, args.steps, cache, Path(tmp) / f"out{i}")
            kind = "cold" if i == 0 else "warm"
            print(f"{kind}  ready {result['ready']:6.1f} s  total {result['total']:6.1f} s  {result['cache']}")
            runs.append(result)
    cold, warm = runs[0], runs[1:]
    ready = statistics.median(r["ready"] for r in warm)
    total = statistics.median(r["total"] for r in warm)
    print(
        f"median of {len(warm)} warm runs: ready {ready:.1f} s (cold {cold['ready']:.1f} s, x{cold['ready'] / ready:.2f}), "
        f"total {total:.1f} s (cold {cold['total']:.1f} s, x{cold['total'] / total:.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
