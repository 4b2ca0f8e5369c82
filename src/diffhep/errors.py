"""Errors that reach the user as one line.

Every problem caused by the user's input (a config, a file, a tree, a branch, a
workspace, a parameter) is raised as a :class:`DiffhepError` subclass whose
message is a single line naming what is wrong, where, and what to do. The
command line prints ``error: <message>`` and exits with status 1 instead of a
traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["DiffhepError", "InputError", "ConfigError", "closest"]


class DiffhepError(Exception):
    """Base class for errors the user can fix; the message is one line."""


class InputError(DiffhepError):
    """A data file, tree, branch or sample cannot be used as asked."""


class ConfigError(DiffhepError):
    """A configuration or specification value is invalid."""


def closest(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return ``" (closest: a, b, c)"`` for the names nearest ``name``, or ``""``.

    Example:
        >>> closest("Muon_ptt", ["Muon_pt", "Muon_eta", "Jet_pt"])
        ' (closest: Muon_pt, Muon_eta, Jet_pt)'
    """
    candidates = list(candidates)
    matches = difflib.get_close_matches(name, candidates, n=n, cutoff=0.0)
    return f" (closest: {', '.join(matches)})" if matches else ""
