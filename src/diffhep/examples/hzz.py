"""H -> ZZ* -> 4 leptons: Z-candidate pairing with optimisable lepton and mass cuts.

Selection (hard version, what a physicist writes in Awkward, see
:func:`hard_selection`):

* leptons: muons with ``pt > muon_pt_min``, electrons with
  ``pt > electron_pt_min``, both with absolute isolation ``Iso < iso_max`` (GeV);
* ZZ candidates: four selected leptons forming two opposite-charge,
  same-flavour (OSSF) pairs; in each candidate Z1 is the pair whose mass is
  closer to the Z mass, Z2 the other; both masses below ``Z_MASS_MAX``;
* mass windows: ``m(Z1) > z1_mass_min`` and ``m(Z2) > z2_mass_min``;
* among the candidates that pass, the one with ``|m(Z1) - m_Z|`` smallest (ties:
  larger scalar pT sum of the Z2 leptons) is the event's; the observable is its
  four-lepton mass.

Static structure: every OSSF candidate of *all* leptons, its pairing, masses
and preference order are computed once with Awkward and ``vector``. Only
weights flow: a candidate passes with the product of its four lepton weights
times the two soft mass cuts, and :func:`~diffhep.select.ordered.first_pass`
turns the static preference order into the probability that each candidate is
the one chosen. With steep slopes this is exactly the hard selection (tested on
``uproot-HZZ.root``).

The default branches are those of the ROOT/uproot H->ZZ tutorial file
(``Muon_Px``, ..., ``Electron_Iso``, ``EventWeight``).
"""

from __future__ import annotations

from collections.abc import Mapping

import awkward as ak
import equinox as eqx
import jax.numpy as jnp
import numpy as np
import vector
from jax import Array

from diffhep.config.parameters import CutParameter
from diffhep.errors import InputError
from diffhep.histogram import BinnedKernel, Histogram, binned_kernel, fill
from diffhep.io.memory import read_memory
from diffhep.jagged import Jagged, from_awkward, structure_from_counts
from diffhep.jagged.candidates import Z_MASS, Z_MASS_MAX, zz_candidates
from diffhep.select import at_least, first_pass, soft_above, soft_below

vector.register_awkward()

__all__ = [
    "BRANCHES",
    "CUTS",
    "EDGES",
    "Z_MASS",
    "Z_MASS_MAX",
    "HZZData",
    "prepare",
    "candidate_weights",
    "soft_histogram",
    "soft_cutflow",
    "hard_selection",
    "hard_cutflow",
]

FLAVOURS = ("Muon", "Electron")
_FIELDS = ("Px", "Py", "Pz", "E", "Charge", "Iso")

#: Branches the analysis reads.
BRANCHES = [f"{c}_{f}" for c in FLAVOURS for f in _FIELDS] + ["EventWeight"]


#: The optimisable cuts.
CUTS = (
    CutParameter("muon_pt_min", 5.0, 3.0, 40.0, slope=1.0, description="muon pT threshold"),
    CutParameter("electron_pt_min", 7.0, 5.0, 40.0, slope=1.0, description="electron pT threshold"),
    CutParameter("iso_max", 5.0, 0.5, 20.0, slope=2.0, description="upper cut on absolute lepton isolation"),
    CutParameter("z1_mass_min", 40.0, 20.0, 85.0, slope=0.5, description="lower edge of the Z1 mass window"),
    CutParameter("z2_mass_min", 12.0, 4.0, 60.0, slope=0.5, description="lower edge of the Z2 mass window"),
)

#: Four-lepton mass binning, GeV.
EDGES = np.linspace(80.0, 300.0, 23)


class HZZData(eqx.Module):
    """Per-sample inputs of the differentiable stages.

    Attributes:
        leptons: muons then electrons of each event, fields ``pt`` (GeV),
            ``iso`` (GeV) and ``is_muon`` (1.0 or 0.0).
        candidates: ZZ candidates in order of preference per event, fields
            ``mz1``, ``mz2``, ``m4l`` (GeV).
        members: ``Int[Array, "candidates 4"]`` flat lepton indices (Z1 pair,
            then Z2 pair).
        base_weight: ``Float[Array, "events"]`` normalisation times event weight.
        kernel: KDE kernel fractions of the candidates' ``m4l``.
    """

    leptons: Jagged
    candidates: Jagged
    members: Array
    base_weight: Array
    kernel: BinnedKernel


