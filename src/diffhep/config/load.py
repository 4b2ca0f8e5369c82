"""Read a config: YAML with line numbers -> JSON schema -> meaning checks -> :class:`Config`.

Every problem is one :class:`~diffhep.errors.ConfigError` line of the form
``FILE:LINE: field.path: what is wrong; expected ...``, with the file, line and
field path also as its ``path``, ``line`` and ``key``. Line numbers come from
the composed YAML node tree (safe loader only), so every field path, including
list items, maps to the line where it is written.

Hostile input ends in the same one line, early: a file over
:data:`MAX_CONFIG_BYTES`, NUL characters, YAML nested deeper than
:data:`MAX_YAML_DEPTH` levels, aliases that refer to themselves or expand to
more than :data:`MAX_YAML_NODES` values (the "billion laughs"), and integers
outside the float range are refused before anything walks the data.

Plugins: a module named in ``plugins`` calls ``@register("name")`` to add a
function to :data:`FUNCTIONS`; :func:`load_plugins` imports such modules by path,
each file once per process.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from diffhep.config import expr as _expr
from diffhep.config.checks import WEIGHT_FUNCTIONS, FieldPath, check_config, format_path
from diffhep.config.corrections import describe as describe_corrections
from diffhep.config.schema import fill_defaults, schema_errors
from diffhep.config.sections import Sections, build_sections
from diffhep.errors import ConfigError, DiffhepError, InputError, PluginError

__all__ = [
    "Config",
    "FUNCTIONS",
    "MAX_CONFIG_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "load_config",
    "load_config_dict",
    "load_plugins",
    "register",
]

#: Largest config file read, in bytes (a config is a page of text; this leaves room for long file lists).
MAX_CONFIG_BYTES = 16 * 1024 * 1024
#: Deepest nesting of lists and mappings in a config (the schema's deepest field is 7 levels down).
MAX_YAML_DEPTH = 64
#: Most values (mappings, lists, scalars) in a config once every alias is expanded where it is used.
MAX_YAML_NODES = 200_000
#: Integers beyond this are outside the float range (about 1.8e308): every number becomes a float later.
_MAX_INT = int(sys.float_info.max)
#: Longest integer written in YAML, in characters, converted at all (longer ones are refused first).
_MAX_INT_CHARS = 400

#: Functions registered by plugins with :func:`register`: name -> callable.
FUNCTIONS: dict[str, Callable[..., Any]] = {}
_PLUGINS: dict[str, ModuleType] = {}
#: plugin path -> (sha256 of its source, names it registered): a changed file is imported again.
_PLUGIN_STATE: dict[str, tuple[str, frozenset[str]]] = {}


def _parse_path(text: str | Iterable[str | int]) -> FieldPath:
    if not isinstance(text, str):
        return tuple(text)
    parts: list[str | int] = []
    for piece in text.replace("[", ".[").split("."):
        if piece.startswith("[") and piece.endswith("]") and piece[1:-1].isdigit():
            parts.append(int(piece[1:-1]))
        elif piece:
            parts.append(piece)
    return tuple(parts)


@dataclass(frozen=True)
class _Source:
    """Display name of the input and the line of every field path."""

    name: str
    lines: Mapping[FieldPath, int] = field(default_factory=dict)

    def line(self, path: FieldPath) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def error(self, path: FieldPath, message: str) -> ConfigError:
        return ConfigError(message, path=self.name, line=self.line(path), key=format_path(path) or None)


@dataclass(frozen=True, eq=False)
class Config:
    """A validated analysis config.

    Attributes:
        data: the config with schema defaults filled in (paths as written); do not mutate.
        raw: the config exactly as written.
        resolved: ``data`` with ``files``, ``plugins`` and correction ``file`` entries made absolute.
        source: display name in messages (the path as given, or ``"<dict>"``).
        path: the config file, or None for :func:`load_config_dict`.
        base_dir: folder that relative paths are relative to.
        config_hash: sha256 (hex) of the canonical JSON of ``data``.
        expressions: field path (``objects.jets.cuts``) -> parsed :class:`~diffhep.config.Expr`.
    """

    data: dict[str, Any]
    raw: dict[str, Any]
    resolved: dict[str, Any]
    source: str
    path: Path | None
    base_dir: Path
    config_hash: str
    expressions: Mapping[str, _expr.Expr]
    _where: _Source = field(repr=False)

    def __repr__(self) -> str:
        return f"Config({self.source!r}, name={self.data['name']!r}, config_hash={self.config_hash[:12]!r}...)"

    def resolve(self, relative: str) -> Path:
        """A path written in the config, made absolute from :attr:`base_dir`."""
        return _resolve(self.base_dir, relative)

    def line(self, field_path: str | FieldPath) -> int | None:
        """Line where a field (``"regions.4j1b.select"``) is written, if known."""
        return self._where.line(_parse_path(field_path))

    def error(self, field_path: str | FieldPath, message: str) -> ConfigError:
        """A :class:`ConfigError` ``FILE:LINE: field.path: message`` for later stages.

        Its ``path`` is :attr:`source`, ``line`` the field's line (if known) and
        ``key`` the field path.
        """
        return self._where.error(_parse_path(field_path), message)

    @functools.cached_property
    def sections(self) -> Sections:
        """The typed, frozen sections (:mod:`~diffhep.config.sections`), built once; later stages read these."""
        return build_sections(self)


def load_config(path: str | Path, *, plugins: bool = True) -> Config:
    """Read, validate and check a YAML config file.

    Args:
        path: the YAML file.
        plugins: import the ``plugins`` modules (their functions become known to
            the checks); if False, calls of unknown functions are not checked
            when the config names plugins.
    """
    name = str(path)
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", path=name)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            limit = MAX_CONFIG_BYTES // 2**20
            raise ConfigError(f"the config is {size:,} bytes; at most {limit} MiB (MAX_CONFIG_BYTES)", path=name)
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: cannot read the config ({exc})", path=name) from None
    data, lines = _read_yaml(text, name)
    return _build(data, _Source(name, lines), path.resolve(), path.resolve().parent, plugins)


def load_config_dict(
    data: Mapping[str, Any], source: str = "<dict>", *, base_dir: str | Path | None = None, plugins: bool = True
) -> Config:
    """Validate and check a config given as a dict (tests, programmatic use).

    Relative paths are relative to ``base_dir`` (default: the working directory).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping at the top level, got {type(data).__name__}", path=source)
    folder = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
    where = _Source(source)
    _check_depth(data, where)  # before deepcopy and the checks recurse into it
    return _build(copy.deepcopy(dict(data)), where, None, folder, plugins)


