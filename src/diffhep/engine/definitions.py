"""From a config's typed sections to definitions: parameters, samples, plugin functions, and checks across sections.

The config package validates the format and parses every expression
(:func:`diffhep.config.load_config`, :attr:`Config.sections
<diffhep.config.Config.sections>`: signal samples, roles, bounds, the objective
name are guaranteed there); these are the checks the engine needs on top, each
a one-line :class:`~diffhep.errors.ConfigError` naming ``FILE:LINE`` of the
field: known functions at each level (also plugin functions, which the loader
may not have imported), no ``==``/``!=`` against a parameter, event weights
without parameters or objects.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

from diffhep.config import FUNCTIONS, load_plugins
from diffhep.config.corrections import CorrectionSets
from diffhep.config.functions import CORRECTION, OBJECT_FUNCTIONS, REDUCTIONS
from diffhep.config.parameters import CutParameter
from diffhep.config.sections import Sections
from diffhep.engine.builtins import BUILTINS, CandidateSpec, candidate_spec
from diffhep.engine.expressions import LEADING, bit_problem, names, parameters_in, split_compare, text
from diffhep.engine.loading import SampleDef, weight_refs
from diffhep.engine.objects import ObjectDef
from diffhep.engine.regions import RegionDef
from diffhep.engine.systematics import SystematicDef, limited_files
from diffhep.errors import ConfigError, closest

__all__ = ["plugin_functions", "parse_parameters", "parse_samples", "check_expressions"]


def plugin_functions(sections: Sections) -> dict[str, Callable[..., Any]]:
    """Import the config's ``plugins`` (absolute paths; each file once); name -> every registered function,
    and ``correction`` -> the :class:`~diffhep.config.corrections.CorrectionSets` of its ``corrections:`` files."""
    if sections.plugins:
        load_plugins(sections.plugins)
    functions: dict[str, Callable[..., Any]] = dict(FUNCTIONS)
    if sections.corrections:
        functions[CORRECTION] = CorrectionSets(sections.corrections)
    return functions


def parse_parameters(sections: Sections) -> tuple[CutParameter, ...]:
    """The cut parameters, in config order."""
    return sections.parameters.values


def parse_samples(sections: Sections) -> dict[str, SampleDef]:
    """Sample name -> its definition (files absolute, weight parsed by the config package; with
    ``inputs.max_files_per_sample``, the first files its patterns expand to)."""
    return {
        name: SampleDef(
            name=name,
            role=s.role,
            files=limited_files(s.files, s.max_files, f"sample {name!r}"),
            tree=s.tree,
            xsec_pb=s.xsec_pb,
            weight=s.weight.tree.body,
            weight_text=s.weight_text,
            normalisation=s.normalisation,
            max_files=s.max_files,
            max_events=s.max_events,
        )
        for name, s in sections.samples.items()
    }


def _check_calls(
    node: ast.AST, allowed: set[str], parameters: Mapping[str, Any], error: Callable[[str], ConfigError]
) -> None:
    """Known functions only, ``bit(x, n)`` with a constant ``n``; no ``==``/``!=`` against a parameter
    (``error(message)``: the located error)."""
    for n in ast.walk(node):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id not in allowed:
            raise error(f"unknown function {n.func.id!r}{closest(n.func.id, sorted(allowed))} (in {text(node)!r})")
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "bit":
            problem = bit_problem(n, parameters)
            if problem:
                raise error(f"{problem} (in {text(n)!r})")
        if isinstance(n, ast.Compare):
            for single in split_compare(n):
                if isinstance(single.ops[0], (ast.Eq, ast.NotEq)) and parameters_in(single, parameters):
                    raise error(f"'==' and '!=' cannot compare with a parameter, use < or > (in {text(single)!r})")


def check_expressions(
    defs: Mapping[str, ObjectDef],
    region_defs: Mapping[str, RegionDef],
    samples: Mapping[str, SampleDef],
    systematic_defs: list[SystematicDef],
    parameters: Mapping[str, Any],
    functions: Mapping[str, Callable[..., Any]],
    sections: Sections,
) -> dict[str, CandidateSpec]:
    """Known functions everywhere, fixed event weights; returns every candidate observable of the regions.

    Errors are ``FILE:LINE: field.path: ...`` (:meth:`Sections.error`) of the field they are about.
    """

    def located(*path: str) -> Callable[[str], ConfigError]:
        return lambda message: sections.error(path, message)

    object_level = set(OBJECT_FUNCTIONS) | set(functions) - {CORRECTION}  # correction(): event weights only
    for d in defs.values():
        for part, node in d.expressions().items():
            _check_calls(node, object_level, parameters, located("objects", d.name, *part.split(".")))
    event_level = object_level | set(REDUCTIONS) | set(BUILTINS)
    specs: dict[str, CandidateSpec] = {}
    for name, r in region_defs.items():
        for part, node in (("select", r.select), ("observable", r.observable)):
            if node is None:
                continue
            network = {LEADING} if isinstance(node, ast.Tuple) else set()  # a network's inputs: leading(c.f, i) too
            _check_calls(node, event_level | network, parameters, located("regions", name, part))
            for n in ast.walk(node):
                spec = candidate_spec(n, defs, sections.where(("regions", name, part)))
                if spec is not None:
                    specs[spec.key] = spec
    weights = [(("samples", s.name, "weight"), s.weight, False) for s in samples.values()]
    weights += [
        (("systematics", syst.name, direction, "weight"), variation.weight, True)
        for syst in systematic_defs
        for direction, variation in (("up", syst.up), ("down", syst.down))
        if variation is not None
    ]
    for path, node, variation in weights:
        if node is None:
            continue
        weight_functions = object_level | {CORRECTION} | ({LEADING} if variation else set())
        _check_calls(node, weight_functions, parameters, located(*path))
        if variation:
            weight_refs(node, defs, sections.where(path))  # objects only as leading(obj.field, i)
        wrong = [n for n in names(node) if n in parameters or (n in defs and not variation)]
        if wrong:
            raise sections.error(
                path,
                f"{text(node)!r} uses {', '.join(map(repr, wrong))}: event weights are fixed, "
                "written with event branches and numbers only"
                + (f" (and {LEADING}(object.field, i) in variation weights)" if variation else ""),
            )
    return specs
