"""The Analysis Grand Challenge ttbar selection, relaxed: one lepton, >= 4 jets, b-tags.

Hard selection (the AGC's coffea code, in plain Awkward: :func:`hard_selection`):

* leptons: muons with ``|eta| < 2.1``, tight ID, ``sip3d < 4``,
  ``pfRelIso04_all < 0.15``; electrons with ``|eta| < 2.1``, ``cutBased == 4``,
  ``sip3d < 4``; both with ``pt > lepton_pt_min``; exactly one per event;
* jets: ``|eta| < 2.4``, the tight-lepton-veto jet ID (``Jet_jetId`` bit 2,
  coffea's ``isTightLeptonVeto``: ``jetId & 4 != 0``) and ``pt > jet_pt_min``;
  at least four; a jet is b-tagged if ``btagCSVV2 > btag_min``;
* region ``4j1b``: exactly one b-tagged jet; observable ``HT``, the scalar sum of
  the selected jets' pT;
* region ``4j2b``: at least two b-tagged jets; observable the mass of the
  trijet (three selected jets) with the largest pT among trijets that contain a
  b-tagged jet.

The fixed identification requirements are static: objects failing them can
never pass and are dropped once (:func:`diffhep.jagged.keep`). The three
thresholds are optimisable. Soft version:

* jets: ``w_sel = sigmoid(pt > jet_pt_min)``, ``w_tag = w_sel * sigmoid(btag >
  btag_min)``; region weights from the exact joint count of (selected, tagged)
  jets (:func:`diffhep.select.joint_count_distribution`);
* ``HT = sum w_sel pT`` (a traced observable, histogrammed with a banded KDE
  evaluated in the step);
* trijets: all jet triplets and their pT order are static (Awkward + ``vector``);
  a trijet qualifies with ``prod w_sel * (1 - prod (1 - t))`` and the chosen one
  is the first qualifying in pT order (:func:`diffhep.select.ordered.first_pass`).

Objects are treated as independent throughout; with steep slopes every piece is
the hard selection (tested on the CMS Open Data file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
from diffhep.jagged.candidates import trijets as build_trijets
from diffhep.select import exactly, first_pass, joint_count_distribution, soft_above

vector.register_awkward()

__all__ = [
    "BRANCHES",
    "CUTS",
    "REGIONS",
    "TtbarData",
    "prepare",
    "region_weights",
    "soft_observables",
    "soft_histograms",
    "hard_observables",
    "hard_selection",
]

_LEPTON_BRANCHES = {
    "Muon": ["Muon_pt", "Muon_eta", "Muon_tightId", "Muon_sip3d", "Muon_pfRelIso04_all"],
    "Electron": ["Electron_pt", "Electron_eta", "Electron_cutBased", "Electron_sip3d"],
}
_JET_BRANCHES = ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btagCSVV2", "Jet_jetId"]


def branches(flavours: Sequence[str] = ("Muon", "Electron")) -> list[str]:
    """Branches read for the given lepton flavours."""
    return [b for f in flavours for b in _LEPTON_BRANCHES[f]] + _JET_BRANCHES + ["genWeight"]


#: Branches the analysis reads (muons and electrons).
BRANCHES = branches()

#: The optimisable cuts (AGC values as the start).
CUTS = (
    CutParameter("lepton_pt_min", 30.0, 10.0, 80.0, slope=0.5, description="lepton pT threshold"),
    CutParameter("jet_pt_min", 30.0, 20.0, 80.0, slope=0.5, description="jet pT threshold"),
    CutParameter("btag_min", 0.5, 0.1, 0.95, slope=20.0, unit="", description="b-tag (CSVv2) working point"),
)

#: Region -> (observable, bin edges in GeV), as in the AGC.
REGIONS = {
    "4j1b": ("HT", np.linspace(50.0, 550.0, 26)),
    "4j2b": ("trijet mass", np.linspace(50.0, 550.0, 26)),
}


class TtbarData(eqx.Module):
    """Per-sample inputs of the differentiable stages.

    Attributes:
        leptons: leptons passing the fixed identification, field ``pt`` (GeV).
        jets: identified jets with ``|eta| < 2.4``, leading first, fields ``pt`` (GeV),
            ``btag``.
        trijets: jet triplets, largest trijet pT first in each event, field
            ``mass`` (GeV).
        members: ``Int[Array, "trijets 3"]`` flat jet indices of each trijet.
        base_weight: ``Float[Array, "events"]`` normalisation x generator weight.
        trijet_kernel: KDE kernel of the trijet masses in the ``4j2b`` binning.
        bandwidth: KDE width for ``HT`` (evaluated in the step), GeV (static).
    """

    leptons: Jagged
    jets: Jagged
    trijets: Jagged
    members: Array
    base_weight: Array
    trijet_kernel: BinnedKernel
    bandwidth: float = eqx.field(static=True)


def _identified_leptons(events: ak.Array, flavours: Sequence[str]) -> ak.Array:
    """pT of leptons passing the fixed AGC identification, ``events * var * float64``."""
    parts = []
    for flavour in flavours:
        c = events[flavour]
        if flavour == "Muon":
            ok = (abs(c.eta) < 2.1) & c.tightId & (c.sip3d < 4) & (c.pfRelIso04_all < 0.15)
        elif flavour == "Electron":
            ok = (abs(c.eta) < 2.1) & (c.cutBased == 4) & (c.sip3d < 4)
        else:
            raise InputError(f"unknown lepton flavour {flavour!r}: use Muon and/or Electron")
        parts.append(ak.values_astype(c.pt[ok], np.float64))
    return ak.concatenate(parts, axis=1)


def _identified_jets(events: ak.Array) -> ak.Array:
    """Jets in ``|eta| < 2.4`` that pass the tight-lepton-veto ID (the AGC's ``jets.isTightLeptonVeto``)."""
    jets = events.Jet
    return jets[(abs(jets.eta) < 2.4) & ((jets.jetId & 4) != 0)]


def _jets(events: ak.Array) -> ak.Array:
    jets = _identified_jets(events)
    jets = jets[ak.argsort(jets.pt, axis=1, ascending=False, stable=True)]
    return ak.zip(
        {
            "pt": ak.values_astype(jets.pt, np.float64),
            "eta": ak.values_astype(jets.eta, np.float64),
            "phi": ak.values_astype(jets.phi, np.float64),
            "mass": ak.values_astype(jets.mass, np.float64),
            "btag": ak.values_astype(jets.btagCSVV2, np.float64),
        },
        with_name="Momentum4D",
    )


def prepare(
    events: ak.Array,
    normalisation: float,
    *,
    flavours: Sequence[str] = ("Muon", "Electron"),
    bandwidth: float = 5.0,
) -> TtbarData:
    """Static structure of one sample: identified leptons, jets, ordered trijets.

    Args:
        events: NanoAOD events with the ``Jet`` collection, the lepton
            collections in ``flavours`` and ``genWeight`` (read with
            :func:`branches`; or in memory as uproot's flat branches or coffea's
            NanoEvents: :func:`~diffhep.io.memory.read_memory`).
        normalisation: events per unit generator weight.
        flavours: lepton collections to use; a sample that has no electrons
            must say so with ``flavours=("Muon",)``.
        bandwidth: KDE kernel width for both observables, GeV (0: hard).
    """
    if len(events) == 0:
        raise InputError("cannot prepare a ttbar sample with zero events")
    events = read_memory(events, branches(flavours))  # the branches used, zipped as read_events zips them
    dtype = jnp.result_type(float)
    leptons = _identified_leptons(events, flavours)
    jets = _jets(events)
    tri = build_trijets(jets)
    counts = ak.to_numpy(ak.num(tri, axis=1))
    offsets = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(jets, axis=1)))])[:-1]
    event_of = np.repeat(np.arange(len(counts)), counts)
    members = np.stack([ak.to_numpy(ak.flatten(tri[f"i{k}"])) + offsets[event_of] for k in (1, 2, 3)], axis=1).reshape(
        -1, 3
    )
    segment_ids, local_index = structure_from_counts(counts)
    mass = jnp.asarray(ak.to_numpy(ak.flatten(tri.mass)), dtype=dtype)
    trijets = Jagged(
        fields={"mass": mass},
        segment_ids=jnp.asarray(segment_ids),
        local_index=jnp.asarray(local_index),
        n_events=len(counts),
        max_count=int(counts.max()) if len(counts) else 0,
    )
    weight = np.asarray(events.genWeight, dtype=np.float64) * normalisation
    return TtbarData(
        leptons=from_awkward(ak.zip({"pt": leptons}), dtype=dtype),
        jets=from_awkward(ak.zip({"pt": jets.pt, "btag": jets.btag}), dtype=dtype),
        trijets=trijets,
        members=jnp.asarray(members, dtype=jnp.int32),
        base_weight=jnp.asarray(weight, dtype=dtype),
        trijet_kernel=binned_kernel(mass, REGIONS["4j2b"][1], bandwidth),
        bandwidth=float(bandwidth),
    )


