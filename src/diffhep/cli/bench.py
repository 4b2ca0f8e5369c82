"""``diffhep bench agc``: the AGC-style throughput benchmark (:mod:`diffhep.bench.agc`).

Generates AGC NanoAOD samples of the requested sizes into a work folder, times
the hard-cut forward analysis and one optimisation step (in memory, streaming,
Dask) against the plain Awkward/NumPy AGC selection, and writes ``bench.json``
(the AGC's metrics per measurement) and ``bench.md`` (a table) atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffhep.cli.common import add_command, add_compile_cache_options, say
from diffhep.errors import DiffhepError
from diffhep.outputs import write_json, write_text

EXAMPLES = """
  diffhep bench agc --events 1e5 --output work/bench/agc
  diffhep bench agc --events 1e5 1e6 1e7 --chunk-size 200000 --workers 4 --repeat 3
  diffhep bench agc --events 1e6 --scheduler tcp://10.0.0.1:8786 --output work/bench/cluster
  diffhep bench agc --events 1e6 1e7 --only step_memory step_streaming_cached
"""

#: The measurements of ``diffhep bench agc`` (as :data:`diffhep.bench.agc.MEASUREMENTS`, without importing JAX).
MEASUREMENTS = ("hard_forward", "hard_forward_plain", "step_memory", "step_streaming", "step_streaming_cached",
                "step_dask")  # fmt: skip

#: Used when the AGC template does not validate: the same selection, in this repository's benchmarks/.
FALLBACK = Path(__file__).resolve().parents[3] / "benchmarks" / "agc_config.yaml"


def add_parser(sub: argparse._SubParsersAction) -> None:
    b = add_command(
        sub,
        "bench",
        help="benchmarks: event rates against a plain Awkward implementation",
        description="Benchmarks. `diffhep bench agc`: over generated AGC NanoAOD events, the event rate of the "
        "hard-cut analysis and of one optimisation step (in memory, streaming, Dask) next to the plain "
        "Awkward/NumPy AGC selection, with peak memory and bytes read.",
        examples=EXAMPLES,
        func=run,
    )
    b.add_argument("which", choices=("agc",), help="the benchmark: agc (the AGC ttbar analysis)")
    b.add_argument(
        "--config", default=None, help="analysis config (default analyses/ttbar/config.yaml; samples are regenerated)"
    )
    b.add_argument(
        "--events",
        nargs="+",
        default=["1e5"],
        metavar="N",
        help="total generated events, one or more sizes (default 1e5)",
    )
    b.add_argument("--chunk-size", type=int, default=200_000, metavar="N", help="events per chunk (AGC: 200000)")
    b.add_argument("--workers", type=int, default=2, metavar="N", help="local Dask cluster workers (default 2)")
    b.add_argument("--scheduler", default=None, metavar="ADDRESS", help="a Dask scheduler instead of a local cluster")
    b.add_argument(
        "--dask-threads",
        action="store_true",
        help="local Dask workers as threads of this process (faster to start; shares one GIL)",
    )
    b.add_argument(
        "--variations", action="store_true", help="keep the config's histosys variations (the plain baseline has none)"
    )
    b.add_argument("--repeat", type=int, default=3, metavar="N", help="timed calls per measurement (median)")
    b.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=MEASUREMENTS,
        default=None,
        help=f"run only these measurements ({', '.join(MEASUREMENTS)}; default all)",
    )
    b.add_argument("--workdir", default="work/bench/agc-data", help="where generated samples are kept")
    b.add_argument("--output", default="work/bench/agc", help="folder for bench.json and bench.md")
    b.add_argument("--quiet", action="store_true", help="no progress lines")
    add_compile_cache_options(b)


def run(args: argparse.Namespace) -> int:
    from diffhep.bench import agc as bench_agc  # deferred: JAX loads when the command runs
    from diffhep.execute.settings import check_scheduler  # deferred: JAX loads when the command runs

    sizes = bench_agc.sizes(args.events)
    for name in ("chunk_size", "workers", "repeat"):
        if getattr(args, name) < 1:
            raise DiffhepError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    scheduler = check_scheduler(args.scheduler, "--scheduler") if args.scheduler else None
    config, note = bench_agc.config_or_fallback(Path(args.config) if args.config else None, FALLBACK)
    if note:
        say(f"note: {note}", quiet=args.quiet)
    report = {
        "benchmark": "agc", "config": str(config), "machine": bench_agc.machine(), "repeat": args.repeat,
        "settings": {"events": sizes, "chunksize": args.chunk_size, "workers": args.workers, "scheduler": scheduler,
                     "dask_processes": not args.dask_threads, "variations": args.variations,
                     "only": args.only},
        "notes": [note] if note else [], "results": [],
    }  # fmt: skip
    output = Path(args.output)
    for n in sizes:
        result = bench_agc.run_benchmark(
            config, n, Path(args.workdir), chunk_size=args.chunk_size, workers=args.workers, scheduler=scheduler,
            repeat=args.repeat, processes=not args.dask_threads, variations=args.variations, only=args.only,
            log=lambda m: say(m, quiet=args.quiet),
        )  # fmt: skip
        report["results"].append(result)
        report["machine"]["load_average_end"] = list(__import__("os").getloadavg())
        write_json(output / "bench.json", report)  # after every size: partial results survive an interrupt
        write_text(output / "bench.md", bench_agc.markdown_table(report))
    print(bench_agc.markdown_table(report), end="")
    print(f"wrote {output / 'bench.json'} and {output / 'bench.md'}")
    return 0
