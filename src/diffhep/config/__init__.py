"""Analysis configs: YAML -> JSON schema -> meaning checks -> :class:`Config`.

The format is documented key by key in ``configs/README.md`` and by the
``description`` of every field of the shipped schema (:func:`schema_path`).

* :mod:`~diffhep.config.load`: :func:`load_config` / :func:`load_config_dict`
  read YAML with the line of every field, validate it, fill defaults and run
  the checks; plugins: ``@register("name")`` adds a function to
  :data:`FUNCTIONS`, :func:`load_plugins` imports plugin modules by path.
* :mod:`~diffhep.config.schema`: :data:`SCHEMA` (``schema.json``, draft
  2020-12) and its errors translated into one teaching line each.
* :mod:`~diffhep.config.sections`: the typed, frozen sections of a loaded
  config (:attr:`Config.sections`: :class:`Sections`, :class:`Sample`,
  :class:`Parameters`, :class:`Measurement`, :class:`Objective`), the one reader
  of the YAML mapping for later stages, each able to name FILE:LINE in an error.
* :mod:`~diffhep.config.parameters`: :class:`CutParameter`, one optimisable cut value.
* :mod:`~diffhep.config.checks`: meaning checks across sections (names,
  references, bounds, binnings, the level of each expression).
* :mod:`~diffhep.config.expr`: the safe expression language: :func:`parse`
  (an :mod:`ast` whitelist, never ``eval``), :class:`Expr` and the generic
  tree-walking :func:`evaluate` with comparison and logic hooks.
* :mod:`~diffhep.config.functions`: :data:`BUILTINS`, the one table of built-in
  expression functions (kind, arity, the NumPy/``jax.numpy`` function of elementwise ones).
* :mod:`~diffhep.config.corrections`: the correctionlib files of ``corrections:``: read
  once, described for the checks (:func:`~diffhep.config.corrections.describe`) and
  evaluated on the host for ``correction(set.name, ...)`` in event weights
  (:class:`~diffhep.config.corrections.CorrectionSets`).
* :mod:`~diffhep.config.templates`: :func:`template_root` / :func:`template_names`, the shipped template analyses.

Every problem is a :class:`~diffhep.errors.ConfigError` with one line
``FILE:LINE: field.path: what is wrong; expected ...``.

Example:
    >>> from diffhep.config import parse, evaluate
    >>> evaluate(parse("2 * x + 1"), {"x": 20}, {})
    41
"""

from diffhep.config.checks import VARIATION_KINDS
from diffhep.config.expr import (
    BitwiseLogic,
    Expr,
    Logic,
    evaluate,
    parse,
)
from diffhep.config.functions import BUILTIN_FUNCTIONS, BUILTINS, EVENT_FUNCTIONS, OBJECT_FUNCTIONS
from diffhep.config.load import FUNCTIONS, Config, load_config, load_config_dict, load_plugins, register
from diffhep.config.schema import SCHEMA, schema_path
from diffhep.config.sections import Measurement, Objective, Parameters, Sample, Sections

__all__ = [
    "Config",
    "load_config",
    "load_config_dict",
    "Sections",
    "Sample",
    "Parameters",
    "Measurement",
    "Objective",
    "SCHEMA",
    "schema_path",
    "Expr",
    "parse",
    "evaluate",
    "Logic",
    "BitwiseLogic",
    "register",
    "load_plugins",
    "FUNCTIONS",
    "BUILTINS",
    "BUILTIN_FUNCTIONS",
    "OBJECT_FUNCTIONS",
    "EVENT_FUNCTIONS",
    "VARIATION_KINDS",
]