def _leptons(events: ak.Array) -> ak.Array:
    """Muons then electrons per event as ``Momentum4D`` records (float64)."""
    parts = []
    for flavour in FLAVOURS:
        c = events[flavour]
        parts.append(
            ak.zip(
                {
                    "px": ak.values_astype(c.Px, np.float64),
                    "py": ak.values_astype(c.Py, np.float64),
                    "pz": ak.values_astype(c.Pz, np.float64),
                    "E": ak.values_astype(c.E, np.float64),
                    "charge": c.Charge,
                    "iso": ak.values_astype(c.Iso, np.float64),
                    "is_muon": ak.full_like(c.Charge, flavour == "Muon", dtype=bool),
                },
                with_name="Momentum4D",
            )
        )
    return ak.concatenate(parts, axis=1)


def _zz(leptons: ak.Array) -> ak.Array:
    return zz_candidates(leptons, z_mass=Z_MASS, z_mass_max=Z_MASS_MAX)


def prepare(events: ak.Array, normalisation: float, *, edges: np.ndarray = EDGES, bandwidth: float = 2.0) -> HZZData:
    """Static structure of one sample: leptons, ZZ candidates, their order and ``m4l`` kernel.

    Args:
        events: events with ``Muon`` and ``Electron`` collections (fields
            ``Px, Py, Pz, E, Charge, Iso``) and ``EventWeight``, as read by
            :func:`diffhep.io.read_events` with :data:`BRANCHES` (or in memory in any form
            :func:`~diffhep.io.memory.read_memory` takes).
        normalisation: events per unit event weight (xsec * lumi / sum of weights).
        edges: binning of the four-lepton mass, GeV.
        bandwidth: KDE kernel width on ``m4l``, GeV (0: hard histogram).
    """
    if len(events) == 0:
        raise InputError("cannot prepare an H->ZZ sample with zero events")
    events = read_memory(events, BRANCHES)  # the branches used, zipped as read_events zips them
    leptons = _leptons(events)
    cands = _zz(leptons)
    counts = ak.to_numpy(ak.num(cands, axis=1))
    # Local lepton indices -> flat indices into the lepton buffer.
    offsets = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(leptons, axis=1)))])[:-1]
    event_of = np.repeat(np.arange(len(counts)), counts)
    members = np.stack(
        [ak.to_numpy(ak.flatten(cands[f"i{k}"])) + offsets[event_of] for k in range(1, 5)], axis=1
    ).reshape(-1, 4)
    segment_ids, local_index = structure_from_counts(counts)
    dtype = jnp.result_type(float)
    flat = {k: jnp.asarray(ak.to_numpy(ak.flatten(cands[k])), dtype=dtype) for k in ("mz1", "mz2", "m4l")}
    candidates = Jagged(
        fields=flat,
        segment_ids=jnp.asarray(segment_ids),
        local_index=jnp.asarray(local_index),
        n_events=len(counts),
        max_count=int(counts.max()) if len(counts) else 0,
    )
    lepton_table = ak.zip(
        {"pt": leptons.pt, "iso": leptons.iso, "is_muon": ak.values_astype(leptons.is_muon, np.float64)}
    )
    weight = np.asarray(events.EventWeight, dtype=np.float64) * normalisation
    return HZZData(
        leptons=from_awkward(lepton_table, dtype=dtype),
        candidates=candidates,
        members=jnp.asarray(members, dtype=jnp.int32),
        base_weight=jnp.asarray(weight, dtype=dtype),
        kernel=binned_kernel(flat["m4l"], edges, bandwidth),
    )


def lepton_weights(data: HZZData, cuts: Mapping[str, Array], slopes: Mapping[str, float | Array]) -> Array:
    """Pass probability of every lepton (pT threshold of its flavour, isolation), ``(leptons,)``."""
    lep = data.leptons
    is_mu = lep.is_muon > 0.5
    w_pt = jnp.where(
        is_mu,
        soft_above(lep.pt, cuts["muon_pt_min"], slopes["muon_pt_min"]),
        soft_above(lep.pt, cuts["electron_pt_min"], slopes["electron_pt_min"]),
    )
    return w_pt * soft_below(lep.iso, cuts["iso_max"], slopes["iso_max"])