def _check_depth(data: Any, where: _Source) -> None:
    """Refuse lists and mappings nested deeper than :data:`MAX_YAML_DEPTH`, or containing themselves.

    A dict has no YAML loader to bound its depth; walked without recursion.
    """
    stack: list[tuple[Any, FieldPath]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_YAML_DEPTH:
            problem = f"lists and mappings nested deeper than {MAX_YAML_DEPTH} levels (MAX_YAML_DEPTH)"
            raise where.error(path[:3], problem)
        if isinstance(value, Mapping):
            stack.extend((item, (*path, str(key))) for key, item in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))


def _build(data: Any, where: _Source, path: Path | None, base_dir: Path, plugins: bool) -> Config:
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else type(data).__name__
        raise where.error((), f"expected a mapping of config keys at the top level, got {kind}")
    _check_json(data, (), where)
    raw = copy.deepcopy(data)
    errors = schema_errors(data)
    if errors:
        first = min(errors, key=lambda error: (where.line(error[0]) or 0, len(error[0])))
        raise where.error(*first)
    fill_defaults(data)
    resolved = _resolved(data, base_dir)
    for i, plugin in enumerate(data["plugins"]):
        _check_plugin_path(plugin, base_dir, where, i)
    known: set[str] | None = set(FUNCTIONS)
    if data["plugins"]:
        if plugins:
            for i, plugin in enumerate(resolved["plugins"]):
                try:
                    _load_plugin(Path(plugin))
                except ConfigError as exc:
                    raise where.error(("plugins", i), str(exc)) from None
            known = set(FUNCTIONS)
        else:
            known = None
    corrections = {}
    for name in data["corrections"]:
        try:
            corrections[name] = describe_corrections(resolved["corrections"][name]["file"])
        except InputError as exc:
            raise where.error(("corrections", name, "file"), exc.message) from None
    expressions = check_config(data, where, known, corrections)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return Config(data, raw, resolved, where.name, path, base_dir, digest, expressions, where)


