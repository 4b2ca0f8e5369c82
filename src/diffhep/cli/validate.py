"""``diffhep validate CONFIG``: the config, then every file, tree and branch it names.

Order: YAML and schema, meaning checks (:func:`diffhep.config.load_config`),
the optimiser settings (built as ``diffhep optimize`` builds them), the
analysis built from it, then the data: every ``files`` entry (globs expanded)
exists, holds the tree, and has every branch the expressions need, for the
nominal samples and every variation that reads other files or branches.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from diffhep.cli.common import add_command, build_analysis, load, number, table
from diffhep.errors import ConfigError, InputError, closest
from diffhep.io.read import branch_names, expand_files, is_url, num_entries, open_file, read_events
from diffhep.outputs import write_json

EXAMPLES = """
  diffhep validate analyses/dimuon/config.yaml
  diffhep validate myana/config.yaml --no-data        # the config only, no data file is opened (plugins are imported)
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    v = add_command(
        sub,
        "validate",
        help="check a config and every file, tree and branch it names",
        description="Validate CONFIG (schema, names, references, expressions), then check that every "
        "file exists (globs expanded), holds the tree, and has every branch the config's expressions need. "
        "Prints a summary: samples, events per sample, parameters, regions.",
        examples=EXAMPLES,
        func=run,
    )
    v.add_argument("config", metavar="CONFIG", help="the analysis config (YAML)")
    v.add_argument(
        "--no-data",
        action="store_true",
        help="check the config only, open no data file (its plugins are still imported: they are Python code "
        "the config runs)",
    )
    v.add_argument("--output", default=None, help="also write the summary as JSON to this folder (validate.json)")


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    check_optimizer(config)
    analysis = build_analysis(config)
    events: dict[str, int | None] = dict.fromkeys(config.data["samples"])
    files = 0
    if not args.no_data:
        events, files = check_data(config, analysis)
    print(summary(config, analysis, events))
    if not args.no_data:
        for line in discrete_lines(analysis):
            print(line)
    print(f"\n{config.source}: OK" + ("" if args.no_data else f" ({files} files, their trees and branches found)"))
    if args.output:
        from pathlib import Path

        path = write_json(
            Path(args.output) / "validate.json",
            {
                "config": str(config.path),
                "config_hash": config.config_hash,
                "events": events,
                "parameters": [p.name for p in analysis.parameters],
                "regions": list(analysis.edges),
            },
        )
        print(f"summary written to {path}")
    return 0


def check_optimizer(config: Any) -> None:
    """Build the ``optimizer`` settings as ``diffhep optimize`` does.

    An unknown optimiser or a bad scan fails here, with the config's file and
    line, not only when the optimisation starts.
    """
    from diffhep.optimize.settings import OptimizerSettings  # deferred: Optax and JAX load when the command runs

    try:
        OptimizerSettings.from_config(config.data.get("optimizer"))
    except ConfigError as exc:
        if exc.path is not None:
            raise
        found = re.match(r"(optimizer(?:\.\w+)*): (.+)", exc.message)
        field, message = (found[1], found[2]) if found else ("optimizer", exc.message)
        raise config.error(field, message) from None


def _expand(config: Any, sample: str, patterns: tuple[str, ...], what: str) -> list[str]:

    out: list[str] = []
    for pattern in patterns:
        try:
            out += expand_files([pattern])
            if is_url(pattern):  # reached once here: a 404 or a refused connection before any work
                open_file(pattern).close()
        except InputError as exc:
            block = config.data["samples"].get(sample, {}).get("generate")
            if what.startswith(" (variation "):  # its own files: the hint only where its own generate: makes them
                systematic, side = what.removeprefix(" (variation ").removesuffix(")").split("/")
                variation = config.data.get("systematics", {}).get(systematic, {}).get(side) or {}
                if variation.get("files"):
                    block = variation.get("generate")
            hint = f"; run: diffhep generate --config {config.source}" if block and not is_url(pattern) else ""
            message = f"{config.source}: sample {sample!r}{what}: {exc}{hint}"
            raise type(exc)(message, path=exc.path, key=exc.key) from None
    return out


