"""The one table of built-in expression functions: name, kind, arity, and what each computes.

Adding an elementwise function (``floor``, ``log10``, ...) means adding one line to
:data:`BUILTINS`: the config checks read names and arities from here, the engine
(:mod:`diffhep.engine.expressions`) applies ``numpy`` by name from NumPy on the hard
path and from ``jax.numpy`` on the soft one. ``bit(x, n)``, the test of bit ``n`` of
an integer such as an ID bitmask (the AGC's jet ID is ``bit(jetId, 2)``), has no
single NumPy function: :meth:`diffhep.engine.expressions.Evaluator.bit` computes it. Reductions over objects and candidate
observables are listed here too (so the checks know them); their evaluation is
structural and lives in :mod:`diffhep.engine.regions` (reductions) and
:mod:`diffhep.engine.builtins` (candidates).

Example:
    >>> BUILTINS["arctan2"].arity, BUILTINS["arctan2"].numpy
    ((2, 2), 'arctan2')
    >>> sorted(n for n, f in BUILTINS.items() if "candidate" in f.kinds)
    ['m4l', 'pair_mass', 'trijet_mass']
    >>> sorted(OBJECT_FUNCTIONS - set(ELEMENTWISE))
    ['bit']
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Builtin",
    "BUILTINS",
    "OBJECT_FUNCTIONS",
    "EVENT_FUNCTIONS",
    "BUILTIN_FUNCTIONS",
    "REDUCTIONS",
    "CANDIDATES",
    "ELEMENTWISE",
    "CORRECTION",
]

#: What a function can be: applied value by value (objects and events), a reduction over a
#: collection's objects (event level), or a candidate observable of whole objects (event level).
KINDS = ("elementwise", "reduction", "candidate")


@dataclass(frozen=True)
class Builtin:
    """One built-in function of the expression language.

    Attributes:
        name: the name in expressions.
        kinds: subset of ``("elementwise", "reduction", "candidate")``; ``min``/``max`` are both
            (one argument: a reduction over objects; two or more: elementwise).
        arity: ``(fewest, most)`` arguments.
        numpy: elementwise only: the name of the NumPy / ``jax.numpy`` function that computes it
            (``None`` for ``bit``, which the engine computes itself).
        doc: one line for the documentation.
        unit: unit of the value, for axis labels (``"GeV"`` for masses), or ``""``.
    """

    name: str
    kinds: frozenset[str]
    arity: tuple[int, int]
    numpy: str | None
    doc: str
    unit: str = ""


def _table(*rows: tuple[str, str, tuple[int, int], str | None, str]) -> dict[str, Builtin]:
    return {
        name: Builtin(name, frozenset(kinds.split("+")), arity, numpy, doc, "GeV" if doc.endswith(", GeV") else "")
        for name, kinds, arity, numpy, doc in rows
    }


#: name -> :class:`Builtin`, every built-in function (plugins may not reuse these names).
BUILTINS: dict[str, Builtin] = _table(
    ("abs", "elementwise", (1, 1), "abs", "absolute value"),
    ("sqrt", "elementwise", (1, 1), "sqrt", "square root"),
    ("exp", "elementwise", (1, 1), "exp", "exponential"),
    ("log", "elementwise", (1, 1), "log", "natural logarithm"),
    ("sin", "elementwise", (1, 1), "sin", "sine (radians)"),
    ("cos", "elementwise", (1, 1), "cos", "cosine (radians)"),
    ("tan", "elementwise", (1, 1), "tan", "tangent (radians)"),
    ("sinh", "elementwise", (1, 1), "sinh", "hyperbolic sine"),
    ("cosh", "elementwise", (1, 1), "cosh", "hyperbolic cosine"),
    ("tanh", "elementwise", (1, 1), "tanh", "hyperbolic tangent"),
    ("arctan2", "elementwise", (2, 2), "arctan2", "arctan2(y, x), radians"),
    ("bit", "elementwise", (2, 2), None, "bit(x, n): 1 where bit n (0: lowest) of integer x is set; bit(jetId, 2)"),
    (
        "min",
        "elementwise+reduction",
        (1, 99),
        "minimum",
        "min(a, b): smaller value; min(c.f): smallest f of passing objects",
    ),
    (
        "max",
        "elementwise+reduction",
        (1, 99),
        "maximum",
        "max(a, b): larger value; max(c.f): largest f of passing objects",
    ),
    ("count", "reduction", (1, 1), None, "count(c): passing objects (exact probabilities in comparisons with N)"),
    ("sum", "reduction", (1, 1), None, "sum(c.f): sum of f over passing objects"),
    ("any", "reduction", (1, 1), None, "any(c): at least one object passes"),
    ("pair_mass", "candidate", (1, 1), None, "invariant mass of the two leading passing objects of c, GeV"),
    ("trijet_mass", "candidate", (2, 2), None, "mass of the largest-pT passing trijet with a flagged jet, GeV"),
    ("m4l", "candidate", (2, 2), None, "four-lepton mass of the best ZZ candidate of passing leptons, GeV"),
)

#: Functions of object-level expressions (``require``, ``cuts``, ``flags``).
OBJECT_FUNCTIONS = frozenset(n for n, f in BUILTINS.items() if "elementwise" in f.kinds)
#: Reductions over objects and candidate observables (event level).
EVENT_FUNCTIONS = frozenset(n for n, f in BUILTINS.items() if f.kinds & {"reduction", "candidate"})
#: Reductions over objects.
REDUCTIONS = frozenset(n for n, f in BUILTINS.items() if "reduction" in f.kinds)
#: Candidate observables: name -> number of object arguments.
CANDIDATES = {n: f.arity[0] for n, f in BUILTINS.items() if "candidate" in f.kinds}
#: Elementwise functions with a NumPy / jax.numpy function: name -> its name (``bit`` is not one).
ELEMENTWISE = {n: f.numpy for n, f in BUILTINS.items() if "elementwise" in f.kinds and f.numpy}
#: Every built-in function name.
BUILTIN_FUNCTIONS = frozenset(BUILTINS)
#: Function of event weights only (samples' and variations' ``weight``): ``correction(set.name, input, ...)``
#: evaluates a correction of a file of the ``corrections:`` section with correctionlib, on the host, once;
#: its first argument names the set and the correction, string inputs are written as "quoted" strings
#: (the only place strings are allowed; :mod:`diffhep.config.corrections`).
CORRECTION = "correction"
