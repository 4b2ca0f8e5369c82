"""``diffhep new NAME --from TEMPLATE``: copy a template analysis into a new folder, ready to edit.

The template is a folder ``<TEMPLATE>/`` of :func:`~diffhep.config.templates.template_root`
(``analyses/`` of the source checkout, shipped in the wheel as ``diffhep/templates/``:
``config.yaml``, ``README.md``, optional plugin modules). Data files
(``*.root``) are not copied: every relative ``files`` path of the config (and
of a plugin that is not copied) is rewritten, on its own line so comments stay,
to point from the new folder to the same data; so are those of every other
config (``*.yaml``, e.g. a variant on real data) in the template folder. The folder appears whole or not
at all, and an existing folder is never overwritten.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
from pathlib import Path

from diffhep.cli.common import add_command, load
from diffhep.config.templates import is_installed, template_names, template_root
from diffhep.errors import DiffhepError, closest
from diffhep.io.read import is_url

EXAMPLES = """
  diffhep new myana --from dimuon                    # ./myana/config.yaml, README.md
  diffhep new ttbar_tight --from ttbar --output studies
  diffhep new test --from mine --templates ~/my-templates   # templates from another folder
"""

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.root", ".ipynb_checkpoints", "diffhep-generated.json")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def add_parser(sub: argparse._SubParsersAction) -> None:
    n = add_command(
        sub,
        "new",
        help="copy a template analysis into a new folder",
        description="Copy the template analysis TEMPLATE (config.yaml, README.md, plugins) into OUTPUT/NAME, "
        "with the config's relative data paths rewritten to point to the template's data from there.",
        examples=EXAMPLES,
        func=run,
    )
    n.add_argument("name", metavar="NAME", help="the new analysis (folder name and the config's name)")
    n.add_argument(
        "--from",
        dest="template",
        required=True,
        metavar="TEMPLATE",
        help="template analysis (a folder of the templates with a config.yaml)",
    )
    n.add_argument("--output", default=".", help="folder in which NAME/ is created (default: current folder)")
    n.add_argument(
        "--templates",
        default=None,
        metavar="DIR",
        help="folder of template analyses (default: the templates installed with diffhep)",
    )


def templates_folder(given: str | None) -> Path:
    """``--templates``, or the templates shipped with diffhep (:func:`~diffhep.config.templates.template_root`)."""
    if given is not None:
        folder = Path(given).expanduser()
        if not folder.is_dir():
            raise DiffhepError(f"--templates {given}: not a folder")
        return folder

    folder = template_root()
    if not folder.is_dir():
        raise DiffhepError(
            f"no template analyses: looked in {folder} (neither diffhep/templates of a wheel nor "
            "analyses/ of a source checkout); pass --templates DIR"
        )
    return folder


def templates(folder: Path) -> list[str]:
    """Names of the template analyses in ``folder`` (sub-folders with a config.yaml)."""
    return template_names(folder)


def run(args: argparse.Namespace) -> int:
    name = args.name
    if not _NAME.match(name) or name in (".", ".."):
        raise DiffhepError(f"NAME {name!r}: expected a folder name of letters, digits, '_', '.', '-'")
    folder = templates_folder(args.templates)
    known = templates(folder)
    if args.template not in known:
        raise DiffhepError(
            f"unknown template {args.template!r}{closest(args.template, known)}; "
            f"available in {folder}: {', '.join(known) or 'none'}"
        )
    source = folder / args.template
    anchor = _data_anchor(folder, source)
    parent = Path(args.output)
    dest = parent / name
    if dest.exists():
        raise DiffhepError(f"{dest} already exists; choose another NAME or --output, or remove it first")
    config = load(source / "config.yaml", plugins=False)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))  # same parent: relative paths resolve alike
    try:
        shutil.copytree(source, tmp, ignore=_IGNORE, dirs_exist_ok=True)
        _remove_empty_folders(tmp)
        changed, kept = rewrite(tmp / "config.yaml", config, anchor, tmp.resolve(), name)
        load(tmp / "config.yaml", plugins=False)
        for other in sorted(source.glob("*.yaml")):
            if other.name == "config.yaml" or other.is_symlink():
                continue
            variant = load(other, plugins=False)  # every config of a template must load
            more, left = rewrite(tmp / other.name, variant, anchor, tmp.resolve(), None)
            changed += [(f"{other.name}: {old}", new) for old, new in more]
            kept += [f"{other.name}: {v}" for v in left]
            load(tmp / other.name, plugins=False)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    print(f"created {dest}/ from template {args.template} ({source}):")
    for f in copied:
        print(f"  {f}")
    if changed:
        print(
            f"{len(changed)} relative path(s) in the configs now point to the template's data: "
            + ", ".join(f"{old} -> {new}" for old, new in changed)
        )
    if kept:
        print("left as written (not found on their line; check them): " + ", ".join(kept))
    config_path = dest / "config.yaml"
    print("next:")
    print(f"  diffhep validate {config_path}")
    if any(s.get("generate") for s in config.data["samples"].values()):
        print(f"  diffhep generate --config {config_path}     # the samples it generates")
    print(f"  diffhep optimize {config_path} --output work/{name}")
    return 0


def _data_anchor(folder: Path, source: Path) -> Path:
    """The folder the template's relative data paths start from.

    In a checkout that is the template itself (``analyses/dimuon``: ``../../work/data``
    is the checkout's ``work/data``). The templates installed with a wheel live in
    site-packages, where no data is (or should be written): there the current folder
    stands for the checkout, so ``../../work/data`` becomes ``./work/data``.
    """
    if is_installed(folder):
        return (Path.cwd() / "analyses" / source.name).resolve()
    return source.resolve()


def _remove_empty_folders(root: Path) -> None:
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()


def _path_fields(data: dict) -> list[tuple[str, str]]:
    """``(field path, value)`` of every file path the config names."""
    out = [(f"plugins[{i}]", p) for i, p in enumerate(data.get("plugins") or [])]
    for s, sample in data["samples"].items():
        out += [(f"samples.{s}.files[{i}]", f) for i, f in enumerate(sample["files"])]
    for k, syst in (data.get("systematics") or {}).items():
        for side in ("up", "down"):
            if isinstance(syst.get(side), dict):
                out += [(f"systematics.{k}.{side}.files[{i}]", f) for i, f in enumerate(syst[side].get("files", []))]
    return out


def rewrite(
    path: Path, config: object, source: Path, dest: Path, name: str | None
) -> tuple[list[tuple[str, str]], list[str]]:
    """Rewrite relative paths (that were not copied) and ``name:`` (unless ``name`` is None) in ``path``, line by line.

    Returns ``([(old, new), ...], [paths left as written])``.
    """
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    changed: list[tuple[str, str]] = []
    kept: list[str] = []
    for field, value in _path_fields(config.data):  # type: ignore[attr-defined]
        if is_url(value) or Path(value).expanduser().is_absolute() or (dest / value).exists():
            continue
        new = os.path.relpath(os.path.normpath(source / value), dest)
        line = config.line(field)  # type: ignore[attr-defined]
        pattern = re.compile(r"(?<![\w./-])" + re.escape(value) + r"(?![\w./-])")
        if line is None or not pattern.search(lines[line - 1]):
            kept.append(value)
            continue
        lines[line - 1] = pattern.sub(lambda _, new=new: new, lines[line - 1], count=1)
        changed.append((value, new))
    line = config.line("name") if name is not None else None  # type: ignore[attr-defined]
    if line is not None:
        old = config.data["name"]  # type: ignore[attr-defined]
        lines[line - 1] = re.sub(
            r"^(\s*name\s*:\s*)([\"']?)" + re.escape(old) + r"\2", lambda m: m.group(1) + name, lines[line - 1], count=1
        )
    path.write_text("".join(lines), encoding="utf-8")
    return changed, kept
