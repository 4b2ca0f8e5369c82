"""The architecture, checked on every run: which package may import which, no cycles.

The allowed arrows are written down once (:data:`ALLOWED`): the core (``jagged``,
``select``, ``histogram``, ``likelihood``, ``infer``) never imports the edges, the
engine never imports the optimiser, the optimiser never imports the report, and
only ``cli`` sits on top. Imports under ``if TYPE_CHECKING:`` are annotations, not
imports, and are not counted. A function-level import of another diffhep package
is allowed only with a ``# deferred:`` comment on its line saying why (a heavy
optional dependency).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "diffhep"

_CORE = {"errors", "jagged", "select", "histogram", "likelihood", "infer"}
#: package -> the packages it may import (besides itself). Top-level modules count as packages.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "outputs": {"errors"},
    "io": {"errors"},
    "jagged": {"errors"},
    "select": {"errors", "jagged"},
    "histogram": {"errors", "jagged"},
    "likelihood": {"errors"},
    "infer": {"errors", "likelihood"},
    "config": {"errors"},
    "execute": {"errors", "io", "jagged", "config"},
    "engine": _CORE | {"io", "config", "execute", "outputs"},
    "examples": _CORE | {"io", "config"},
    "optimize": _CORE | {"config", "engine", "outputs"},
    "report": {"errors", "outputs", "histogram"},
    "workflow": _CORE | {"io", "config", "execute", "engine", "optimize", "report", "outputs"},
    "bench": _CORE | {"io", "config", "execute", "engine", "optimize", "workflow", "examples", "outputs"},
    "cli": set(),  # filled below: the command line may import everything
    "": set(),  # diffhep/__init__.py
}
ALLOWED["cli"] = set(ALLOWED) - {"cli"}
for _deps in ALLOWED.values():  # ``diffhep/__init__`` holds only the version and imports nothing
    _deps.add("")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """``(imported diffhep module, line, inside a function)`` of every runtime import of ``path``."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, in_function)
                continue
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, inner) for a in child.names if a.name.startswith("diffhep"))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.startswith("diffhep"):
                    # ``from diffhep.x import y`` may import the module diffhep.x.y
                    names = [f"{target}.{a.name}" for a in child.names]
                    resolved = [n for n in names if _exists(n)]
                    out.extend((n, child.lineno, inner) for n in (resolved or [target]))
                    if resolved and len(resolved) < len(names):
                        out.append((target, child.lineno, inner))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return out


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file()


def _graph() -> dict[str, dict[str, tuple[int, bool]]]:
    graph: dict[str, dict[str, tuple[int, bool]]] = defaultdict(dict)
    for path in sorted(SRC.rglob("*.py")):
        for target, line, in_function in _imports(path):
            graph[_module_name(path)].setdefault(target, (line, in_function))
    return graph


def test_every_package_is_placed():
    packages = {_package(_module_name(p)) for p in SRC.rglob("*.py")}
    assert packages <= set(ALLOWED), f"add {sorted(packages - set(ALLOWED))} to ALLOWED in {__file__}"


def _violations(graph: dict[str, dict[str, tuple[int, bool]]]) -> list[str]:
    wrong = []
    for module, targets in graph.items():
        for target, (line, _) in targets.items():
            a, b = _package(module), _package(target)
            if a != b and b not in ALLOWED[a]:
                wrong.append(f"{module}:{line} imports {target} ({a or 'diffhep'} -> {b or 'diffhep'})")
    return wrong


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    """Every cycle found by a depth-first search (a package ``__init__`` re-exporting its modules is none)."""
    cycles: list[str] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == node:
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                dfs(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            dfs(node)
    return [c for c in cycles if not _only_reexport(c)]


def _only_reexport(cycle: str) -> bool:
    nodes = cycle.split(" -> ")
    return any(b.startswith(a + ".") for a, b in zip(nodes, nodes[1:])) and len(set(nodes)) == 2


def test_imports_point_one_way():
    wrong = _violations(_graph())
    assert not wrong, "imports against the architecture:\n" + "\n".join(wrong)


def test_no_import_cycles():
    cycles = _cycles({m: set(t) for m, t in _graph().items()})
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checks_find_what_they_look_for():
    """The checks above can fail: a back-edge and a cycle in a made-up graph are reported."""
    assert _violations({"diffhep.infer.fit": {"diffhep.engine.configured": (3, False)}}) == [
        "diffhep.infer.fit:3 imports diffhep.engine.configured (infer -> engine)"
    ]
    assert _violations({"diffhep.engine.configured": {"diffhep.infer.fit": (3, False)}}) == []
    graph = {"diffhep.jagged.core": {"diffhep.jagged.reduce"}, "diffhep.jagged.reduce": {"diffhep.jagged.core"}}
    assert _cycles(graph) == ["diffhep.jagged.core -> diffhep.jagged.reduce -> diffhep.jagged.core"]
    assert _cycles({"diffhep.jagged": {"diffhep.jagged.core"}, "diffhep.jagged.core": {"diffhep.jagged"}}) == []


def test_function_level_imports_of_other_packages_say_why():
    lines_of: dict[str, list[str]] = {}
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        for target, line, in_function in _imports(path):
            if in_function and _package(target) != _package(module):
                lines = lines_of.setdefault(module, path.read_text(encoding="utf-8").splitlines())
                statement = lines[line - 1 : line + 6]  # the formatter may wrap the import and move the comment
                text = "\n".join(
                    statement[: next((i + 1 for i, s in enumerate(statement) if ")" in s or "# deferred:" in s), 1)]
                )
                if "# deferred:" not in text:
                    bad.append(f"{module}:{line} imports {target} inside a function without '# deferred: <why>'")
    assert not bad, "\n".join(bad)


def test_every_package_docstring_maps_its_modules():
    """Each package's ``__init__`` docstring names every one of its modules (the package map)."""
    import re

    missing = []
    for init in sorted(SRC.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        for module in sorted(init.parent.glob("*.py")):
            name = module.stem
            if name.startswith("_"):
                continue
            if not re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", doc):
                missing.append(f"{init.parent.name}/__init__.py does not mention module {name!r}")
    top = ast.get_docstring(ast.parse((SRC / "__init__.py").read_text(encoding="utf-8"))) or ""
    for package in sorted(p.parent.name for p in SRC.glob("*/__init__.py")):
        if f"diffhep.{package}" not in top:
            missing.append(f"diffhep/__init__.py does not mention package diffhep.{package}")
    assert not missing, "\n".join(missing)