def _read_yaml(text: str, name: str) -> tuple[Any, dict[FieldPath, int]]:
    """Parse YAML (safe loader) into data plus the line of every field path."""
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ConfigError("invalid YAML: a NUL character (\\0); a config is plain text", path=name, line=line)
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters at once
        raise _yaml_error(exc, name, text) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _check_graph(node, name)
        _check_duplicates(node, (), _Source(name), set())
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, name, text) from None
    except (ValueError, OverflowError) as exc:  # a value the constructor cannot make (a date like 2024-13-45)
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"invalid YAML value: {first}", path=name) from None
    finally:
        loader.dispose()
    lines: dict[FieldPath, int] = {}
    _record_lines(node, (), lines, set())
    return data, lines


def _yaml_error(exc: yaml.YAMLError, name: str, text: str) -> ConfigError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    line = mark.line + 1 if mark is not None else None
    column = f" (column {mark.column + 1})" if mark is not None else ""
    position = getattr(exc, "position", None)  # a ReaderError: the character's offset in the text
    if line is None and isinstance(position, int):
        line = text.count("\n", 0, position) + 1
    return ConfigError(f"invalid YAML: {problem}{column}", path=name, line=line)


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing nesting deeper than :data:`MAX_YAML_DEPTH` while it composes (it recurses)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                problem = f"lists and mappings nested deeper than {MAX_YAML_DEPTH} levels (MAX_YAML_DEPTH)"
                raise yaml.composer.ComposerError(None, None, problem, mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_graph(root: yaml.Node, name: str) -> None:
    """Refuse aliases that contain themselves, expand beyond the limits, and over-long integers.

    Aliases make the composed nodes a graph: an aliased node is one object used in
    several places. Its size and depth as expanded are computed once per node (no
    recursion, so no walk is exponential or deep), before anything expands it.
    """

    def fail(node: yaml.Node, message: str) -> ConfigError:
        mark = node.start_mark
        return ConfigError(f"invalid YAML: {message} (column {mark.column + 1})", path=name, line=mark.line + 1)

    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = node.value if isinstance(node, yaml.SequenceNode) else []
        if isinstance(node, yaml.MappingNode):
            children = [item for pair in node.value for item in pair]
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > MAX_YAML_NODES:
                message = f"more than {MAX_YAML_NODES:,} values once its aliases are expanded (MAX_YAML_NODES)"
                raise fail(node, message)
            if depth[key] > MAX_YAML_DEPTH:
                message = f"aliases nest lists and mappings deeper than {MAX_YAML_DEPTH} levels (MAX_YAML_DEPTH)"
                raise fail(node, message)
            continue
        if key in size:
            continue
        if key in on_path:
            raise fail(node, "an alias used inside its own anchor's value (a recursive alias)")
        if (
            isinstance(node, yaml.ScalarNode)
            and node.tag == "tag:yaml.org,2002:int"
            and len(node.value) > _MAX_INT_CHARS
        ):
            raise fail(node, f"an integer of {len(node.value)} characters; expected a number within +-1.8e308")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(children))


