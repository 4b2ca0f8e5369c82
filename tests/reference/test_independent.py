"""The oracles in this folder import nothing from diffhep (README.md): checked on their source."""

import ast
from pathlib import Path

HERE = Path(__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def test_oracles_import_nothing_from_diffhep():
    oracles = [p for p in sorted(HERE.glob("*.py")) if not p.name.startswith("test_")]
    assert [p.name for p in oracles] == ["agc.py", "hzz.py"]
    for path in oracles:
        bad = {m for m in imported_modules(path) if m.split(".")[0] == "diffhep" or m.startswith(".")}
        assert not bad, f"{path.name} imports {sorted(bad)}"
