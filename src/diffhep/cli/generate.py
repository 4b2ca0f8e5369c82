"""``diffhep generate``: synthetic NanoAOD samples, by process or for every sample of a config.

With ``--config``, every sample with a ``generate: {process, events, seed}``
block is written to its first ``files`` entry, and so is every systematic
variation with ``files`` and a ``generate`` block (an alternative sample such
as the AGC's ttbar modelling variation). A manifest
(``diffhep-generated.json`` next to the files) records the settings of each
file written, so a second call skips files that are up to date and never
overwrites a file it did not write (unless ``--force``). Every file is written
atomically; temporary files that a killed earlier run left for the same targets
are removed first.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from diffhep.cli.common import add_command, load, table
from diffhep.errors import ConfigError, DiffhepError, closest
from diffhep.io.generate import DEFAULT_EVENTS as DIMUON_EVENTS
from diffhep.io.read import is_url
from diffhep.outputs import remove_temporaries, write_json

EXAMPLES = """
  diffhep generate --output work/data                 # dimuon processes, default sizes
  diffhep generate --output data --events 100000 --process signal --seed 7
  diffhep generate --generator agc --output data/agc --events 20000
  diffhep generate --config analyses/ttbar/config.yaml          # every sample with a generate: block
  diffhep generate --config myana/config.yaml --events 2000     # smaller, for a quick test