def _pairs(node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
    return [(k, v) for k, v in node.value if k.tag != "tag:yaml.org,2002:merge"]


def _check_duplicates(node: yaml.Node, path: FieldPath, where: _Source, seen: set[int]) -> None:
    """Refuse a key written twice in one mapping (YAML would keep the last silently)."""
    if id(node) in seen:  # each node once: aliases can neither loop nor blow up
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: dict[str, int] = {}
        for key, value in _pairs(node):
            name = str(key.value)
            if name in keys:
                line = key.start_mark.line + 1
                message = f"duplicate key (first on line {keys[name]})"
                raise ConfigError(message, path=where.name, line=line, key=format_path((*path, name)))
            keys[name] = key.start_mark.line + 1
            _check_duplicates(value, (*path, name), where, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(item, (*path, i), where, seen)


def _record_lines(node: yaml.Node, path: FieldPath, lines: dict[FieldPath, int], seen: set[int]) -> None:
    """Key line for mapping entries, start line for list items; aliased nodes once."""
    if id(node) in seen:
        return
    seen.add(id(node))
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            lines[child] = key.start_mark.line + 1
            _record_lines(value, child, lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record_lines(item, (*path, i), lines, seen)


def _check_json(value: Any, path: FieldPath, where: _Source) -> None:
    """Only JSON values: text keys, finite numbers, no dates or binary."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise where.error((*path, str(key)), f"a key must be text, got {key!r}; write it in quotes: '{key}'")
            if "\x00" in key:
                raise where.error(path, f"the key {key[:40]!r} holds a NUL character (\\0); expected plain text")
            _check_json(item, (*path, key), where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, (*path, i), where)
    elif isinstance(value, float) and not math.isfinite(value):
        raise where.error(path, f"got {value}; expected a finite number")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_INT:
        digits = int(value.bit_length() * math.log10(2)) + 1
        raise where.error(path, f"got an integer of about {digits} digits; expected a number within +-1.8e308")
    elif isinstance(value, str) and "\x00" in value:
        raise where.error(path, f"{value[:40]!r} holds a NUL character (\\0); expected plain text")
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise where.error(path, f"got {value!r} ({type(value).__name__}); write it in quotes to make it text")


def _check_plugin_path(plugin: str, base_dir: Path, where: _Source, index: int) -> None:
    """A relative plugin path must stay inside the config's folder.

    A plugin is code the user chose to run: an absolute path says so explicitly, while a
    relative one that climbs out of the analysis folder (``../../somewhere.py``) would run
    code from outside what was copied or reviewed with the analysis.
    """
    path = Path(plugin).expanduser()
    if path.is_absolute():
        return
    folder = Path(os.path.abspath(base_dir))
    target = Path(os.path.normpath(folder / path))  # lexically: "..", not where a symlink points
    if not target.is_relative_to(folder):
        raise where.error(
            ("plugins", index),
            f"plugin {plugin!r} leaves the config's folder {folder}; a plugin outside it must be written as an "
            "absolute path (plugins are code that runs when the config is loaded)",
        )


def _resolve(base_dir: Path, relative: str) -> Path:
    path = Path(relative).expanduser()
    return path if path.is_absolute() else base_dir / path


#: ``scheme://`` at the start of a ``files`` entry: a URL (``https://``, ``root://``), kept as written.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _resolved(data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """A copy of ``data`` with every ``files`` and ``plugins`` entry absolute (URLs kept as written)."""
    out = copy.deepcopy(data)

    def absolute(items: list[str]) -> list[str]:
        return [item if _URL.match(item) else str(_resolve(base_dir, item)) for item in items]

    out["plugins"] = absolute(out["plugins"])
    for correction in out["corrections"].values():
        correction["file"] = str(_resolve(base_dir, correction["file"]))
    for sample in out["samples"].values():
        sample["files"] = absolute(sample["files"])
    for systematic in out["systematics"].values():
        for side in ("up", "down"):
            if isinstance(systematic.get(side), dict) and "files" in systematic[side]:
                systematic[side]["files"] = absolute(systematic[side]["files"])
    return out


def register(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding a function to :data:`FUNCTIONS` under ``name``.

    A plugin module (named in the config's ``plugins``) uses it to make a new
    function callable from expressions. Built-in names and names registered
    twice by different functions are refused; the same function defined again
    (a re-executed notebook cell, an edited plugin imported again) replaces the
    old one.

    Example:
        >>> @register("doc_example_double")
        ... def double(x):
        ...     return 2 * x
        >>> FUNCTIONS["doc_example_double"](21)
        42
        >>> del FUNCTIONS["doc_example_double"]
    """
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("__"):
        raise ConfigError(f"register: {name!r} is not a valid function name; expected letters, digits and _")
    if name in _expr.BUILTIN_FUNCTIONS or name in WEIGHT_FUNCTIONS:
        raise ConfigError(f"register: {name!r} is a built-in function; choose another name")

    def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
        if name in FUNCTIONS and _origin(FUNCTIONS[name]) != _origin(function):
            first = _origin(FUNCTIONS[name])
            raise ConfigError(f"register: function {name!r} is registered twice (first by {first})")

        @functools.wraps(function)
        def checked(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except DiffhepError:
                raise
            except Exception as exc:  # noqa: BLE001 - the plugin's error: named with its file and line
                path = getattr(getattr(function, "__code__", None), "co_filename", "a plugin")
                raise _plugin_error(exc, path, f"plugin function {name!r} failed at", key=name) from exc

        FUNCTIONS[name] = checked
        return function

    return decorator


def _origin(function: Callable[..., Any]) -> str:
    function = getattr(function, "__wrapped__", function)
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"


def _plugin_error(exc: BaseException, path: str | Path, what: str, *, key: str | None = None) -> PluginError:
    """A one-line :class:`PluginError`: ``what``, the plugin's ``FILE:LINE`` (its innermost frame in
    ``exc``'s traceback) and what it raised."""
    import traceback

    line = None
    target = Path(path).resolve()
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename and not frame.filename.startswith("<") and Path(frame.filename).resolve() == target:
            line = frame.lineno
    first = (str(exc).splitlines() or [""])[0]
    where = f"{path}:{line}" if line is not None else str(path)
    raised = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return PluginError(f"{what} {where}: {raised}", path=str(path), line=line, key=key)


def _load_plugin(path: Path) -> ModuleType:
    key = str(path.resolve())
    if not path.is_file():
        raise ConfigError(f"plugin file not found: {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if key in _PLUGINS:
        if _PLUGIN_STATE[key][0] == digest:
            return _PLUGINS[key]
        for name in _PLUGIN_STATE[key][1]:  # edited since it was imported: import it again
            FUNCTIONS.pop(name, None)
    module_name = f"diffhep_plugin_{hashlib.sha256(key.encode()).hexdigest()[:12]}_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import plugin {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    before = set(FUNCTIONS)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure of user code becomes one line
        del sys.modules[module_name]
        for name in set(FUNCTIONS) - before:
            del FUNCTIONS[name]
        if isinstance(exc, SystemExit):  # would end diffhep silently, with the plugin's exit status
            raise _plugin_error(exc, path, f"plugin called sys.exit({exc.code!r}) while imported, at") from None
        raise _plugin_error(exc, path, "cannot import plugin") from None
    _PLUGINS[key] = module
    _PLUGIN_STATE[key] = (digest, frozenset(set(FUNCTIONS) - before))
    return module


def load_plugins(paths: Iterable[str | Path]) -> list[ModuleType]:
    """Import plugin modules by file path (each once, again when the file changed); their ``@register``
    functions join FUNCTIONS.

    A missing file or any error while importing becomes a one-line :class:`ConfigError`
    naming the file; functions registered by a failed plugin are removed again.
    """
    return [_load_plugin(Path(p)) for p in paths]
