"""The JSON schema shipped in the package, and its errors as one teaching line each.

:data:`SCHEMA` is ``schema.json`` (draft 2020-12) loaded once; :func:`schema_errors`
validates a config dict and turns each :mod:`jsonschema` error into a field path
and a message such as ``unknown key (did you mean 'cuts'?)`` or
``got -3; expected a number > 0``. :func:`fill_defaults` writes the schema's
``default`` of every absent optional key.

Example:
    >>> SCHEMA["properties"]["lumi_pb"]["description"]
    'Integrated luminosity, pb^-1.'
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from diffhep.errors import closest

__all__ = ["SCHEMA", "schema_path", "schema_errors", "fill_defaults"]


def schema_path() -> Path:
    """Path of ``schema.json`` inside the installed package."""
    return Path(str(resources.files("diffhep.config").joinpath("schema.json")))


#: The config schema (draft 2020-12), as a dict.
SCHEMA: dict[str, Any] = json.loads(resources.files("diffhep.config").joinpath("schema.json").read_text("utf-8"))
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
_IDENT = "^[A-Za-z_][A-Za-z0-9_]*$"
_TYPES = {
    "string": "text",
    "number": "a number",
    "integer": "an integer",
    "object": "a mapping",
    "array": "a list",
    "boolean": "true or false",
    "null": "nothing",
}
_NAME_RULE = "letters, digits and _, not starting with a digit"


def _deref(schema: Any) -> Any:
    while isinstance(schema, dict) and "$ref" in schema:
        schema = SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _schema_at(parts: Iterable[Any]) -> Any:
    """The sub-schema at an absolute schema path ($refs followed)."""
    current: Any = SCHEMA
    for part in parts:
        if not (isinstance(current, dict) and part in current):
            current = _deref(current)
        current = current[part]
    return _deref(current)


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)}" if value else "an empty list"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"{shown!r} (text)"
    return repr(value)


def _expected(schema: Any) -> str:
    """A short phrase for what a sub-schema accepts."""
    schema = _deref(schema)
    if not isinstance(schema, dict):
        return "a value"
    if "enum" in schema:
        return "one of: " + ", ".join(map(str, schema["enum"]))
    if "anyOf" in schema:
        return " or ".join(_expected(s) for s in schema["anyOf"])
    kind = schema.get("type", "")
    if isinstance(kind, list):
        return " or ".join(_TYPES.get(k, k) for k in kind)
    if kind in ("number", "integer"):
        bounds = [f"{op} {schema[key]}" for key, op in _LIMITS if key in schema]
        return " ".join([_TYPES[kind], " and ".join(bounds)]).strip()
    if kind == "string" and schema.get("pattern") == _IDENT:
        return f"a name ({_NAME_RULE})"
    if kind == "string" and "pattern" in schema:
        return f"text matching {schema['pattern']}"
    if kind == "array" and schema.get("minItems") == schema.get("maxItems") == 2:
        return "[low, high]"
    if kind == "array":
        return f"a list of {_expected(schema.get('items', {}))}"
    if kind == "object" and "required" in schema:
        return f"a mapping with {', '.join(schema['required'])}"
    return _TYPES.get(kind, "a value")


_LIMITS = (("exclusiveMinimum", ">"), ("minimum", ">="), ("exclusiveMaximum", "<"), ("maximum", "<="))


def _description(schema: Any) -> str:
    if isinstance(schema, dict) and schema.get("description"):
        return str(schema["description"])
    resolved = _deref(schema)
    return str(resolved.get("description", "")) if isinstance(resolved, dict) else ""


def _branch_context(error: jsonschema.ValidationError) -> str:
    """`` for type 'lumi'`` / `` when 'union' is given`` for errors inside if/then."""
    parts = list(error.absolute_schema_path)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "then":
            condition = _schema_at(parts[:i]).get("if", {})
            for key, sub in condition.get("properties", {}).items():
                if isinstance(sub, dict) and "const" in sub:
                    return f" for {key} {sub['const']!r}"
            required = condition.get("required", [])
            return f" when {required[0]!r} is given" if required else ""
    return ""


def _alternative(error: jsonschema.ValidationError) -> str:
    """``; or give 'edges' instead`` for errors inside the else of an ``if: {required: [edges]}``."""
    parts = list(error.absolute_schema_path)
    if "else" not in parts:
        return ""
    i = len(parts) - 1 - parts[::-1].index("else")
    required = _schema_at(parts[:i]).get("if", {}).get("required", [])
    return f"; or give {required[0]!r} instead" if required else ""


def _field_schema(path: Iterable[Any]) -> Any:
    """The base sub-schema of a field, walking the instance path."""
    current: Any = SCHEMA
    for part in path:
        current = _deref(current)
        if not isinstance(current, dict):
            return {}
        if isinstance(part, int):
            current = current.get("items", {})
        elif isinstance(current.get("properties", {}).get(part), dict):
            current = current["properties"][part]
        else:
            current = current.get("additionalProperties", {})
    return current


def _translate(error: jsonschema.ValidationError) -> tuple[tuple[Any, ...], str]:
    path = tuple(error.absolute_path)
    kind, value, schema = error.validator, error.instance, error.schema
    if "propertyNames" in error.absolute_schema_path:
        return (*path, str(value)), f"{value!r} is not a valid name; expected {_expected(schema)}"
    if kind == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        extra = next(k for k in value if k not in allowed)
        return (*path, extra), f"unknown key{_branch_context(error)}{closest(extra, allowed)}"
    if kind == "required":
        missing = next(k for k in error.validator_value if k not in value)
        about = _description(_field_schema((*path, missing)))
        about = f" ({about.rstrip('.')})" if about else ""
        return path, f"missing required key {missing!r}{_branch_context(error)}{about}{_alternative(error)}"
    if kind == "type":
        return path, f"got {_show(value)}; expected {_expected(schema)}"
    if kind == "enum":
        options = [str(v) for v in error.validator_value]
        hint = closest(str(value), options)
        hint = hint if hint.startswith(" (did") else ""
        return path, f"got {_show(value)}; expected one of: {', '.join(options)}{hint}"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        return path, f"{value!r} is out of range; expected {_expected(schema)}"
    if kind in ("minItems", "maxItems"):
        if schema.get("minItems") == schema.get("maxItems"):
            return path, f"got {_show(value)}; expected {_expected(schema)}"
        low = schema.get("minItems", 0)
        return path, f"got {_show(value)}; expected at least {low} {'entry' if low == 1 else 'entries'}"
    if kind == "minProperties":
        return path, "is empty; expected at least one entry"
    if kind == "minLength":
        return path, "is empty; expected non-empty text"
    if kind == "pattern":
        return path, f"{value!r} is not valid; expected {_expected(schema)}"
    if kind == "uniqueItems":
        repeated = next((v for i, v in enumerate(value) if v in value[:i]), None)
        return path, f"{repeated!r} is listed twice; expected each entry once"
    if kind in ("anyOf", "oneOf"):
        about = _description(schema).rstrip(".")
        return path, f"got {_show(value)}; expected {about[:1].lower() + about[1:] if about else _expected(schema)}"
    return path, error.message


def schema_errors(data: Any) -> list[tuple[tuple[Any, ...], str]]:
    """Every schema error of ``data`` as ``(field path, message)``.

    >>> schema_errors({"name": "x", "lumi_pb": -1, "samples": {}, "regions": {"r": {}}})[0]
    (('lumi_pb',), '-1 is out of range; expected a number > 0')
    """
    return [_translate(error) for error in _VALIDATOR.iter_errors(data)]


def fill_defaults(instance: Any, schema: Any = None) -> None:
    """Write the ``default`` of every absent property, recursively, in place.

    >>> objective = {"name": "cls"}
    >>> fill_defaults(objective, SCHEMA["$defs"]["objective"])
    >>> objective
    {'name': 'cls', 'mu': 1.0}
    """
    resolved = _deref(SCHEMA if schema is None else schema)
    if not isinstance(resolved, dict) or not isinstance(instance, dict):
        return
    properties = resolved.get("properties", {})
    for key, sub in properties.items():
        if not isinstance(sub, dict):
            continue
        default = sub.get("default", _deref(sub).get("default", _MISSING))
        if key not in instance and default is not _MISSING:
            instance[key] = copy.deepcopy(default)
        if key in instance:
            fill_defaults(instance[key], sub)
    extra = resolved.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in properties:
                fill_defaults(value, extra)


_MISSING = object()