def check_files(config: Any) -> None:
    """Every sample's files exist (globs match, folders hold ROOT files), with the ``diffhep generate`` hint;
    no local file is opened, a URL is (its header only: it can be reached and is ROOT)."""
    for name, sample in config.resolved["samples"].items():
        if sample["role"] == "data" and config.sections.observations != "data":
            continue  # observations: pseudodata or asimov read no data
        _expand(config, name, tuple(sample["files"]), "")


def _variants(config: Any, analysis: Any) -> Iterator[tuple[str, str, Any, Any]]:
    """``(sample, description, sample def, variation)`` of everything the analysis reads."""
    if hasattr(analysis, "variants"):
        for key, sample, variation in analysis.variants():
            what = "" if key == sample.name else f" (variation {key.split('/', 1)[1]})"
            yield sample.name, what, sample, variation
        if getattr(analysis, "observations", None) == "data":  # the role: data samples, read as they are
            from diffhep.engine.loading import NOMINAL  # deferred: JAX loads when the command runs

            for sample in analysis.data_samples.values():
                yield sample.name, "", sample, NOMINAL
    else:  # an analysis without variants(): the nominal samples of the config
        for name, s in config.resolved["samples"].items():
            yield name, "", s, None


def check_data(config: Any, analysis: Any) -> tuple[dict[str, int | None], int]:
    """Check every file, tree and branch; return events per nominal sample and the number of files."""

    events: dict[str, int | None] = {}
    seen: set[tuple[str, str, str, Any]] = set()
    default_tree = config.data["tree"]
    for name, what, sample, variation in _variants(config, analysis):
        if variation is None:
            tree, patterns = sample.get("tree", default_tree), tuple(sample["files"])
        else:
            tree, patterns = sample.tree, tuple(variation.files or sample.files)
        paths = _expand(config, name, patterns, what)
        for path in paths:
            try:
                available = branch_names(path, tree)
                if (name, path, tree, id(variation)) not in seen:
                    seen.add((name, path, tree, id(variation)))
                    _check_branches(config, analysis, name, sample, variation, path, tree, available)
            except InputError as exc:
                raise InputError(f"{config.source}: sample {name!r}{what}: {exc}") from None
        if not what:
            n, limit = num_entries(paths, tree=tree), getattr(sample, "max_events", None)
            events[name] = n if limit is None else min(n, limit)  # inputs.max_events_per_sample
    return events, len({p for _, p, _, _ in seen})


def _check_branches(
    config: Any, analysis: Any, name: str, sample: Any, variation: Any, path: str, tree: str, available: list[str]
) -> None:
    """Every branch the expressions need: the engine's own resolution if it has one, else the config's names."""
    plan, defs = getattr(analysis, "branch_plan", None), getattr(analysis, "object_defs", None)
    if variation is not None and plan is not None and defs is not None:
        try:
            from diffhep.engine.loading import required_branches  # deferred: JAX loads when the command runs
        except ImportError:  # pragma: no cover - engine reorganised: fall back to the config's names
            required_branches = None
        if required_branches is not None:
            one = replace(sample, files=(path,))
            wanted, _ = required_branches(plan, defs, one, replace(variation, files=()))
            _read_ends(path, tree, sorted(wanted))
            return
    have = set(available)
    needed = needed_branches(config, name)
    for branch, where in needed.items():
        if branch not in have:
            line = config.line(where)
            where = f"{where} (line {line})" if line is not None else where
            raise InputError(f"{where}: branch {branch!r} not in {path}:{tree}{closest(branch, available)}")
    _read_ends(path, tree, sorted(needed))


def _read_ends(path: str, tree: str, branches: list[str]) -> None:
    """Read the first and the last entry of ``branches``: their first and last baskets decompress.

    The metadata alone can be intact in a truncated or damaged file; this raises
    the :class:`~diffhep.io.read.CorruptFileError` a run would raise, at the cost
    of two entries per file.
    """
    if branches and num_entries([path], tree=tree) > 0:
        read_events(path, tree=tree, branches=branches, entry_start=0, entry_stop=1)
        read_events(path, tree=tree, branches=branches, entry_start=-1)


