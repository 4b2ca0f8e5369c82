"""The default analysis: a dimuon resonance search with three optimisable cuts.

Selection (hard version, what a physicist writes in Awkward):

* muons with ``pt > muon_pt_min``; at least two of them; the two leading ones
  have opposite charge; the observable is their invariant mass;
* veto events with any jet of ``pt > jet_pt_veto`` (top-quark background);
* ``MET_pt < met_max`` (top-quark background, neutrinos).

Because muons are ordered by pt and the only muon cut is a pt threshold, the two
leading *selected* muons are always the two leading muons: the pair, its charge
and its mass are static structure, computed once with Awkward and ``vector``.
Only the weights flow: ``P(>= 2 muons pass) * P(no jet passes) * w(MET)``.
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
from diffhep.histogram import BinnedKernel, binned_kernel
from diffhep.io.memory import read_memory
from diffhep.jagged import Jagged, from_awkward
from diffhep.select import at_least, none_pass, soft_above, soft_below

vector.register_awkward()

__all__ = [
    "BRANCHES",
    "CUTS",
    "EDGES",
    "BANDWIDTH",
    "DimuonData",
    "prepare",
    "with_binning",
    "soft_weights",
    "hard_selection",
]

#: Branches the analysis reads (nothing else is read from the files).
BRANCHES = [
    "Muon_pt",
    "Muon_eta",
    "Muon_phi",
    "Muon_mass",
    "Muon_charge",
    "Jet_pt",
    "MET_pt",
    "genWeight",
]

#: The optimisable cuts, with starting values a newcomer might pick.
CUTS = (
    CutParameter("muon_pt_min", 5.0, 3.0, 60.0, slope=1.0, description="muon pT threshold"),
    CutParameter("jet_pt_veto", 150.0, 20.0, 300.0, slope=0.2, description="veto jets above this pT"),
    CutParameter("met_max", 200.0, 10.0, 300.0, slope=0.2, description="upper cut on MET"),
)

#: Dimuon-mass binning of the fit, GeV.
EDGES = np.linspace(60.0, 140.0, 17)
#: Default KDE kernel width on the dimuon mass, GeV.
BANDWIDTH = 1.0


class DimuonData(eqx.Module):
    """Per-sample inputs of the differentiable stages (structure fixed, values flow).

    Attributes:
        muons: muon collection with field ``pt`` (GeV), leading first.
        jets: jet collection with field ``pt`` (GeV).
        met: ``Float[Array, "events"]`` missing transverse momentum, GeV.
        mass: ``Float[Array, "events"]`` invariant mass of the two leading
            muons, GeV (-1 where there are fewer than two muons).
        base_weight: ``Float[Array, "events"]`` normalisation (xsec * lumi /
            sum of generator weights) times generator weight, times 1 if the two
            leading muons have opposite charge, else 0.
        kernel: the mass's KDE kernel fractions in the fit binning, computed
            once (the mass is static), so a step only sums weights into bins.
        mean_weight: the sample's mean MC event weight (normalisation times
            the mean generator weight over all events, before any selection;
            events): the floor of its empty bins in the spec
            (:func:`diffhep.likelihood.mc_floor`).
    """

    muons: Jagged
    jets: Jagged
    met: Array
    mass: Array
    base_weight: Array
    kernel: BinnedKernel
    mean_weight: float = eqx.field(static=True, default=1.0)


def _leading_pair(events: ak.Array) -> tuple[ak.Array, np.ndarray, np.ndarray]:
    """Muons sorted by pt, the leading-pair mass (-1 if none) and opposite-charge flag."""
    muons = events.Muon[ak.argsort(events.Muon.pt, axis=1, ascending=False)]
    pair = ak.pad_none(muons, 2, axis=1, clip=True)
    p4 = ak.zip(
        {"pt": pair.pt, "eta": pair.eta, "phi": pair.phi, "mass": pair.mass},
        with_name="Momentum4D",
    )
    mass = ak.to_numpy(ak.fill_none((p4[:, 0] + p4[:, 1]).mass, -1.0))
    opposite = ak.to_numpy(ak.fill_none(pair.charge[:, 0] * pair.charge[:, 1] < 0, False))
    return muons, mass, opposite


def prepare(
    events: ak.Array,
    normalisation: float,
    *,
    edges: np.ndarray = EDGES,
    bandwidth: float = BANDWIDTH,
) -> DimuonData:
    """Compute the static structure of one sample, once, with Awkward.

    Args:
        events: events with ``Muon`` and ``Jet`` collections and ``MET_pt``,
            ``genWeight`` (as read by :func:`diffhep.io.read_events`; or uproot's flat
            branches, or coffea's NanoEvents ``events.MET.pt``: :func:`~diffhep.io.memory.read_memory`).
        normalisation: xsec * lumi / sum of generator weights (events per unit
            generator weight).
        edges: binning of the dimuon mass, GeV.
        bandwidth: KDE kernel width on the mass, GeV (0: hard histogram).
    """
    if len(events) == 0:
        raise InputError("cannot prepare a sample with zero events")
    events = read_memory(events, BRANCHES)  # the branches used, zipped as read_events zips them
    muons, mass, opposite = _leading_pair(events)
    weight = np.asarray(events.genWeight, dtype=np.float64) * normalisation * opposite
    dtype = jnp.result_type(float)
    mass_j = jnp.asarray(mass, dtype=dtype)
    return DimuonData(
        muons=from_awkward(muons, fields=["pt"]),
        jets=from_awkward(events.Jet, fields=["pt"]),
        met=jnp.asarray(ak.to_numpy(events.MET_pt), dtype=dtype),
        mass=mass_j,
        base_weight=jnp.asarray(weight, dtype=dtype),
        kernel=binned_kernel(mass_j, edges, bandwidth),
        mean_weight=float(normalisation * np.mean(np.asarray(events.genWeight, dtype=np.float64))),
    )


def with_binning(data: DimuonData, edges: np.ndarray, bandwidth: float) -> DimuonData:
    """``data`` with the mass kernel recomputed for another binning or bandwidth."""
    return eqx.tree_at(lambda d: d.kernel, data, binned_kernel(data.mass, edges, bandwidth))


def soft_weights(data: DimuonData, cuts: Mapping[str, Array], slopes: Mapping[str, float | Array]) -> Array:
    """Differentiable event weights, ``Float[Array, "events"]``.

    ``base_weight * P(>= 2 muons with pt > muon_pt_min) * P(no jet with
    pt > jet_pt_veto) * sigmoid(MET below met_max)``; every factor tends to the
    hard selection as the slopes grow.
    """
    w_mu = soft_above(data.muons.pt, cuts["muon_pt_min"], slopes["muon_pt_min"])
    w_jet = soft_above(data.jets.pt, cuts["jet_pt_veto"], slopes["jet_pt_veto"])
    w_met = soft_below(data.met, cuts["met_max"], slopes["met_max"])
    return data.base_weight * at_least(data.muons, w_mu, 2) * none_pass(data.jets, w_jet) * w_met


def hard_selection(events: ak.Array, cuts: Mapping[str, float], normalisation: float) -> tuple[np.ndarray, np.ndarray]:
    """The same selection with hard cuts, in plain Awkward on NumPy.

    Written independently of the soft path (it selects objects and then
    builds the pair), so that agreement between the two is a real check.

    Returns:
        ``(mass, weight)`` of the selected events, NumPy arrays (GeV, events).
    """
    muons = events.Muon[events.Muon.pt > cuts["muon_pt_min"]]
    muons = muons[ak.argsort(muons.pt, axis=1, ascending=False)]
    two = ak.num(muons, axis=1) >= 2
    jet_veto = ak.all(events.Jet.pt <= cuts["jet_pt_veto"], axis=1)
    met_ok = events.MET_pt < cuts["met_max"]
    selected = events[two & jet_veto & met_ok]
    mu = muons[two & jet_veto & met_ok]
    p4 = ak.zip({"pt": mu.pt, "eta": mu.eta, "phi": mu.phi, "mass": mu.mass}, with_name="Momentum4D")
    opposite = ak.to_numpy(mu.charge[:, 0] * mu.charge[:, 1] < 0)
    mass = ak.to_numpy((p4[:, 0] + p4[:, 1]).mass)[opposite]
    weight = ak.to_numpy(selected.genWeight).astype(np.float64)[opposite] * normalisation
    return mass, weight