"""

#: generator -> (module, processes dict, sample writer, tree written).
GENERATORS = {
    "dimuon": ("diffhep.io.generate", "PROCESSES", "generate_sample", "Events"),
    "agc": ("diffhep.io.generate_agc", "AGC_PROCESSES", "generate_agc_sample", "Events"),
    "hzz": ("diffhep.io.generate_hzz", "HZZ_PROCESSES", "generate_hzz_sample", "events"),
}
DEFAULT_EVENTS = 10_000  # per process, for the agc and hzz generators
MANIFEST = "diffhep-generated.json"


def add_parser(sub: argparse._SubParsersAction) -> None:
    g = add_command(
        sub,
        "generate",
        help="write synthetic NanoAOD ROOT files",
        description="Write synthetic NanoAOD-style ROOT files: the processes of one generator "
        "(dimuon, agc, hzz) into --output, or, with --config, every sample that has a generate: block "
        "into the path its config names (skipped when already written with the same settings).",
        examples=EXAMPLES,
        func=run,
    )
    g.add_argument("--config", help="analysis config: generate the samples and variations with a generate: block")
    g.add_argument(
        "--output",
        default=None,
        help="folder for the ROOT files (default work/data, or work/data/<generator>); not with --config",
    )
    g.add_argument(
        "--generator",
        choices=list(GENERATORS),
        default=None,
        help="which generator (default dimuon; with --config: from each sample's process)",
    )
    g.add_argument(
        "--events",
        type=int,
        default=None,
        help="events per process (default: the dimuon template's sizes); with --config it overrides every sample",
    )
    g.add_argument(
        "--process",
        action="append",
        help="process to generate (repeatable; default all); with --config a process or sample name",
    )
    g.add_argument("--seed", type=int, default=None, help="random seed (default 1; a sample's own seed wins)")
    g.add_argument("--force", action="store_true", help="with --config: regenerate files even when up to date")


def _generator(name: str) -> tuple[Mapping[str, dict], Any, str]:
    module, processes, writer, tree = GENERATORS[name]
    mod = importlib.import_module(module)
    return getattr(mod, processes), getattr(mod, writer), tree


def run(args: argparse.Namespace) -> int:
    if args.events is not None and args.events < 1:
        raise DiffhepError(f"--events must be >= 1, got {args.events}")
    if args.seed is not None and args.seed < 0:
        raise DiffhepError(f"--seed must be >= 0, got {args.seed}")
    return _for_config(args) if args.config else _by_process(args)


def _by_process(args: argparse.Namespace) -> int:
    name = args.generator or "dimuon"
    processes, write, _ = _generator(name)
    defaults = DIMUON_EVENTS if name == "dimuon" else dict.fromkeys(processes, DEFAULT_EVENTS)
    chosen = args.process or list(defaults)
    for p in chosen:
        if p not in processes:
            raise DiffhepError(
                f"unknown process {p!r} of the {name} generator{closest(p, processes)}; "
                f"choose from {', '.join(processes)}"
            )
    n = {p: (args.events if args.events is not None else defaults[p]) for p in chosen}
    output = Path(args.output or ("work/data" if name == "dimuon" else f"work/data/{name}"))
    remove_temporaries(output, names=[f"{p}.root" for p in chosen])
    for p in chosen:
        path = write(output / f"{p}.root", p, n[p], seed=1 if args.seed is None else args.seed)
        print(f"{p:<8} {n[p]:>10,} events -> {path}")
    return 0


def pick_generator(process: str, where: str, config: Any) -> str:
    """The generator that has ``process`` (the ``generate`` block at ``where``, e.g. ``samples.ttbar``).

    ``ttbar`` exists in both the dimuon and the AGC generator: the generator that
    has every process of the config decides; if both do, dimuon (its original one).
    """
    having = [g for g in GENERATORS if process in _generator(g)[0]]
    if not having:
        every = sorted({p for g in GENERATORS for p in _generator(g)[0]})
        raise config.error(
            f"{where}.generate.process", f"no generator has process {process!r}{closest(process, every)}"
        )
    if len(having) > 1:
        wanted = {block["process"] for _, _, block in _blocks(config)}
        covering = [g for g in having if wanted <= set(_generator(g)[0])]
        having = covering or having
    return having[0]


def _blocks(config: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """``(name, where, block)`` of every ``generate`` block: samples (``ttbar``, ``samples.ttbar``),
    then variations with files (``scale_var/down``, ``systematics.scale_var.down``)."""
    out = [(name, f"samples.{name}", s["generate"]) for name, s in config.data["samples"].items() if s.get("generate")]
    for name, syst in (config.data.get("systematics") or {}).items():
        for side in ("up", "down"):
            variation = syst.get(side) if isinstance(syst, dict) else None
            if isinstance(variation, dict) and variation.get("generate"):
                out.append((f"{name}/{side}", f"systematics.{name}.{side}", variation["generate"]))
    return out


def _variation_files(where: str, config: Any) -> list[str]:
    _, name, side = where.split(".")
    return config.data["systematics"][name][side]["files"]


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _for_config(args: argparse.Namespace) -> int:

    if args.output is not None:
        raise DiffhepError("--output cannot be used with --config: each sample is written to the path in its `files`")
    config = load(args.config, plugins=False)
    blocks = _blocks(config)
    if not blocks:
        raise ConfigError(f"{config.source}: no sample or variation has a generate: block; nothing to generate")
    if args.process:
        known = {name for name, _, _ in blocks} | {block["process"] for _, _, block in blocks}
        for p in args.process:
            if p not in known:
                raise DiffhepError(f"--process {p!r}: no sample or generated process of that name{closest(p, known)}")
        blocks = [b for b in blocks if b[0] in args.process or b[2]["process"] in args.process]
    rows = []
    for name, where, block in blocks:
        files = (
            config.data["samples"][name]["files"] if where.startswith("samples.") else _variation_files(where, config)
        )
        target = files[0]
        if is_url(target):
            raise config.error(
                f"{where}.files[0]",
                f"{target!r} is a URL; generate: writes a local file: name one as the first entry of files",
            )
        if glob.has_magic(target):
            raise config.error(
                f"{where}.files[0]",
                f"{target!r} is a glob pattern; generate: needs a file name as the first entry of files",
            )
        path = config.resolve(target)
        remove_temporaries(path.parent, names=[path.name, MANIFEST])
        generator = pick_generator(block["process"], where, config)
        processes, write, _ = _generator(generator)
        module = importlib.import_module(GENERATORS[generator][0])
        settings = {
            "generator": generator,
            "process": block["process"],
            "events": args.events if args.events is not None else int(block["events"]),
            "seed": int(block["seed"]) if "seed" in block else (1 if args.seed is None else args.seed),
            "schema_version": getattr(module, "SCHEMA_VERSION", 1),
        }
        manifest = _read_manifest(path.parent)
        if path.exists() and not args.force:
            if manifest.get(path.name) == settings:
                rows.append((name, generator, block["process"], f"{settings['events']:,}", "up to date", path))
                continue
            if path.name not in manifest:
                rows.append((name, generator, block["process"], "-", "kept: not written by diffhep (--force)", path))
                continue

        write(path, block["process"], settings["events"], seed=settings["seed"])  # atomic: io.generate_common
        manifest = _read_manifest(path.parent)  # re-read: another sample may share the folder
        manifest[path.name] = settings
        write_json(path.parent / MANIFEST, manifest)
        rows.append((name, generator, block["process"], f"{settings['events']:,}", "written", path))
    print(
        table(
            ("sample", "generator", "process", "events", "status", "file"),
            [(*r[:5], str(r[5])) for r in rows],
            indent="",
        )
    )
    return 0
