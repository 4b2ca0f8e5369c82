"""Errors that reach the user as one line, with where they happened as attributes.

Every problem caused by the user's input (a config, a file, a tree, a branch, a
workspace, a parameter) is raised as a :class:`DiffhepError` subclass whose
message is a single line naming what is wrong, where, and what to do. The
command line prints ``error: <message>`` and exits with status 1 instead of a
traceback.

Where the problem is, is also kept as attributes, so that a caller need not
parse the text (as uproot's ``KeyInFileError(key, file_path=...)`` does):
:class:`ConfigError` has ``path`` (the config file), ``line`` (1-based) and
``key`` (the field path, ``regions.sr.select``); :class:`InputError` has ``path``
(the data file) and ``key`` (the tree, branch or object name). ``str(err)`` is
``FILE:LINE: key: message``, leaving out what is not known and what the message
already names:

    >>> err = ConfigError("unknown key (did you mean 'cuts'?)", path="cfg.yaml", line=7, key="objects.jets.cut")
    >>> str(err)
    "cfg.yaml:7: objects.jets.cut: unknown key (did you mean 'cuts'?)"
    >>> (err.path, err.line, err.key, err.message)
    ('cfg.yaml', 7, 'objects.jets.cut', "unknown key (did you mean 'cuts'?)")
    >>> str(InputError("branch 'Muon_ptt' not found in dy.root:Events", path="dy.root", key="Muon_ptt"))
    "branch 'Muon_ptt' not found in dy.root:Events"
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["DiffhepError", "InputError", "ConfigError", "FitError", "PluginError", "closest"]

#: How many names ``closest`` lists when none is close.
_MAX_LISTED = 10


class DiffhepError(Exception):
    """Base class for errors the user can fix; the message is one line.

    Attributes:
        message: what is wrong, without the location (``str(err)`` adds it).
        path: the file concerned (config or data file), or None.
        line: 1-based line in ``path``, or None.
        key: the field path in a config or the object in a file, or None.
    """

    path: str | None = None
    line: int | None = None
    key: str | None = None

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = str(message)

    def _context(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this error (those that are set)."""
        return {name: getattr(self, name) for name in ("path", "line", "key") if getattr(self, name) is not None}

    def __str__(self) -> str:
        return _located(self.message, self.path, self.line, self.key)

    def __repr__(self) -> str:
        extra = "".join(f", {name}={value!r}" for name, value in self._context().items())
        return f"{type(self).__name__}({self.message!r}{extra})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from the message, then the attributes (path, line, key, notes) restored by
        # BaseException.__setstate__: works for subclasses that take only the message.
        return (type(self), (self.message,), dict(self.__dict__))


class InputError(DiffhepError):
    """A data file, tree, branch or sample cannot be used as asked.

    Args:
        message: what is wrong.
        path: the data file, if one is concerned.
        key: the tree, branch, field or object name, if one is concerned.
    """

    def __init__(self, message: str = "", *, path: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        if path is not None:
            self.path = str(path)
        if key is not None:
            self.key = str(key)


class ConfigError(DiffhepError):
    """A configuration or specification value is invalid.

    Args:
        message: what is wrong.
        path: the config file (or the name a config dict was given), if known.
        line: 1-based line in ``path`` where the field is written, if known.
        key: the field path inside the config, such as ``regions.sr.select``.
    """

    def __init__(
        self, message: str = "", *, path: str | None = None, line: int | None = None, key: str | None = None
    ) -> None:
        super().__init__(message)
        if path is not None:
            self.path = str(path)
        if line is not None:
            self.line = int(line)
        if key is not None:
            self.key = str(key)


class FitError(DiffhepError):
    """A maximum-likelihood fit did not converge or met a NaN; its result is not a minimum.

    Args:
        message: which fit, where it stopped and why.
        key: the fit's name (e.g. ``"fixed_poi_fit_to_asimov"``).
    """

    def __init__(self, message: str = "", *, key: str | None = None) -> None:
        super().__init__(message)
        if key is not None:
            self.key = str(key)


class PluginError(ConfigError):
    """Code of a plugin (a user's Python file named in ``plugins``) failed: the plugin's error, not diffhep's.

    ``path`` is the plugin file, ``line`` the line in it where the exception was
    raised (its innermost frame there), ``key`` the registered function's name if
    a function failed. A :class:`ConfigError`: the config names the plugin.
    """


def _located(message: str, path: str | None, line: int | None, key: str | None) -> str:
    """``FILE:LINE: key: message``, leaving out the parts unknown or already in ``message``.

    The file or key counts as named when it occurs in the message as a whole name
    (``tre`` is not named by ``'tree'``, nor ``cfg`` by ``cfg.yaml``).
    """
    text = message
    if key and not _names(message, key):
        text = f"{key}: {text}"
    if path and not _names(message, path):
        text = f"{path}:{line}: {text}" if line is not None else f"{path}: {text}"
    return text


def _names(message: str, name: str) -> bool:
    """Whether ``name`` occurs in ``message`` as a whole name or path, not inside a longer one."""
    return re.search(rf"(?<![\w./\\-]){re.escape(name)}(?![\w/\\\[-]|\.\w)", message) is not None


def closest(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """A hint for a misspelt ``name``, to append to a message.

    Returns ``" (did you mean 'x'?)"`` for the candidate nearest ``name`` when one is
    close, else ``"; expected one of: a, b, c"`` (the first ten, in the order given,
    then how many more), or ``""`` when there are no candidates.

    Args:
        name: the name as written.
        candidates: the valid names (duplicates are dropped).
        n: kept for callers written against the earlier list format; only the
            nearest close candidate is named.

    Example:
        >>> closest("Muon_ptt", ["Muon_pt", "Muon_eta", "Jet_pt"])
        " (did you mean 'Muon_pt'?)"
        >>> closest("zzz", ["signal", "background"])
        '; expected one of: signal, background'
        >>> closest("x", [f"p{i}" for i in range(12)])
        '; expected one of: p0, p1, p2, p3, p4, p5, p6, p7, p8, p9 (and 2 more)'
        >>> closest("x", [])
        ''
    """
    del n
    names = [str(c) for c in dict.fromkeys(candidates)]
    match = difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
    if match:
        return f" (did you mean {match[0]!r}?)"
    if not names:
        return ""
    more = len(names) - _MAX_LISTED
    return f"; expected one of: {', '.join(names[:_MAX_LISTED])}{f' (and {more} more)' if more > 0 else ''}"
