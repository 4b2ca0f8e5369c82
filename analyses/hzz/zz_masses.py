"""Plugin of the H->ZZ*->4l template: the Z1 and Z2 masses of the ZZ candidate that ``m4l`` chooses.

The built-in ``m4l(muons, electrons)`` chooses, per event, one ZZ candidate
(two opposite-sign, same-flavour pairs; Z1 the pair closer to the Z mass, both
pairs below 120 GeV): among the candidates whose four leptons pass, the one
with Z1 closest to the Z mass (ties: the larger scalar pT sum of the Z2
leptons). Its value is the four-lepton mass; the two pair masses are not
exposed, so the Z mass windows of the template need this plugin:

* ``z1_mass(muons, electrons)``: m(Z1) of that candidate, GeV;
* ``z2_mass(muons, electrons)``: m(Z2) of that candidate, GeV;

both 0 in events without a candidate, shape ``(events,)``. The config compares
them with parameters like any event-level value (``z1_mass(muons, electrons) >
z1_mass_min``), so the engine makes the cuts soft (sigmoid, with the
parameter's slope and the annealing) or hard (steps). With soft lepton weights
the value is the average over candidates weighted by the probability that each
is the chosen one (``w_c prod_{c' before c} (1 - w_c')``, as ``m4l``); with 0/1
weights it is the chosen candidate's mass exactly.

So the windows are applied to the chosen candidate ("choose, then cut", as
ATLAS did in Run 1), whereas :func:`diffhep.examples.hzz.hard_selection`
applies them to every candidate before choosing (as CMS does): an engine
builtin would be needed for that (see the README).

How: each event's muons and electrons (file order: decreasing pT in the
generator and in uproot-HZZ.root) fill :data:`MAX_PER_FLAVOUR` slots per
flavour; the candidates are a static table of slot quadruplets (42 for four
slots each); pair masses, validity, the preference order (``top_k``, then an
exact sort of the :data:`MAX_CANDIDATES` best) and the choice probabilities
are computed in JAX in every step. Exact (equal to ``m4l``'s choice) whenever
at most four leptons of each flavour pass and at most eight candidates are
valid; events with five passing leptons of one flavour keep the four with the
largest weights.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.config import register
from diffhep.jagged import Jagged

#: Z boson mass and the upper mass of both Z candidates, GeV (as diffhep.examples.hzz).
Z_MASS, Z_MASS_MAX = 91.1876, 120.0
#: Lepton slots per flavour and event.
MAX_PER_FLAVOUR = 4
#: Valid candidates ordered per event (at most 20 exist with four leptons of each flavour;
#: more than 8 needs seven leptons).
MAX_CANDIDATES = 8
#: Choice probability below which an event has no candidate (a smaller floor lets
#: ``1 / P**2`` overflow in float32 gradients).
TINY = 1e-12

_PAIRINGS = ((0, 1, 2, 3), (0, 2, 1, 3), (0, 3, 1, 2))
_FIELDS = {"px": ("Px", "px"), "py": ("Py", "py"), "pz": ("Pz", "pz"), "E": ("E", "energy"),
           "charge": ("Charge", "charge"), "weight": ("weight",)}


@functools.cache
def _table(n_mu: int, n_el: int) -> np.ndarray:
    """Slot quadruplets ``Int[ndarray, "candidates 4"]``: pair (a, b), pair (c, d), each of one flavour.

    Slots ``0 .. n_mu-1`` are muons, then electrons. The order is that of
    ``diffhep.examples.hzz._candidates`` before its sort (pairing-major, then
    quadruplets in lexicographic order), so exact ties are broken the same way.
    """
    quads = list(itertools.combinations(range(n_mu + n_el), 4))
    rows = [
        (q[a], q[b], q[c], q[d])
        for a, b, c, d in _PAIRINGS
        for q in quads
        if (q[a] < n_mu) == (q[b] < n_mu) and (q[c] < n_mu) == (q[d] < n_mu)
    ]
    return np.asarray(rows, dtype=np.int32).reshape(-1, 4)


def _slots(leptons: Jagged) -> dict[str, Array]:
    """Fields as ``Float[Array, "events slots"]`` (0 in empty slots), at most MAX_PER_FLAVOUR slots.

    With more leptons in an event, the slots keep the MAX_PER_FLAVOUR with the
    largest weights (with 0/1 weights: the first passing ones), in file order.
    """
    out = {}
    for key, options in _FIELDS.items():
        name = next((f for f in options if f in leptons.fields), None)
        if name is None:
            raise KeyError(f"z1_mass/z2_mass need the lepton fields Px, Py, Pz, E and Charge; the objects "
                           f"have {sorted(leptons.fields)} (use m4l(muons, electrons) in the same config)")
        out[key] = leptons.pad(leptons[name], 0.0)
    width = leptons.max_count
    if width > MAX_PER_FLAVOUR:
        score = out["weight"] - 1e-3 * jnp.arange(width) / width
        keep = jnp.sort(jax.lax.top_k(score, MAX_PER_FLAVOUR)[1], axis=1)
        out = {k: jnp.take_along_axis(v, keep, axis=1) for k, v in out.items()}
    return out


def chosen_masses(muons: Jagged, electrons: Jagged) -> tuple[Array, Array, Array]:
    """``(P(a candidate is chosen), m(Z1), m(Z2))`` of the chosen candidate, each ``Float[Array, "events"]``.

    Args:
        muons, electrons: the objects as a plugin receives them: fields ``Px,
            Py, Pz, E`` (GeV), ``Charge`` and ``weight`` (pass probability).
    """
    table = _table(min(muons.max_count, MAX_PER_FLAVOUR), min(electrons.max_count, MAX_PER_FLAVOUR))
    if len(table) == 0:
        zero = jnp.zeros(muons.n_events, dtype=jnp.result_type(float))
        return zero, zero, zero
    mu, el = _slots(muons), _slots(electrons)
    lep = {k: jnp.concatenate([mu[k], el[k]], axis=1) for k in mu}
    pt = jnp.hypot(lep["px"], lep["py"])
    a, b, c, d = (table[:, k] for k in range(4))

    def mass(i: np.ndarray, j: np.ndarray) -> Array:
        e = lep["E"][:, i] + lep["E"][:, j]
        p2 = sum((lep[k][:, i] + lep[k][:, j]) ** 2 for k in ("px", "py", "pz"))
        return jnp.sqrt(jnp.maximum(e * e - p2, 0.0))

    m12, m34 = mass(a, b), mass(c, d)
    swap = jnp.abs(m34 - Z_MASS) < jnp.abs(m12 - Z_MASS)
    mz1, mz2 = jnp.where(swap, m34, m12), jnp.where(swap, m12, m34)
    z2_pt = jnp.where(swap, pt[:, a] + pt[:, b], pt[:, c] + pt[:, d])
    q = lep["charge"]
    valid = (q[:, a] * q[:, b] < 0) & (q[:, c] * q[:, d] < 0) & (mz1 < Z_MASS_MAX) & (mz2 < Z_MASS_MAX)
    w = lep["weight"]
    passing = jnp.where(valid, w[:, a] * w[:, b] * w[:, c] * w[:, d], 0.0)
    # Preference: |m(Z1) - m_Z| ascending, Z2 pT sum descending, table order. top_k picks the
    # best few (sorting every row of the table is several times slower on a CPU).
    key = jnp.where(valid, jnp.abs(mz1 - Z_MASS), jnp.inf)
    best = jax.lax.top_k(-key, min(MAX_CANDIDATES, len(table)))[1]
    keys = (jnp.take_along_axis(key, best, axis=1), -jnp.take_along_axis(z2_pt, best, axis=1), best)
    order = jax.lax.sort(keys, dimension=1, num_keys=3)[2]
    passing, mz1, mz2 = (jnp.take_along_axis(x, order, axis=1) for x in (passing, mz1, mz2))
    kept = jnp.cumprod(1.0 - passing, axis=1)
    chosen = passing * jnp.concatenate([jnp.ones_like(kept[:, :1]), kept[:, :-1]], axis=1)
    exists = chosen.sum(axis=1)
    ok = exists > TINY
    safe = jnp.where(ok, exists, 1.0)
    return (
        exists,
        jnp.where(ok, (chosen * mz1).sum(axis=1) / safe, 0.0),
        jnp.where(ok, (chosen * mz2).sum(axis=1) / safe, 0.0),
    )


#: The last call of :func:`chosen_masses` through the plugin functions: its arguments and result.
_LAST: list[tuple[tuple[Array, ...], tuple[Array, Array, Array]]] = []


def _shared(muons: Jagged, electrons: Jagged) -> tuple[Array, Array, Array]:
    """:func:`chosen_masses`, computed once when ``z1_mass`` and ``z2_mass`` get the same arrays.

    A plugin function returns one array, so the config calls two functions for
    one computation. Inside one traced step both receive the very same array
    objects; reusing the result keeps one copy of the computation in the
    compiled program (it compiles several seconds faster). The key holds the
    arrays themselves (compared with ``is``), so it cannot match other arrays.
    """
    key = tuple(j.fields[k] for j in (muons, electrons) for k in sorted(j.fields))
    if _LAST and len(_LAST[0][0]) == len(key) and all(a is b for a, b in zip(_LAST[0][0], key)):
        return _LAST[0][1]
    result = chosen_masses(muons, electrons)
    _LAST[:] = [(key, result)]
    return result


@register("z1_mass")
def z1_mass(muons: Jagged, electrons: Jagged) -> Array:
    """m(Z1) of the chosen ZZ candidate, GeV, ``Float[Array, "events"]`` (0 without a candidate)."""
    return _shared(muons, electrons)[1]


@register("z2_mass")
def z2_mass(muons: Jagged, electrons: Jagged) -> Array:
    """m(Z2) of the chosen ZZ candidate, GeV, ``Float[Array, "events"]`` (0 without a candidate)."""
    return _shared(muons, electrons)[2]
