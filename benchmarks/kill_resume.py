"""kill -9 at random moments of ``diffhep optimize``, then ``--resume``: nothing lost, nothing mixed.

The longer twin of ``tests/optimize/test_optimize_resume.py`` (issue 18): that test kills
at a few chosen points (after a checkpoint, inside a checkpoint write); this script kills
at random wall-clock moments, wherever they land (importing, compiling, a step, a
checkpoint write, the evaluation, the scan, the final outputs), and resumes until the
job completes. Each trial passes when

* after every kill, every file in the output folder is either absent or complete: each
  ``*.json`` parses, each checkpoint the job names in ``checkpoints/latest`` loads
  (``numpy.load``), and ``results.json`` (if there) belongs to the run's config;
* the resumed job's final cuts and history equal the uninterrupted run's bit for bit;
* no temporary file (``.name.XXXX``) is left once the job completes.

Usage::

    python benchmarks/kill_resume.py --trials 4 --kills 3 --seed 1

Prints one line per kill and a summary; exits 1 on any failure. Needs no GPU; takes a few
minutes (every process imports JAX and compiles the step again).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CONFIG = """\
name: tiny
lumi_pb: 10000.0
samples:
  signal:
    role: signal
    files: [data/signal.root]
    xsec_pb: 0.5
    weight: genWeight
    generate: {process: signal, events: 300}
  dy:
    role: background
    files: [data/dy.root]
    xsec_pb: 60.0
    weight: genWeight
    generate: {process: dy, events: 600, seed: 3}
parameters:
  met_max: {init: 60, bounds: [10, 150], slope: 0.2, unit: GeV}
  muon_pt_min: {init: 20, bounds: [5, 60], slope: 0.5, unit: GeV}
objects:
  muons:
    collection: Muon
    require: abs(eta) < 2.4
    cuts: pt > muon_pt_min
    order: pt
regions:
  sr:
    select: count(muons) >= 2 and MET_pt < met_max
    observable: pair_mass(muons)
    binning: {bins: 8, range: [60, 140]}
    bandwidth: 2
measurement:
  poi: mu
objective:
  name: asimov_significance
optimizer:
  name: adam
  learning_rate: 0.1
  steps: 12
  slope_schedule: {start: 1.0, end: 4.0}
  checkpoint_every: 1
  scan: {points: 2, width: 0.1}
"""


def diffhep(*argv: str) -> list[str]:
    return [sys.executable, "-m", "diffhep.cli", *argv]


def optimize(config: Path, out: Path, *extra: str) -> list[str]:
    return diffhep("optimize", str(config), "--output", str(out), "--quiet", *extra)


def outcome(out: Path) -> dict:
    results = json.loads((out / "results.json").read_text())
    return {"final": results["final"], "history": results["history"], "config_hash": results["config_hash"]}


def check_folder(out: Path, config_hash: str) -> list[str]:
    """Problems of a folder left by a killed run: half-written files, another run's results."""
    problems = []
    for path in out.rglob("*.json"):
        if path.name.startswith("."):
            continue  # a temporary file of an interrupted write: removed by the next run
        try:
            data = json.loads(path.read_text())
        except ValueError:
            problems.append(f"{path.name} does not parse")
            continue
        if path.name == "results.json" and data.get("config_hash") != config_hash:
            problems.append("results.json of another config")
    latest = out / "checkpoints" / "latest"
    if latest.is_file():
        name = latest.read_text().strip()
        try:
            with np.load(out / "checkpoints" / name) as checkpoint:
                list(checkpoint.keys())
        except (OSError, ValueError) as exc:
            problems.append(f"checkpoints/latest names {name}, which does not load ({exc})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4, help="independent interrupted jobs (default 4)")
    parser.add_argument("--kills", type=int, default=3, help="kills per trial before it may complete (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the kill moments")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="diffhep-kill-"))
    try:
        config = work / "tiny.yaml"
        config.write_text(CONFIG)
        subprocess.run(diffhep("generate", "--config", str(config)), check=True, capture_output=True)
        start = time.perf_counter()
        subprocess.run(optimize(config, work / "reference"), check=True, capture_output=True)
        duration = time.perf_counter() - start
        reference = outcome(work / "reference")
        print(f"uninterrupted run: {duration:.1f} s, final cuts {reference['final']}")
        failures, kills = 0, 0
        for trial in range(args.trials):
            out = work / f"trial{trial}"
            resume: tuple[str, ...] = ()
            for attempt in range(args.kills + 1):
                process = subprocess.Popen(
                    optimize(config, out, *resume), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
                delay = rng.uniform(0.0, duration) if attempt < args.kills else None
                try:
                    process.wait(timeout=delay)
                    killed = False
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                    killed = True
                resume = ("--resume",)
                if not killed:
                    if process.returncode != 0:
                        failures += 1
                        print(f"trial {trial}: exit status {process.returncode}: {process.stderr.read()[-500:]!r}")
                    break
                kills += 1
                steps = len(list((out / "checkpoints").glob("step_*.npz"))) if (out / "checkpoints").is_dir() else 0
                problems = check_folder(out, reference["config_hash"]) if out.is_dir() else []
                print(f"trial {trial}: killed at {delay:.1f} s ({steps} checkpoints){': ' if problems else ''}"
                      f"{'; '.join(problems)}")  # fmt: skip
                failures += bool(problems)
            got = outcome(out) if (out / "results.json").is_file() else None
            leftovers = [p.name for p in out.rglob(".*")]
            if got != reference:
                failures += 1
                print(f"trial {trial}: the resumed job differs from the uninterrupted one")
            if leftovers:
                failures += 1
                print(f"trial {trial}: temporary files left: {leftovers}")
        print(f"{args.trials} trials, {kills} kills, {failures} failures")
        return 1 if failures else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
