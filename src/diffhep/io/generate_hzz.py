"""Synthetic H -> ZZ* -> 4 leptons samples in the schema of the uproot H->ZZ tutorial file.

:func:`generate_hzz_sample` writes one process of :data:`HZZ_PROCESSES` to a
ROOT file with a TTree ``events`` whose branches have the names and types of
``uproot-HZZ.root`` (``int32`` counters ``NMuon``/``NElectron``/``NJet``,
``float32`` four-momenta ``Px, Py, Pz, E`` in GeV, ``int32`` charges, absolute
isolation ``Iso`` in GeV, ``bool`` ``Jet_ID``); see :data:`BRANCHES`.
Cross-sections are in pb (13 TeV, four-lepton final states with l = e, mu).

Physics (vectorised):

* ``higgs``: m_H = 125 GeV, (m_Z1, m_Z2) drawn from the H -> ZZ* matrix
  element ``sqrt(lam) (lam + 12 x1 x2)`` times two Z Breit-Wigners (m > 4
  GeV), so one Z is on shell and the other off shell (~ 12-35 GeV);
* ``zz``: continuum qq -> ZZ: 95% both Z on shell (m4l from ~185 GeV, falling),
  5% with a low-mass Z*/gamma* (m4l from ~110 GeV), a small irreducible
  background under the peak;
* ``zjets``: Z -> ll plus 2 + Poisson(0.3) non-prompt leptons from jets (soft,
  absolute isolation ``1 + exp(8)`` GeV);
* ``ttbar_4l``: dileptonic ttbar (two prompt leptons, no Z peak) plus the
  non-prompt leptons of the two b decays;
* every Z decays to e+e- or mu+mu- (50/50), so 4mu : 4e : 2e2mu = 1 : 1 : 2;
  prompt leptons have ``Iso ~ exp(1)`` GeV; momenta are smeared by 1.5% (mu)
  and 2.5% (e); leptons are kept above 3 (mu) / 5 (e) GeV within
  ``|eta| < 2.4 / 2.5``; jets above 30 GeV within ``|eta| < 2.5``;
* ``EventWeight`` ~ lognormal(0, 0.05), positive.

Example:
    >>> import tempfile, uproot
    >>> path = generate_hzz_sample(tempfile.mkdtemp() + "/h.root", "higgs", 500, seed=1)
    >>> uproot.open(path)["events"].typenames()["Muon_Charge"]
    'int32_t[]'
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from diffhep.io.generate_common import (
    breit_wigner,
    collection,
    p4_from,
    pt_eta_phi,
    two_body,
    write_dataset,
    write_sample,
)

__all__ = ["HZZ_PROCESSES", "BRANCHES", "generate_hzz_sample", "generate_hzz_dataset"]

#: Process -> cross-section times branching ratio to the generated final state (pb) and description.
HZZ_PROCESSES: dict[str, dict] = {
    "higgs": {
        "xsec_pb": 0.0069,
        "description": "H -> ZZ* -> 4l, m_H = 125 GeV (sigma_H 55 pb x BR 1.25e-4)",
    },
    "zz": {"xsec_pb": 1.3, "description": "continuum qq -> ZZ(*) -> 4l"},
    "zjets": {
        "xsec_pb": 5.0,
        "description": "Z -> ll with >= 2 non-prompt lepton candidates (effective cross-section)",
    },
    "ttbar_4l": {
        "xsec_pb": 4.0,
        "description": "dileptonic ttbar with two non-prompt leptons from b decays (effective)",
    },
}

_COUNTED = {
    "Jet": ("Px", "Py", "Pz", "E", "btag", "ID"),
    "Muon": ("Px", "Py", "Pz", "E", "Charge", "Iso"),
    "Electron": ("Px", "Py", "Pz", "E", "Charge", "Iso"),
}
#: Branches written, in order.
BRANCHES = [name for c, fields in _COUNTED.items() for name in [f"N{c}"] + [f"{c}_{f}" for f in fields]] + [
    "MET_px",
    "MET_py",
    "EventWeight",
]

H_MASS = 125.0  # GeV
Z_MASS, Z_WIDTH = 91.1876, 2.4952  # GeV
TOP_MASS, W_MASS, B_MASS = 172.5, 80.38, 4.8  # GeV
MUON_MASS, ELECTRON_MASS = 0.1057, 0.000511  # GeV


@functools.cache
def _zz_star_table(step: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Grid of ``(m1, m2)`` cell lower edges (GeV) and the cumulative H -> ZZ* probability."""
    edges = np.arange(4.0, H_MASS - 4.0, step)
    m1, m2 = (g.ravel() + step / 2 for g in np.meshgrid(edges, edges, indexing="ij"))
    x1, x2 = (m1 / H_MASS) ** 2, (m2 / H_MASS) ** 2
    lam = np.maximum((1.0 - x1 - x2) ** 2 - 4.0 * x1 * x2, 0.0) * (m1 + m2 < H_MASS)

    def bw(m: np.ndarray) -> np.ndarray:
        return m / ((m**2 - Z_MASS**2) ** 2 + (Z_MASS * Z_WIDTH) ** 2)

    density = np.sqrt(lam) * (lam + 12.0 * x1 * x2) * bw(m1) * bw(m2)
    cdf = np.cumsum(density)
    return np.stack([m1 - step / 2, m2 - step / 2]), cdf / cdf[-1]