def candidate_weights(
    data: HZZData, cuts: Mapping[str, Array], slopes: Mapping[str, float | Array]
) -> tuple[Array, Array]:
    """``(leptons_pass, mass_pass)`` per candidate, each ``(candidates,)``.

    ``leptons_pass`` is the product of the four lepton weights; ``mass_pass``
    adds the two soft Z mass cuts on top.
    """
    w_lep = lepton_weights(data, cuts, slopes)[data.members]
    leptons_pass = w_lep[:, 0] * w_lep[:, 1] * w_lep[:, 2] * w_lep[:, 3]
    c = data.candidates
    mass_pass = (
        leptons_pass
        * soft_above(c.mz1, cuts["z1_mass_min"], slopes["z1_mass_min"])
        * soft_above(c.mz2, cuts["z2_mass_min"], slopes["z2_mass_min"])
    )
    return leptons_pass, mass_pass


def soft_histogram(data: HZZData, cuts: Mapping[str, Array], slopes: Mapping[str, float | Array]) -> Histogram:
    """Soft four-lepton mass histogram: each candidate weighted by P(it is the chosen one)."""
    _, passing = candidate_weights(data, cuts, slopes)
    chosen = first_pass(data.candidates, passing)
    return fill(data.kernel, chosen * data.candidates.broadcast(data.base_weight))


#: Names of the cutflow steps, in order.
CUTFLOW_STEPS = ("all events", ">= 4 leptons", "ZZ candidate", "Z mass windows")


def soft_cutflow(data: HZZData, cuts: Mapping[str, Array], slopes: Mapping[str, float | Array]) -> Array:
    """Expected weighted yield after each of :data:`CUTFLOW_STEPS`, ``(4,)``.

    Each step's event weight is the probability that the event passes it and
    every step before (they are nested), so the yields never increase.
    """
    leptons_pass, mass_pass = candidate_weights(data, cuts, slopes)
    c = data.candidates
    steps = [
        jnp.ones_like(data.base_weight),
        at_least(data.leptons, lepton_weights(data, cuts, slopes), 4),
        c.sum(first_pass(c, leptons_pass)),
        c.sum(first_pass(c, mass_pass)),
    ]
    return jnp.stack([jnp.sum(data.base_weight * s) for s in steps])


def hard_selection(
    events: ak.Array, cuts: Mapping[str, float], normalisation: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same selection with hard cuts, in plain Awkward on NumPy.

    Leptons are selected first and candidates built from the selected ones only.

    Returns:
        ``(m4l, weight, cutflow)``: four-lepton mass (GeV) and weight of the
        selected events, and the weighted yield after each of
        :data:`CUTFLOW_STEPS`.
    """
    leptons = _leptons(events)
    pt_min = ak.where(leptons.is_muon, cuts["muon_pt_min"], cuts["electron_pt_min"])
    selected = leptons[(leptons.pt > pt_min) & (leptons.iso < cuts["iso_max"])]
    cands = _zz(selected)
    passing = cands[(cands.mz1 > cuts["z1_mass_min"]) & (cands.mz2 > cuts["z2_mass_min"])]
    best = ak.firsts(passing.m4l, axis=1)
    weight = np.asarray(events.EventWeight, dtype=np.float64) * normalisation
    masks = [
        np.ones(len(events), dtype=bool),
        ak.to_numpy(ak.num(selected, axis=1) >= 4),
        ak.to_numpy(ak.num(cands, axis=1) > 0),
        ak.to_numpy(~ak.is_none(best)),
    ]
    cutflow = np.array([weight[m].sum() for m in masks])
    return ak.to_numpy(best[masks[-1]]), weight[masks[-1]], cutflow


def hard_cutflow(events: ak.Array, cuts: Mapping[str, float], normalisation: float) -> np.ndarray:
    """Weighted yields after each of :data:`CUTFLOW_STEPS` with hard cuts, ``(4,)``."""
    return hard_selection(events, cuts, normalisation)[2]
