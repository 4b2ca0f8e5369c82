"""Oracle of the H -> ZZ* -> 4l selection, written from its physics definition.

Imports nothing from diffhep (see README.md in this folder): the ROOT file is
read here with uproot and every event is walked in plain Python, one lepton,
one pair, one candidate at a time. It is deliberately unlike the vectorised
implementation (``diffhep.examples.hzz`` and ``diffhep.jagged.candidates``),
which sorts all candidates of all events at once.

The definition (``analyses/hzz/README.md``, "The physics"):

* a lepton is a muon with ``pT > muon_pt_min`` or an electron with
  ``pT > electron_pt_min``, either with absolute isolation ``Iso < iso_max``
  (GeV); ``pT = sqrt(Px^2 + Py^2)``;
* a Z candidate is an opposite-charge, same-flavour (OSSF) pair of leptons;
* a ZZ candidate is two Z candidates that share no lepton, both lighter than
  120 GeV; its Z1 is the one whose mass is closer to the Z mass (91.1876 GeV),
  its Z2 the other;
* it passes the mass windows if ``m(Z1) > z1_mass_min`` and ``m(Z2) > z2_mass_min``;
* the event's candidate is, among those that pass, the one whose Z1 is closest
  to the Z mass; on a tie (two candidates sharing their Z1), the one whose Z2
  leptons have the larger scalar pT sum;
* the observable is the invariant mass of its four leptons; the event weight
  is ``EventWeight`` times the sample's normalisation.

Cutflow steps: all events, >= 4 leptons, >= 1 ZZ candidate, a candidate in the
mass windows.

``choose_then_cut=True`` is the other convention (ATLAS Run 1, and the
``analyses/hzz`` template with its ``z1_mass``/``z2_mass`` plugin): the event's
candidate is chosen among all ZZ candidates first, and the event passes if
*that* candidate is in the mass windows. Cutflow steps then: all events, >= 4
leptons, the chosen candidate's ``m(Z1) > z1_mass_min``, and its
``m(Z2) > z2_mass_min``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import uproot

#: Z boson mass, GeV (PDG).
Z_MASS = 91.1876
#: Both Z candidates of a ZZ candidate are lighter than this, GeV.
PAIR_MASS_MAX = 120.0

FLAVOURS = ("Muon", "Electron")
FIELDS = ("Px", "Py", "Pz", "E", "Charge", "Iso")


@dataclass(frozen=True)
class Lepton:
    flavour: str
    charge: int
    p4: tuple[float, float, float, float]  # (E, px, py, pz), GeV

    @property
    def pt(self) -> float:
        return math.hypot(self.p4[1], self.p4[2])


@dataclass
class Selection:
    """What the selection keeps, in file order.

    Attributes:
        passed: ``(events,)`` bool, the event has a candidate in the mass windows.
        m4l, mz1, mz2: masses of the chosen candidate of each passing event, GeV.
        weight: weight of each passing event.
        cutflow: weighted yield after each step (all, >= 4 leptons, ZZ candidate, mass windows).
    """

    passed: np.ndarray
    m4l: np.ndarray
    mz1: np.ndarray
    mz2: np.ndarray
    weight: np.ndarray
    cutflow: np.ndarray


def mass(*leptons: Lepton) -> float:
    """Invariant mass of the sum of ``leptons``; for m^2 < 0 (rounding) minus sqrt(-m^2), as ROOT's TLorentzVector::M."""
    e, px, py, pz = (math.fsum(lep.p4[k] for lep in leptons) for k in range(4))
    m2 = e * e - (px * px + py * py + pz * pz)
    return math.sqrt(m2) if m2 >= 0 else -math.sqrt(-m2)


def read(path: str | Path, tree: str = "events") -> dict[str, np.ndarray]:
    """The lepton branches and ``EventWeight`` of a file (one NumPy array per event for collections)."""
    branches = [f"{c}_{f}" for c in FLAVOURS for f in FIELDS] + ["EventWeight"]
    with uproot.open(path) as file:
        return file[tree].arrays(branches, library="np")


def event_leptons(arrays: dict[str, np.ndarray], i: int, cuts: dict[str, float]) -> list[Lepton]:
    """The selected leptons of event ``i``."""
    out = []
    for flavour, pt_min in (("Muon", cuts["muon_pt_min"]), ("Electron", cuts["electron_pt_min"])):
        px, py, pz, e, charge, iso = (arrays[f"{flavour}_{f}"][i] for f in FIELDS)
        for k in range(len(px)):
            lepton = Lepton(flavour, int(charge[k]), (float(e[k]), float(px[k]), float(py[k]), float(pz[k])))
            if lepton.pt > pt_min and float(iso[k]) < cuts["iso_max"]:
                out.append(lepton)
    return out


