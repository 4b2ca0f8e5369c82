"""From a config dict to definitions: parameters, samples, plugin functions, and checks across sections.

The config package validates the format (:func:`diffhep.config.load_config`);
these are the checks the engine needs on top, each a one-line
:class:`~diffhep.errors.ConfigError`: known functions at each level, no
``==``/``!=`` against a parameter, event weights without parameters or
objects, at least one signal sample.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from diffhep.engine.builtins import BUILTINS, CandidateSpec, candidate_spec
from diffhep.engine.expressions import ELEMENTWISE, LEADING, names, parameters_in, parse, split_compare, text
from diffhep.engine.loading import SampleDef, weight_refs
from diffhep.engine.objects import ObjectDef
from diffhep.config import FUNCTIONS, load_plugins
from diffhep.config.parameters import CutParameter
from diffhep.engine.regions import RegionDef
from diffhep.engine.systematics import SystematicDef
from diffhep.errors import ConfigError, closest

__all__ = ["plugin_functions", "parse_parameters", "parse_samples", "check_expressions"]

_REDUCTIONS = ("count", "sum", "any")


def plugin_functions(config: Mapping[str, Any], base: Path) -> dict[str, Callable[..., Any]]:
    """Import the config's ``plugins`` (paths relative to ``base``); name -> every registered function."""
    if config.get("plugins"):
        load_plugins([base / p for p in config["plugins"]])
    return dict(FUNCTIONS)


def parse_parameters(config: Mapping[str, Mapping[str, Any]]) -> tuple[CutParameter, ...]:
    out = []
    for name, p in (config or {}).items():
        lo, hi = p["bounds"]
        out.append(
            CutParameter(
                name,
                float(p["init"]),
                float(lo),
                float(hi),
                slope=float(p["slope"]),
                unit=str(p.get("unit", "")),
                description=str(p.get("description", "")),
            )
        )
    return tuple(out)


def parse_samples(config: Mapping[str, Mapping[str, Any]], base: Path, tree: str) -> dict[str, SampleDef]:
    out = {}
    for name, s in config.items():
        role = s.get("role", "background")
        if role not in ("signal", "background"):
            raise ConfigError(f"sample {name!r}: role must be signal or background, got {role!r}")
        weight = s.get("weight")
        files = s.get("files") or []
        out[name] = SampleDef(
            name=name,
            role=role,
            files=tuple(str(base / f) for f in ([files] if isinstance(files, str) else files)),
            tree=str(s.get("tree", tree)),
            xsec_pb=float(s["xsec_pb"]),
            weight=None if weight is None else parse(weight, f"sample {name!r} weight"),
            weight_text="1" if weight is None else str(weight),
        )
    if not any(s.role == "signal" for s in out.values()):
        raise ConfigError("no sample has role: signal (the parameter of interest scales the signal samples)")
    return out


def _check_calls(node: ast.AST, allowed: set[str], where: str, parameters: Mapping[str, Any]) -> None:
    """Known functions only; no ``==``/``!=`` against a parameter."""
    for n in ast.walk(node):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id not in allowed:
            raise ConfigError(
                f"{where}: unknown function {n.func.id!r}{closest(n.func.id, sorted(allowed))} (in {text(node)!r})"
            )
        if isinstance(n, ast.Compare):
            for single in split_compare(n):
                if isinstance(single.ops[0], (ast.Eq, ast.NotEq)) and parameters_in(single, parameters):
                    raise ConfigError(
                        f"{where}: '==' and '!=' cannot compare with a parameter, use < or > (in {text(single)!r})"
                    )


def check_expressions(
    defs: Mapping[str, ObjectDef],
    region_defs: Mapping[str, RegionDef],
    samples: Mapping[str, SampleDef],
    systematic_defs: list[SystematicDef],
    parameters: Mapping[str, Any],
    functions: Mapping[str, Callable[..., Any]],
) -> dict[str, CandidateSpec]:
    """Known functions everywhere, fixed event weights; returns every candidate observable of the regions."""
    object_level = set(ELEMENTWISE) | set(functions)
    for d in defs.values():
        for part, node in d.expressions().items():
            _check_calls(node, object_level, d.where(part), parameters)
    event_level = object_level | set(_REDUCTIONS) | set(BUILTINS)
    specs: dict[str, CandidateSpec] = {}
    for name, r in region_defs.items():
        for part, node in (("select", r.select), ("observable", r.observable)):
            if node is None:
                continue
            where = f"region {name!r} {part}"
            _check_calls(node, event_level, where, parameters)
            for n in ast.walk(node):
                spec = candidate_spec(n, defs, where)
                if spec is not None:
                    specs[spec.key] = spec
    weights = [(f"sample {s.name!r} weight", s.weight, False) for s in samples.values()]
    weights += [
        (f"systematic {syst.name!r} {direction} weight", variation.weight, True)
        for syst in systematic_defs
        for direction, variation in (("up", syst.up), ("down", syst.down))
        if variation is not None
    ]
    for where, node, variation in weights:
        if node is None:
            continue
        _check_calls(node, object_level | ({LEADING} if variation else set()), where, parameters)
        if variation:
            weight_refs(node, defs, where)  # objects only as leading(obj.field, i)
        wrong = [n for n in names(node) if n in parameters or (n in defs and not variation)]
        if wrong:
            raise ConfigError(
                f"{where} {text(node)!r} uses {', '.join(map(repr, wrong))}: event weights are fixed, "
                "written with event branches and numbers only"
                + (f" (and {LEADING}(object.field, i) in variation weights)" if variation else "")
            )
    return specs