def _jet_weights(data: TtbarData, cuts: Mapping[str, Array], slopes: Mapping[str, float | Array]):
    w_sel = soft_above(data.jets.pt, cuts["jet_pt_min"], slopes["jet_pt_min"])
    tagged = soft_above(data.jets.btag, cuts["btag_min"], slopes["btag_min"])
    return w_sel, tagged


def region_weights(data: TtbarData, cuts: Mapping[str, Array], slopes: Mapping[str, float | Array]) -> dict[str, Array]:
    """Probability that each event is in each region, ``{region: (events,)}``.

    ``P(exactly 1 lepton) * P(N_sel >= 4, N_tag = 1 or >= 2)``.
    """
    w_lep = soft_above(data.leptons.pt, cuts["lepton_pt_min"], slopes["lepton_pt_min"])
    one_lepton = exactly(data.leptons, w_lep, 1)
    w_sel, tagged = _jet_weights(data, cuts, slopes)
    joint = joint_count_distribution(data.jets, w_sel, w_sel * tagged, 4, 2)
    return {"4j1b": one_lepton * joint[:, 4, 1], "4j2b": one_lepton * joint[:, 4, 2]}


def soft_observables(
    data: TtbarData, cuts: Mapping[str, Array], slopes: Mapping[str, float | Array]
) -> dict[str, Array]:
    """Per-event soft quantities (each converges to :func:`hard_observables`).

    Returns:
        ``{"4j1b", "4j2b"}``: region probabilities ``(events,)``; ``"HT"``:
        ``sum w_sel pT`` ``(events,)``; ``"trijet"``: ``P(trijet chosen)``
        ``(trijets,)``; ``"has_trijet"``: ``P(a qualifying trijet exists)`` and
        ``"trijet_mass"``: its expected mass given it exists (0 if never),
        ``(events,)``.
    """
    out = region_weights(data, cuts, slopes)
    w_sel, tagged = _jet_weights(data, cuts, slopes)
    out["HT"] = data.jets.sum(w_sel * data.jets.pt)
    m = data.members
    sel = w_sel[m[:, 0]] * w_sel[m[:, 1]] * w_sel[m[:, 2]]
    untagged = (1.0 - tagged[m[:, 0]]) * (1.0 - tagged[m[:, 1]]) * (1.0 - tagged[m[:, 2]])
    out["trijet"] = chosen = first_pass(data.trijets, sel * (1.0 - untagged))
    out["has_trijet"] = exists = data.trijets.sum(chosen)
    mass_sum = data.trijets.sum(chosen * data.trijets.mass)
    out["trijet_mass"] = jnp.where(exists > 0, mass_sum / jnp.where(exists > 0, exists, 1.0), 0.0)
    return out