def zz_candidates(leptons: list[Lepton]) -> list[dict]:
    """Every ZZ candidate: two disjoint OSSF pairs, both below :data:`PAIR_MASS_MAX`, Z1 closer to the Z mass."""
    z_pairs = [
        (i, j)
        for i, j in combinations(range(len(leptons)), 2)
        if leptons[i].flavour == leptons[j].flavour and leptons[i].charge == -leptons[j].charge
    ]
    candidates = []
    for first, second in combinations(z_pairs, 2):
        if set(first) & set(second):
            continue  # a lepton cannot belong to both Z bosons
        m_first = mass(*(leptons[k] for k in first))
        m_second = mass(*(leptons[k] for k in second))
        if max(m_first, m_second) >= PAIR_MASS_MAX:
            continue
        if abs(m_first - Z_MASS) <= abs(m_second - Z_MASS):
            z1, z2, mz1, mz2 = first, second, m_first, m_second
        else:
            z1, z2, mz1, mz2 = second, first, m_second, m_first
        candidates.append(
            {
                "mz1": mz1,
                "mz2": mz2,
                "m4l": mass(*(leptons[k] for k in (*z1, *z2))),
                "z2_pt": leptons[z2[0]].pt + leptons[z2[1]].pt,
            }
        )
    return candidates


def _preferred(candidates: list[dict]) -> dict:
    """Z1 closest to the Z mass; on a tie, the larger scalar pT sum of the Z2 leptons."""
    return min(candidates, key=lambda c: (abs(c["mz1"] - Z_MASS), -c["z2_pt"]))


def select(
    path: str | Path,
    cuts: dict[str, float],
    normalisation: float,
    *,
    tree: str = "events",
    choose_then_cut: bool = False,
) -> Selection:
    """The H -> ZZ* -> 4l selection of the file at ``path`` with hard ``cuts`` (GeV), event by event.

    ``choose_then_cut``: apply the mass windows to the preferred candidate
    only, instead of choosing among the candidates in the windows (module docstring).
    """
    arrays = read(path, tree)
    event_weight = arrays["EventWeight"].astype(np.float64) * normalisation
    n = len(event_weight)
    steps = np.zeros((4, n), dtype=bool)
    passed, m4l, mz1, mz2 = [], [], [], []
    for i in range(n):
        leptons = event_leptons(arrays, i, cuts)
        candidates = zz_candidates(leptons)
        if choose_then_cut:
            best = _preferred(candidates) if candidates else None
            z1_ok = best is not None and best["mz1"] > cuts["z1_mass_min"]
            both_ok = z1_ok and best["mz2"] > cuts["z2_mass_min"]
            steps[:, i] = (True, len(leptons) >= 4, z1_ok, both_ok)
            best = best if both_ok else None
        else:
            in_windows = [c for c in candidates if c["mz1"] > cuts["z1_mass_min"] and c["mz2"] > cuts["z2_mass_min"]]
            steps[:, i] = (True, len(leptons) >= 4, bool(candidates), bool(in_windows))
            best = _preferred(in_windows) if in_windows else None
        if best is not None:
            passed.append(i)
            m4l.append(best["m4l"])
            mz1.append(best["mz1"])
            mz2.append(best["mz2"])
    mask = np.zeros(n, dtype=bool)
    mask[passed] = True
    return Selection(
        passed=mask,
        m4l=np.asarray(m4l, dtype=np.float64),
        mz1=np.asarray(mz1, dtype=np.float64),
        mz2=np.asarray(mz2, dtype=np.float64),
        weight=event_weight[mask],
        cutflow=np.array([event_weight[s].sum() for s in steps]),
    )


def histogram(m4l: np.ndarray, weight: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, sumw2)`` of weighted four-lepton masses in bins ``[edges[k], edges[k+1])`` (no under/overflow).

    Summed bin by bin (``np.bincount``): ``np.histogram`` with explicit edges takes
    differences of a cumulative sum, which loses small weights next to large ones.
    """
    m4l, weight = np.asarray(m4l, dtype=np.float64), np.asarray(weight, dtype=np.float64)
    index = np.searchsorted(edges, m4l, side="right") - 1
    inside = (index >= 0) & (index < len(edges) - 1)
    n = len(edges) - 1
    counts = np.bincount(index[inside], weights=weight[inside], minlength=n)
    sumw2 = np.bincount(index[inside], weights=weight[inside] ** 2, minlength=n)
    return counts, sumw2
