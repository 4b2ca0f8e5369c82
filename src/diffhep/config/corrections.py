"""correctionlib files of a config's ``corrections:``: read once, described for the checks, evaluated on the host.

A config's ``corrections:`` section names correctionlib JSON files (schema v2,
``.json`` or ``.json.gz``); an event weight calls one of their corrections as
``correction(set.name, input, ...)`` (:data:`diffhep.config.functions.CORRECTION`). Corrections depend on
event and object data only, never on the cuts being optimised, so they are
evaluated once, on the host, with correctionlib, and enter the differentiable
stages as fixed per-event weights.

* :func:`describe` reads a file and lists its corrections and their inputs (the
  config checks compare calls with them);
* :class:`CorrectionSets` holds the evaluators of a config's files and evaluates a
  call on arrays (strings for ``string`` inputs, integers for ``int`` ones).

Example:
    >>> import json, pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "c.json").write_text(json.dumps({"schema_version": 2, "corrections": [{
    ...     "name": "scale", "version": 1, "output": {"name": "w", "type": "real"},
    ...     "inputs": [{"name": "kind", "type": "string"}, {"name": "pt", "type": "real"}],
    ...     "data": {"nodetype": "category", "input": "kind", "content": [
    ...         {"key": "up", "value": {"nodetype": "formula", "expression": "1 + x / 100",
    ...                                 "parser": "TFormula", "variables": ["pt"]}}], "default": 1.0}}]}))
    >>> describe(folder / "c.json")
    {'scale': (('kind', 'string'), ('pt', 'real'))}
    >>> sets = CorrectionSets({"mine": str(folder / "c.json")})
    >>> sets("mine", "scale", "up", np.array([10.0, 50.0])).tolist()
    [1.1, 1.5]
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from diffhep.errors import ConfigError, InputError, closest

__all__ = ["describe", "CorrectionSets"]


@functools.lru_cache(maxsize=64)
def _load(path: str, mtime_ns: int) -> Any:
    """The ``correctionlib.CorrectionSet`` of ``path`` (cached per file and modification time)."""
    import correctionlib

    try:
        return correctionlib.CorrectionSet.from_file(path)
    except Exception as exc:  # noqa: BLE001 - correctionlib's parse errors (RuntimeError, ValueError, ...)
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path}: not a correctionlib JSON file (schema v2): {first}", path=path) from None


def _open(path: str | Path) -> Any:
    path = str(path)
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        raise InputError(f"correction file {path} not found", path=path) from None
    return _load(path, mtime)


def describe(path: str | Path) -> dict[str, tuple[tuple[str, str], ...]]:
    """Correction name -> its inputs ``(name, type)``, ``type`` one of ``real``, ``int``, ``string``.

    Raises:
        InputError: the file is missing or is not a correctionlib file.
    """
    cset = _open(path)
    return {name: tuple((v.name, v.type) for v in cset[name].inputs) for name in cset}


class CorrectionSets:
    """The evaluators of a config's correction files, by set name; called as ``sets(set, name, *inputs)``.

    Args:
        files: set name -> absolute path of its correctionlib file.
    """

    def __init__(self, files: Mapping[str, str]):
        self.files = dict(files)

    def __repr__(self) -> str:
        return f"CorrectionSets({self.files!r})"

    def correction(self, set_name: str, name: str) -> Any:
        """The ``correctionlib`` correction ``name`` of set ``set_name``."""
        if set_name not in self.files:
            raise ConfigError(f"unknown correction set {set_name!r}{closest(set_name, self.files)}")
        cset = _open(self.files[set_name])
        if name not in cset:
            raise ConfigError(f"correction set {set_name!r} has no correction {name!r}{closest(name, list(cset))}")
        return cset[name]

    def __call__(self, set_name: str, name: str, *inputs: Any) -> np.ndarray:
        """Evaluate correction ``name`` of set ``set_name`` on ``inputs`` (strings, numbers or arrays).

        Numeric inputs are broadcast to one shape; ``int`` inputs must hold whole numbers.
        """
        correction = self.correction(set_name, name)
        kinds = [v.type for v in correction.inputs]
        if len(inputs) != len(kinds):
            raise ConfigError(
                f"correction {set_name}.{name} takes {len(kinds)} input(s) "
                f"({', '.join(v.name for v in correction.inputs)}), got {len(inputs)}"
            )
        numeric = [i for i, k in enumerate(kinds) if k != "string"]
        arrays = np.broadcast_arrays(*(np.asarray(inputs[i]) for i in numeric)) if numeric else []
        args: list[Any] = list(inputs)
        for i, values in zip(numeric, arrays):
            variable = correction.inputs[i]
            if isinstance(inputs[i], str):
                raise ConfigError(f"correction {set_name}.{name}: input {variable.name!r} is a number, got a string")
            if kinds[i] == "int":
                if np.any(np.asarray(values, dtype=np.float64) % 1 != 0):
                    raise ConfigError(
                        f"correction {set_name}.{name}: input {variable.name!r} is an integer, got non-integer values"
                    )
                args[i] = np.ascontiguousarray(values, dtype=np.int64)
            else:
                args[i] = np.ascontiguousarray(values, dtype=np.float64)
        for i, kind in enumerate(kinds):
            if kind == "string" and not isinstance(inputs[i], str):
                name_ = correction.inputs[i].name
                raise ConfigError(f'correction {set_name}.{name}: input {name_!r} is a string, e.g. "up"')
        if arrays and np.ndim(arrays[0]) == 0:  # scalars only: correctionlib's scalar call
            args = [a.item() if isinstance(a, np.ndarray) else a for a in args]
        try:
            return np.asarray(correction.evaluate(*args), dtype=np.float64)
        except (RuntimeError, ValueError, IndexError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"correction {set_name}.{name} failed: {first}") from None