def soft_histograms(
    data: TtbarData, cuts: Mapping[str, Array], slopes: Mapping[str, float | Array]
) -> dict[str, Histogram]:
    """Soft histograms of both regions: ``{"4j1b": HT, "4j2b": trijet mass}``."""
    obs = soft_observables(data, cuts, slopes)
    h_ht = fill(
        binned_kernel(obs["HT"], REGIONS["4j1b"][1], data.bandwidth),
        data.base_weight * obs["4j1b"],
    )
    event_weight = data.base_weight * obs["4j2b"]
    h_mass = fill(data.trijet_kernel, obs["trijet"] * data.trijets.broadcast(event_weight))
    return {"4j1b": h_ht, "4j2b": h_mass}


def hard_observables(
    events: ak.Array, cuts: Mapping[str, float], *, flavours: Sequence[str] = ("Muon", "Electron")
) -> dict[str, np.ndarray]:
    """Per-event hard quantities in plain Awkward (the AGC's code), ``(events,)`` each.

    Returns:
        ``"4j1b"``, ``"4j2b"``: region membership (bool); ``"HT"``: scalar sum
        of selected jet pT; ``"has_trijet"``: a trijet of selected jets with a
        b-tag exists; ``"trijet_mass"``: mass of the largest-pT such trijet (0
        where none).
    """
    leptons = _identified_leptons(events, flavours)
    n_lep = ak.num(leptons[leptons > cuts["lepton_pt_min"]], axis=1)
    jets = _identified_jets(events)
    jets = jets[jets.pt > cuts["jet_pt_min"]]
    n_tag = ak.sum(jets.btagCSVV2 > cuts["btag_min"], axis=1)
    base = (n_lep == 1) & (ak.num(jets, axis=1) >= 4)
    p4 = ak.zip(
        {f: ak.values_astype(jets[f], np.float64) for f in ("pt", "eta", "phi", "mass")},
        with_name="Momentum4D",
    )
    tri = ak.combinations(ak.zip({"p4": p4, "btag": jets.btagCSVV2}), 3, fields=["j1", "j2", "j3"])
    tri_p4 = tri.j1.p4 + tri.j2.p4 + tri.j3.p4
    max_btag = np.maximum(tri.j1.btag, np.maximum(tri.j2.btag, tri.j3.btag))
    tri_p4 = tri_p4[max_btag > cuts["btag_min"]]
    best = ak.firsts(tri_p4[ak.argmax(tri_p4.pt, axis=1, keepdims=True)].mass)
    return {
        "4j1b": ak.to_numpy(base & (n_tag == 1)),
        "4j2b": ak.to_numpy(base & (n_tag >= 2)),
        "HT": ak.to_numpy(ak.sum(ak.values_astype(jets.pt, np.float64), axis=1)),
        "has_trijet": ak.to_numpy(~ak.is_none(best)),
        "trijet_mass": ak.to_numpy(ak.fill_none(best, 0.0)),
    }


def hard_selection(
    events: ak.Array,
    cuts: Mapping[str, float],
    normalisation: float,
    *,
    flavours: Sequence[str] = ("Muon", "Electron"),
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The selection with hard cuts in plain Awkward: ``{region: (observable, weight)}``."""
    obs = hard_observables(events, cuts, flavours=flavours)
    weight = np.asarray(events.genWeight, dtype=np.float64) * normalisation
    m1, m2 = obs["4j1b"], obs["4j2b"]
    return {"4j1b": (obs["HT"][m1], weight[m1]), "4j2b": (obs["trijet_mass"][m2], weight[m2])}
