"""Job settings from a small YAML file (``configs/demo.yaml``).

The file is read with ``yaml.safe_load`` and checked key by key before any data
is read: an unknown key gets the closest valid name, a value of the wrong type
or out of range is named with the file and its key path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from diffhep.analysis.job import DEFAULT_EVENTS, JobSettings
from diffhep.analysis.pipeline import Setup
from diffhep.errors import ConfigError, closest

__all__ = ["load_settings"]

_NUMBERS = {"lumi_pb": float, "learning_rate": float, "steps": int, "seed": int}
_KEYS = [*_NUMBERS, "n_events", "bandwidth", "normsys"]


def _number(where: str, value: Any, kind: type, *, positive: bool = True) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ConfigError(f"{where}: expected {'an integer' if kind is int else 'a number'}, got {value!r}")
    if positive and not value > 0:
        raise ConfigError(f"{where}: must be > 0, got {value!r}")
    return kind(value)


def load_settings(path: str | Path) -> JobSettings:
    """Read job settings from YAML; keys left out keep their defaults."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{line} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    for key in raw:
        if key not in _KEYS:
            raise ConfigError(f"{path}: unknown key {key!r}{closest(str(key), _KEYS)}")
    kwargs: dict[str, Any] = {}
    for key, kind in _NUMBERS.items():
        if key in raw:
            kwargs[key] = _number(f"{path}: {key}", raw[key], kind, positive=key != "seed")
    if "n_events" in raw:
        n = raw["n_events"]
        if not isinstance(n, dict):
            raise ConfigError(f"{path}: n_events: expected a mapping process -> events")
        for proc in n:
            if proc not in DEFAULT_EVENTS:
                raise ConfigError(f"{path}: n_events: unknown process {proc!r}{closest(str(proc), DEFAULT_EVENTS)}")
        kwargs["n_events"] = {p: _number(f"{path}: n_events.{p}", n.get(p, d), int) for p, d in DEFAULT_EVENTS.items()}
    setup = Setup()
    if "bandwidth" in raw:
        setup = Setup(bandwidth=_number(f"{path}: bandwidth", raw["bandwidth"], float), normsys=setup.normsys)
    if "normsys" in raw:
        ns = raw["normsys"]
        if not isinstance(ns, dict):
            raise ConfigError(f"{path}: normsys: expected a mapping background -> [hi, lo]")
        parsed = {}
        for name, pair in ns.items():
            if name not in setup.normsys:
                raise ConfigError(f"{path}: normsys: unknown background {name!r}{closest(str(name), setup.normsys)}")
            if not (isinstance(pair, list) and len(pair) == 2):
                raise ConfigError(f"{path}: normsys.{name}: expected [hi, lo], got {pair!r}")
            parsed[name] = tuple(_number(f"{path}: normsys.{name}", v, float) for v in pair)
        setup = Setup(bandwidth=setup.bandwidth, normsys={**setup.normsys, **parsed})
    return JobSettings(**kwargs, setup=setup)