def discrete_lines(analysis: Any) -> list[str]:
    """The comparisons of integer or boolean branches with a parameter: hard forward, sigmoid gradient.

    A value exactly on a sigmoid cut gets 0.5 at every slope; integers sit there
    whenever the cut takes an integer value, so these comparisons are the hard step
    with the straight-through gradient (:mod:`diffhep.engine.discrete`). Empty for an
    analysis without them (or without the engine's method).
    """
    found = getattr(analysis, "discrete_comparisons", None)
    lines = found() if found is not None else []
    if not lines:
        return []
    head = "discrete comparisons (integer or boolean branches): hard step forward, sigmoid gradient (straight-through):"
    return [head, *(f"  {line}" for line in lines)]


def needed_branches(config: Any, sample: str) -> dict[str, str]:
    """Branch -> config field that needs it, derived from the config's expressions (no data read)."""
    data = config.data
    params, objects = set(data["parameters"]), data["objects"]

    def collections(obj: str) -> list[str]:
        o = objects[obj]
        return [c for m in o["union"] for c in collections(m)] if o.get("union") else [o["collection"]]

    out: dict[str, str] = {}
    for where, expr in config.expressions.items():
        parts = where.split(".")
        if parts[0] == "objects":
            for field in expr.names():
                if field not in params:
                    for c in collections(parts[1]):
                        out.setdefault(f"{c}_{field}", where)
        elif parts[0] == "regions" or (parts[0] == "samples" and parts[1] == sample and parts[-1] == "weight"):
            for n in expr.names():
                if n not in params and n not in objects:
                    out.setdefault(n, where)
            for base, attr in expr.attributes():
                if base in objects and attr not in (objects[base].get("flags") or {}):
                    for c in collections(base):
                        out.setdefault(f"{c}_{attr}", where)
    return out


def summary(config: Any, analysis: Any, events: dict[str, int | None]) -> str:
    """Samples (with events), parameters and regions, as short tables."""
    data = config.data
    samples = [
        (
            k,
            s["role"],
            len(s["files"]),
            "-" if events.get(k) is None else f"{events[k]:,}",
            number(s["xsec_pb"]) if "xsec_pb" in s else "-",  # data: none
            s.get("tree", data["tree"]),
        )
        for k, s in data["samples"].items()
    ]
    params = [
        (p.name, number(p.init), f"[{number(p.low)}, {number(p.high)}]", number(p.slope), p.unit or "-")
        for p in analysis.parameters
    ]
    regions = []
    for k, r in data["regions"].items():
        b = r["binning"]
        binning = (
            f"{b['bins']} bins in [{number(b['range'][0])}, {number(b['range'][1])}]"
            if "bins" in b
            else f"{len(b['edges']) - 1} bins in [{number(b['edges'][0])}, {number(b['edges'][-1])}]"
        )
        obs = r["observable"]
        if isinstance(obs, dict):  # a network observable
            obs = f"{obs['network']}({', '.join(obs['inputs'])}; hidden {obs.get('hidden', [32, 32])})"
        regions.append((k, obs, binning))
    systematics = ", ".join(f"{k} ({s['type']})" for k, s in data["systematics"].items()) or "none"
    from diffhep.optimize.settings import OptimizerSettings  # deferred: Optax and JAX load when the command runs

    optimizer = OptimizerSettings.from_config(data.get("optimizer"))
    return "\n".join(
        [
            f"analysis {data['name']} (lumi {number(data['lumi_pb'], 8)} pb^-1, config hash {config.config_hash[:12]})",
            "samples:",
            table(("sample", "role", "files", "events", "xsec [pb]", "tree"), samples),
            "parameters:",
            table(("parameter", "init", "bounds", "slope", "unit"), params),
            "regions:",
            table(("region", "observable", "binning"), regions),
            f"systematics: {systematics}",
            f"objective: {data['objective']['name']}; optimizer: {optimizer.name}, {optimizer.steps} steps"
            + ("" if "optimizer" in data else " (the defaults: no optimizer section)"),
        ]
    )