def _zz_star_masses(rng: np.random.Generator, n: int, step: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """``(m1, m2)`` of H -> Z Z* (GeV), each ``(n,)``; uniform within the table's cells."""
    lower, cdf = _zz_star_table(step)
    cell = np.minimum(np.searchsorted(cdf, rng.random(n)), cdf.size - 1)
    return lower[0, cell] + step * rng.random(n), lower[1, cell] + step * rng.random(n)


class _Objects:
    """Accumulates flat leptons, jets and invisible momenta of ``n`` events."""

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        self.rng, self.n = rng, n
        self.leptons: list[dict] = []
        self.jets: list[dict] = []
        self.met = np.zeros((2, n))

    def lepton(self, idx: np.ndarray, p4: np.ndarray, muon: np.ndarray, charge: np.ndarray, iso: np.ndarray) -> None:
        """Leptons (muons where ``muon``, else electrons) with absolute isolation ``iso`` (GeV)."""
        self.leptons.append({"idx": idx, "p4": p4, "muon": muon, "charge": charge, "iso": iso})

    def fakes(self, idx: np.ndarray) -> None:
        """Non-prompt leptons in events ``idx``: pT = 4 + exp(8) GeV, random flavour and charge."""
        rng, m = self.rng, len(idx)
        muon = rng.random(m) < 0.5
        pt, eta, phi = 4.0 + rng.exponential(8.0, m), rng.normal(0.0, 1.5, m), rng.uniform(-np.pi, np.pi, m)
        p4 = p4_from(np.where(muon, MUON_MASS, ELECTRON_MASS), pt, eta, phi)
        self.lepton(idx, p4, muon, rng.choice(np.array([-1, 1]), m), 1.0 + rng.exponential(8.0, m))

    def z_decay(self, idx: np.ndarray, z: np.ndarray, m_z: np.ndarray) -> None:
        """Z (4, m) of mass ``m_z`` -> e+e- or mu+mu- (50/50), prompt and isolated."""
        rng, m = self.rng, len(idx)
        muon = rng.random(m) < 0.5
        mass = np.where(muon, MUON_MASS, ELECTRON_MASS)
        l1, l2 = two_body(rng, z, m_z, mass, mass)
        q = rng.choice(np.array([-1, 1]), m)
        for p4, charge in ((l1, q), (l2, -q)):
            self.lepton(idx, p4, muon, charge, rng.exponential(1.0, m))

    def jet(self, idx: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, b: np.ndarray | bool) -> None:
        self.jets.append({"idx": idx, "pt": pt, "eta": eta, "phi": phi, "b": np.broadcast_to(b, idx.shape)})

    def extra_jets(self, rate: float) -> None:
        """Poisson(``rate``) light jets per event, pT = 20 x Pareto(2) GeV."""
        rng = self.rng
        idx = np.repeat(np.arange(self.n), rng.poisson(rate, self.n))
        m = len(idx)
        pt = 20.0 * rng.uniform(0.0, 1.0, m) ** -0.5
        self.jet(idx, pt, rng.normal(0.0, 2.0, m), rng.uniform(-np.pi, np.pi, m), False)

    def build(self) -> dict:
        rng, n, f32 = self.rng, self.n, np.float32
        lep = {k: np.concatenate([p[k] for p in self.leptons], axis=-1) for k in self.leptons[0]}
        p4 = lep["p4"]
        mass = np.sqrt(np.maximum(p4[0] ** 2 - (p4[1:] ** 2).sum(axis=0), 0.0))
        p3 = p4[1:] * (1.0 + rng.normal(size=p4.shape[1]) * np.where(lep["muon"], 0.015, 0.025))
        energy = np.sqrt((p3**2).sum(axis=0) + mass**2)
        pt, eta, _ = pt_eta_phi(np.concatenate([energy[None], p3]))
        out = {}
        jets = self._jets()
        out["Jet"] = collection(n, [jets], "pt", drop=("pt",))
        for name, is_mu, eta_max, pt_min in (("Muon", True, 2.4, 3.0), ("Electron", False, 2.5, 5.0)):
            s = (lep["muon"] == is_mu) & (np.abs(eta) < eta_max) & (pt > pt_min)
            part = {"idx": lep["idx"][s], "pt": pt[s]}
            part.update({k: v[s].astype(f32) for k, v in zip(("Px", "Py", "Pz"), p3)})
            part.update(E=energy[s].astype(f32), Charge=lep["charge"][s].astype(np.int32))
            part.update(Iso=lep["iso"][s].astype(f32))
            out[name] = collection(n, [part], "pt", drop=("pt",))
        met = self.met + rng.normal(0.0, 8.0, (2, n))
        out.update(MET_px=met[0].astype(f32), MET_py=met[1].astype(f32))
        out["EventWeight"] = rng.lognormal(0.0, 0.05, n).astype(f32)
        return out

    def _jets(self) -> dict:
        rng = self.rng
        j = {k: np.concatenate([p[k] for p in self.jets]) for k in ("idx", "pt", "eta", "phi", "b")}
        keep = (j["pt"] > 30.0) & (np.abs(j["eta"]) < 2.5)
        j = {k: v[keep] for k, v in j.items()}
        m = len(j["pt"])
        mass = j["pt"] * np.clip(rng.normal(0.15, 0.05, m), 0.03, 0.35)
        p4 = p4_from(mass, j["pt"], j["eta"], j["phi"])  # eta taken as the rapidity
        untagged = rng.random(m) < np.where(j["b"], 0.1, 0.5)
        btag = np.where(untagged, -1.0, np.where(j["b"], 1.5, 0.0) + rng.exponential(np.where(j["b"], 1.0, 0.6)))
        out = {"idx": j["idx"], "pt": j["pt"]}
        out.update({k: p4[i].astype(np.float32) for k, i in (("Px", 1), ("Py", 2), ("Pz", 3), ("E", 0))})
        out.update(btag=btag.astype(np.float32), ID=rng.random(m) < 0.98)
        return out


def _boson(rng: np.random.Generator, mass: np.ndarray, pt_mean: float, y_sigma: float) -> np.ndarray:
    """Bosons of ``mass`` with pT ~ Gamma(2, pt_mean / 2) GeV and rapidity ~ N(0, y_sigma)."""
    n = len(mass)
    pt, y = rng.gamma(2.0, pt_mean / 2.0, n), rng.normal(0.0, y_sigma, n)
    return p4_from(mass, pt, y, rng.uniform(-np.pi, np.pi, n))


def _higgs(rng: np.random.Generator, n: int, first: int) -> dict:
    obj, idx = _Objects(rng, n), np.arange(n)
    m1, m2 = _zz_star_masses(rng, n)
    mass = np.full(n, H_MASS)
    z1, z2 = two_body(rng, _boson(rng, mass, 25.0, 1.6), mass, m1, m2)
    obj.z_decay(idx, z1, m1)
    obj.z_decay(idx, z2, m2)
    obj.extra_jets(0.6)
    return obj.build()


def _zz(rng: np.random.Generator, n: int, first: int) -> dict:
    obj, idx = _Objects(rng, n), np.arange(n)
    m1 = breit_wigner(rng, Z_MASS, Z_WIDTH, 60.0, 120.0, n)
    on_shell = rng.random(n) < 0.95
    # Off-shell Z*/gamma*: m = 8 x Pareto(1.5) GeV, kept below 60 GeV (inverse CDF).
    u = rng.uniform(0.0, 1.0 - (8.0 / 60.0) ** 1.5, n)
    m2 = np.where(on_shell, breit_wigner(rng, Z_MASS, Z_WIDTH, 60.0, 120.0, n), 8.0 * (1.0 - u) ** (-1.0 / 1.5))
    m_zz = m1 + m2 + rng.gamma(np.where(on_shell, 1.5, 1.2), 40.0)
    z1, z2 = two_body(rng, _boson(rng, m_zz, 20.0, 1.5), m_zz, m1, m2)
    obj.z_decay(idx, z1, m1)
    obj.z_decay(idx, z2, m2)
    obj.extra_jets(0.4)
    return obj.build()


def _zjets(rng: np.random.Generator, n: int, first: int) -> dict:
    obj, idx = _Objects(rng, n), np.arange(n)
    m_z = breit_wigner(rng, Z_MASS, Z_WIDTH, 60.0, 120.0, n)
    obj.z_decay(idx, _boson(rng, m_z, 20.0, 2.0), m_z)
    obj.fakes(np.repeat(idx, 2 + rng.poisson(0.3, n)))
    obj.extra_jets(1.5)
    return obj.build()


def _ttbar_4l(rng: np.random.Generator, n: int, first: int) -> dict:
    """Both tops -> b W(-> l nu); each b gives a non-prompt lepton with 20-50% of its pT."""
    obj, idx = _Objects(rng, n), np.arange(n)
    pt, phi = rng.gamma(2.0, 50.0, n), rng.uniform(-np.pi, np.pi, n)
    for charge, dphi in ((1, 0.0), (-1, np.pi)):
        m_t = breit_wigner(rng, TOP_MASS, 1.4, 150.0, 195.0, n)
        top = p4_from(m_t, pt, rng.normal(0.0, 1.0, n), phi + dphi)
        m_w = breit_wigner(rng, W_MASS, 2.09, 50.0, 100.0, n)
        b, w = two_body(rng, top, m_t, B_MASS, m_w)
        muon = rng.random(n) < 0.5
        lep, nu = two_body(rng, w, m_w, np.where(muon, MUON_MASS, ELECTRON_MASS), 0.0)
        obj.lepton(idx, lep, muon, np.full(n, charge), rng.exponential(1.0, n))
        obj.met += nu[1:3]
        b_pt, b_eta, b_phi = pt_eta_phi(b)
        obj.jet(idx, b_pt * rng.normal(1.0, 0.1, n), b_eta, b_phi, True)
        z = rng.uniform(0.2, 0.5, n)
        fake_mu = rng.random(n) < 0.5
        near = rng.normal(0.0, 0.05, (2, n))  # inside the b jet: not isolated
        fake = p4_from(np.where(fake_mu, MUON_MASS, ELECTRON_MASS), z * b_pt, b_eta + near[0], b_phi + near[1])
        obj.lepton(idx, fake, fake_mu, rng.choice(np.array([-1, 1]), n), 1.0 + rng.exponential(8.0, n))
    obj.extra_jets(1.0)
    return obj.build()


_MAKERS = {"higgs": _higgs, "zz": _zz, "zjets": _zjets, "ttbar_4l": _ttbar_4l}


def _counter_name(counted: str) -> str:
    """Counters as in the tutorial file: ``NMuon``, ``NElectron``, ``NJet``."""
    return "N" + counted


def generate_hzz_sample(path: str | Path, process: str, n_events: int, *, seed: int, chunk_size: int = 100_000) -> Path:
    """Write ``n_events`` synthetic four-lepton events of ``process`` to ``path`` (TTree ``events``).

    Args:
        path: output file, replaced atomically (parent folders are created).
        process: a key of :data:`HZZ_PROCESSES`.
        n_events: number of events (``>= 0``).
        seed: random seed; the output is a function of ``(process, seed, n_events)``.
        chunk_size: events per ``TTree.extend``; does not change the content.

    Returns:
        The path written; its branches are :data:`BRANCHES`, collections sorted
        by descending pT (GeV).
    """
    return write_sample(
        path, process, n_events, seed=seed, chunk_size=chunk_size, processes=HZZ_PROCESSES, makers=_MAKERS,
        stream="hzz", tree_name="events", title="diffhep synthetic H->ZZ*->4l", counter_name=_counter_name,
    )  # fmt: skip


def generate_hzz_dataset(
    folder: str | Path, n_events: Mapping[str, int] | int, *, seed: int = 1, chunk_size: int = 100_000
) -> dict[str, Path]:
    """Write ``<folder>/<process>.root`` for each process.

    Args:
        folder: output folder (created if missing).
        n_events: events per process, or one count for every process of :data:`HZZ_PROCESSES`.
        seed: random seed shared by all processes (their streams differ).
        chunk_size: events per write.

    Returns:
        Process -> path, in the order of ``n_events`` (or :data:`HZZ_PROCESSES`).
    """
    return write_dataset(generate_hzz_sample, folder, n_events, HZZ_PROCESSES, seed=seed, chunk_size=chunk_size)
