"""Candidates built once on the host with Awkward and ``vector``: trijets, ZZ -> 4 lepton candidates.

Which candidates exist and their order do not depend on cut values (structure is
static), so both the config engine (:mod:`diffhep.engine.builtins`) and the
hand-written examples (:mod:`diffhep.examples`) build them here, once per sample.

* :func:`trijets`: every three-jet combination, largest trijet pT first (the AGC's top candidate);
* :func:`zz_candidates`: every pair of opposite-charge same-flavour lepton pairs, Z1 first,
  sorted by ``|m(Z1) - m_Z|`` then by the Z2 pT sum.
"""

from __future__ import annotations

import awkward as ak

__all__ = ["Z_MASS", "Z_MASS_MAX", "trijets", "zz_candidates"]

#: Z boson mass, GeV (PDG).
Z_MASS = 91.1876
#: Both Z candidates must be lighter than this by default, GeV.
Z_MASS_MAX = 120.0

# The three ways to split four leptons (a, b, c, d) into two pairs.
_PAIRINGS = ((0, 1, 2, 3), (0, 2, 1, 3), (0, 3, 1, 2))


def trijets(jets: ak.Array) -> ak.Array:
    """Trijets ``{i1, i2, i3, pt, mass}`` (local jet indices), largest pT first (stable).

    ``jets`` are ``Momentum4D`` records, ``events * var``; ``pt`` and ``mass`` in the jets' unit (GeV).
    """
    i1, i2, i3 = ak.unzip(ak.combinations(ak.local_index(jets, axis=1), 3, axis=1))
    p4 = jets[i1] + jets[i2] + jets[i3]
    tri = ak.zip({"i1": i1, "i2": i2, "i3": i3, "pt": p4.pt, "mass": p4.mass})
    return tri[ak.argsort(tri.pt, axis=1, ascending=False, stable=True)]


def zz_candidates(leptons: ak.Array, *, z_mass: float = Z_MASS, z_mass_max: float = Z_MASS_MAX) -> ak.Array:
    """All OSSF ZZ candidates of ``leptons``, sorted per event by preference.

    ``leptons`` are ``Momentum4D`` records with ``charge`` and ``is_muon``; a
    candidate is two opposite-charge same-flavour pairs, Z1 the pair closer to
    ``z_mass`` (GeV), both pair masses below ``z_mass_max`` (GeV).

    Returns records ``{i1, i2, i3, i4, mz1, mz2, m4l}`` (``i*`` local lepton
    indices, Z1 pair first), ``events * var``.
    """
    index = ak.local_index(leptons, axis=1)
    quads = ak.combinations(index, 4, axis=1)
    columns = ak.unzip(quads)
    out = []
    for a, b, c, d in _PAIRINGS:
        i1, i2, i3, i4 = columns[a], columns[b], columns[c], columns[d]
        l1, l2, l3, l4 = leptons[i1], leptons[i2], leptons[i3], leptons[i4]
        ossf = (
            (l1.is_muon == l2.is_muon)
            & (l3.is_muon == l4.is_muon)
            & (l1.charge * l2.charge < 0)
            & (l3.charge * l4.charge < 0)
        )
        m12, m34 = (l1 + l2).mass, (l3 + l4).mass
        swap = abs(m34 - z_mass) < abs(m12 - z_mass)
        rec = ak.zip(
            {
                "i1": ak.where(swap, i3, i1),
                "i2": ak.where(swap, i4, i2),
                "i3": ak.where(swap, i1, i3),
                "i4": ak.where(swap, i2, i4),
                "mz1": ak.where(swap, m34, m12),
                "mz2": ak.where(swap, m12, m34),
                "m4l": (l1 + l2 + l3 + l4).mass,
                "z2_pt": ak.where(swap, l1.pt + l2.pt, l3.pt + l4.pt),
            }
        )
        out.append(rec[ossf & (rec.mz1 < z_mass_max) & (rec.mz2 < z_mass_max)])
    cands = ak.concatenate(out, axis=1)
    # Preference: |m(Z1) - m_Z| ascending, then Z2 pT sum descending (stable sorts).
    cands = cands[ak.argsort(-cands.z2_pt, axis=1, stable=True)]
    return cands[ak.argsort(abs(cands.mz1 - z_mass), axis=1, stable=True)]
