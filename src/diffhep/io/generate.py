"""Synthetic NanoAOD-schema ntuples for a dimuon resonance search.

:func:`generate_sample` writes one process to a ROOT file with a TTree
``Events`` whose branches follow the CMS NanoAOD naming (``nMuon``,
``Muon_pt``, ..., ``MET_pt``, ``genWeight``). Energies, momenta and masses are
in GeV; cross-sections in pb.

Events are generated in fixed blocks of :data:`BLOCK_SIZE` events, block ``b``
drawing from ``np.random.SeedSequence([seed, process_id, b])``. Blocks are then
regrouped into writes of ``chunk_size`` events, so the file content depends on
``(process, seed, n_events)`` only, never on ``chunk_size``; memory stays bounded
by ``chunk_size + BLOCK_SIZE`` events whatever ``n_events`` is.

Example:
    >>> import tempfile, uproot
    >>> path = generate_sample(tempfile.mkdtemp() + "/signal.root", "signal", 1000, seed=1)
    >>> uproot.open(path)["Events"].num_entries
    1000
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import awkward as ak
import numpy as np

from diffhep.errors import InputError
from diffhep.io.generate_common import UnknownProcessError, check_process, write_tree

__all__ = [
    "PROCESSES",
    "DEFAULT_EVENTS",
    "BLOCK_SIZE",
    "SCHEMA_VERSION",
    "UnknownProcessError",
    "generate_sample",
    "generate_dataset",
]

#: Version of the generated content; bumped whenever branches or physics change,
#: so cached datasets are regenerated (2: Muon_tightId and Muon_sip3d).
SCHEMA_VERSION = 2

#: Events per process of the dimuon template (``analyses/dimuon``, ``make demo``): enough MC that
#: its statistical uncertainty matters, small enough for a 2-core laptop.
DEFAULT_EVENTS = {"signal": 20_000, "dy": 60_000, "ttbar": 40_000, "qcd": 60_000}

#: Events per random-number block; fixed so the output never depends on chunk_size.
BLOCK_SIZE = 10_000

#: Per-process metadata: cross-section in pb and a one-line description.
PROCESSES: dict[str, dict] = {
    "signal": {
        "xsec_pb": 0.5,
        "description": "narrow dimuon resonance, m = 100 GeV, Gamma = 1 GeV, plus ISR jets",
    },
    "dy": {
        "xsec_pb": 60.0,
        "description": "Drell-Yan dimuon continuum, falling mass spectrum from 60 GeV",
    },
    "ttbar": {
        "xsec_pb": 5.0,
        "description": "dileptonic ttbar: two W muons, two b-jets, light jets, real MET",
    },
    "qcd": {
        "xsec_pb": 2000.0,
        "description": "multijet events with soft non-prompt, non-isolated muons",
    },
}


def _process_id(process: str) -> int:
    """Stable integer for a process name (CRC-32, independent of dict order)."""
    return zlib.crc32(process.encode())


def _check_process(process: str) -> None:
    check_process(process, PROCESSES)


def _blocks(process: str, n_events: int, seed: int) -> Iterator[dict]:
    """Yield the fixed blocks of a sample; at least one (possibly empty) block."""
    pid = _process_id(process)
    n_blocks = max(1, -(-n_events // BLOCK_SIZE))
    for b in range(n_blocks):
        n = min(BLOCK_SIZE, n_events - b * BLOCK_SIZE)
        rng = np.random.default_rng(np.random.SeedSequence([seed, pid, b]))
        block = _MAKERS[process](rng, n)
        # Identification variables come from their own stream, so adding them
        # left every other branch as it was.
        id_rng = np.random.default_rng(np.random.SeedSequence([seed, pid, b, 1]))
        block["Muon"] = _muon_id(id_rng, block["Muon"])
        start = b * BLOCK_SIZE
        event = np.arange(start + 1, start + n + 1, dtype=np.uint64)
        ids = {
            "run": np.ones(n, dtype=np.uint32),
            "luminosityBlock": (event // 1000 + 1).astype(np.uint32),
            "event": event,
        }
        yield {**ids, **block}


def _concat(parts: list[dict]) -> dict:
    if len(parts) == 1:
        return parts[0]
    out = {}
    for key in parts[0]:
        values = [p[key] for p in parts]
        out[key] = np.concatenate(values) if isinstance(values[0], np.ndarray) else ak.concatenate(values)
    return out


def _slice(part: dict, start: int, stop: int | None) -> dict:
    return {key: value[start:stop] for key, value in part.items()}


def _chunks(process: str, n_events: int, seed: int, chunk_size: int) -> Iterator[dict]:
    """Regroup the fixed blocks into chunks of exactly ``chunk_size`` events (last may be short)."""
    buffer: list[dict] = []
    buffered = 0
    for block in _blocks(process, n_events, seed):
        buffer.append(block)
        buffered += len(block["event"])
        while buffered >= chunk_size and buffered > 0:
            merged = _concat(buffer)
            yield _slice(merged, 0, chunk_size)
            rest = _slice(merged, chunk_size, None)
            buffered -= chunk_size
            buffer = [rest] if buffered else []
    if buffer:
        yield _concat(buffer)


def generate_sample(path: str | Path, process: str, n_events: int, *, seed: int, chunk_size: int = 100_000) -> Path:
    """Write ``n_events`` synthetic events of ``process`` to a NanoAOD-like ROOT file.

    Args:
        path: output file, replaced atomically (parent folders are created): an
            interrupted call leaves no partial file and no temporary file behind.
        process: a key of :data:`PROCESSES`.
        n_events: number of events (``>= 0``).
        seed: random seed; the output is a function of ``(process, seed, n_events)``.
        chunk_size: events per ``TTree.extend`` (basket size); does not change the content.

    Returns:
        The path written. The TTree ``Events`` holds ``run``, ``luminosityBlock``,
        ``event``; ``nMuon``, ``Muon_{pt,eta,phi,mass,charge,pfRelIso04_all,tightId,sip3d}``;
        ``nJet``, ``Jet_{pt,eta,phi,mass,btagCSVV2}``; ``MET_pt``, ``MET_phi`` and
        ``genWeight``. Collections are sorted by descending pt (GeV).
    """
    _check_process(process)
    if not isinstance(n_events, (int, np.integer)) or n_events < 0:
        raise InputError(f"n_events must be a non-negative integer, got {n_events!r}")
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise InputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    chunks = _chunks(process, int(n_events), seed, int(chunk_size))
    return write_tree(path, "Events", chunks, title="diffhep synthetic NanoAOD")


def generate_dataset(
    outdir: str | Path,
    *,
    n_events: dict[str, int] | int,
    seed: int = 1,
    chunk_size: int = 100_000,
) -> dict[str, Path]:
    """Write one file ``<outdir>/<process>.root`` per process.

    Args:
        outdir: output folder (created if missing).
        n_events: events per process, or one count for every process in :data:`PROCESSES`.
        seed: random seed shared by all processes (streams differ by process).
        chunk_size: events per write.

    Returns:
        Process name → path written, in the order of ``n_events`` (or :data:`PROCESSES`).
    """
    counts = dict.fromkeys(PROCESSES, n_events) if isinstance(n_events, int) else dict(n_events)
    for process in counts:
        _check_process(process)
    outdir = Path(outdir)
    return {
        process: generate_sample(outdir / f"{process}.root", process, n, seed=seed, chunk_size=chunk_size)
        for process, n in counts.items()
    }


# ----------------------------------------------------------------------------
# Physics: vectorised per block, no Python loops over events.
# ----------------------------------------------------------------------------

MUON_MASS = 0.1057  # GeV
_ETA_MUON = 2.4
_ETA_JET = 4.7


def _exp(rng: np.random.Generator, offset: float, mean: float, size: int) -> np.ndarray:
    """``offset`` + exponential(``mean``), GeV."""
    return offset + rng.exponential(mean, size)


def _truncnorm(rng: np.random.Generator, sigma: float, limit: float, size: int) -> np.ndarray:
    """Normal(0, sigma) restricted to |x| < limit by redrawing (loop over redraws, not events)."""
    x = rng.normal(0.0, sigma, size)
    bad = np.abs(x) >= limit
    while bad.any():
        x[bad] = rng.normal(0.0, sigma, int(bad.sum()))
        bad = np.abs(x) >= limit
    return x


def _phi(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.uniform(-np.pi, np.pi, size)


def _weights(rng: np.random.Generator, n: int, negative_fraction: float = 0.0) -> np.ndarray:
    """genWeight: lognormal around 1 (sigma 0.1), a fraction flipped negative (NLO-like)."""
    w = rng.lognormal(0.0, 0.1, n)
    if negative_fraction:
        w = np.where(rng.random(n) < negative_fraction, -w, w)
    return w.astype(np.float32)


def _met_gauss(rng: np.random.Generator, n: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """MET from a 2D Gaussian with ``sigma`` GeV per component: (pt, phi)."""
    x, y = rng.normal(0.0, sigma, n), rng.normal(0.0, sigma, n)
    return np.hypot(x, y), np.arctan2(y, x)


def _two_body(
    rng: np.random.Generator, mass: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decay resonances of ``mass`` (GeV, shape (n,)) to two muons in the lab.

    The resonance has pT ~ exponential(mean 10 GeV), rapidity ~ normal(0, 1.5)
    and uniform phi; the decay is isotropic in its rest frame. Returns
    ``(pt, eta, phi)`` for each muon, each of shape (n,) (pt before smearing).
    """
    n = len(mass)
    pt_r, y_r, phi_r = rng.exponential(10.0, n), rng.normal(0.0, 1.5, n), _phi(rng, n)
    mt_r = np.hypot(mass, pt_r)
    energy = mt_r * np.cosh(y_r)
    beta = np.stack([pt_r * np.cos(phi_r), pt_r * np.sin(phi_r), mt_r * np.sinh(y_r)]) / energy
    gamma = energy / mass
    cos_t, phi_t = rng.uniform(-1.0, 1.0, n), _phi(rng, n)
    sin_t = np.sqrt(1.0 - cos_t**2)
    pstar = np.sqrt(np.maximum(mass**2 / 4.0 - MUON_MASS**2, 0.0))
    p_rest = pstar * np.stack([sin_t * np.cos(phi_t), sin_t * np.sin(phi_t), cos_t])
    e_rest = mass / 2.0
    beta2 = np.maximum((beta**2).sum(axis=0), 1e-300)
    out = []
    for sign in (1.0, -1.0):
        p = sign * p_rest
        bp = (beta * p).sum(axis=0)
        p_lab = p + ((gamma - 1.0) * bp / beta2 + gamma * e_rest) * beta
        px, py, pz = p_lab
        pt = np.hypot(px, py)
        out += [pt, np.arcsinh(pz / pt), np.arctan2(py, px)]
    return tuple(out)  # type: ignore[return-value]


def _collection(n: int, parts: list[dict[str, np.ndarray]], eta_max: float) -> ak.Array:
    """Merge per-object flat arrays (each with an ``idx`` event index) into a jagged record.

    Objects with |eta| >= ``eta_max`` are dropped; the rest are sorted by event,
    then by descending pt. Returns an array of length ``n`` of ``var * {...}``.
    """
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    keep = np.abs(merged["eta"]) < eta_max
    merged = {k: v[keep] for k, v in merged.items()}
    order = np.lexsort((-merged["pt"], merged["idx"]))
    counts = np.bincount(merged["idx"], minlength=n)
    fields = {k: v[order] for k, v in merged.items() if k != "idx"}
    return ak.unflatten(ak.zip(fields), counts)


def _muons(idx: np.ndarray, pt, eta, phi, charge, iso, rng: np.random.Generator) -> dict:
    """Flat muon fields with 2% Gaussian pT smearing (float32, charge int32)."""
    pt = pt * (1.0 + 0.02 * rng.normal(size=len(pt)))
    return {
        "idx": idx,
        "pt": pt.astype(np.float32),
        "eta": eta.astype(np.float32),
        "phi": phi.astype(np.float32),
        "mass": np.full(len(pt), MUON_MASS, dtype=np.float32),
        "charge": charge.astype(np.int32),
        "pfRelIso04_all": iso.astype(np.float32),
    }


def _muon_id(rng: np.random.Generator, muons: ak.Array) -> ak.Array:
    """Add ``tightId`` and ``sip3d`` (3-d impact-parameter significance) to muons.

    Isolated (prompt-like, ``pfRelIso04_all < 0.15``) muons pass the tight ID
    with 95% probability and have ``sip3d ~ |N(0, 1.5)|``; non-isolated ones 60%
    and ``sip3d ~ exp(4)`` (displaced, from heavy-flavour decays).
    """
    iso = ak.to_numpy(ak.flatten(muons.pfRelIso04_all))
    prompt = iso < 0.15
    m = len(iso)
    tight = rng.random(m) < np.where(prompt, 0.95, 0.6)
    sip3d = np.where(prompt, np.abs(rng.normal(0.0, 1.5, m)), rng.exponential(4.0, m))
    counts = ak.num(muons, axis=1)
    muons = ak.with_field(muons, ak.unflatten(tight, counts), "tightId")
    return ak.with_field(muons, ak.unflatten(sip3d.astype(np.float32), counts), "sip3d")


def _soft_muons(rng: np.random.Generator, n: int, rate: float, pt_mean: float, iso_mean: float) -> dict:
    """Non-prompt muons: Poisson(rate) per event, pT = 3 + exp(pt_mean) GeV, random charge."""
    idx = np.repeat(np.arange(n), rng.poisson(rate, n))
    m = len(idx)
    return _muons(
        idx,
        _exp(rng, 3.0, pt_mean, m),
        rng.normal(0.0, 1.5, m),
        _phi(rng, m),
        rng.choice(np.array([-1, 1]), m),
        rng.exponential(iso_mean, m),
        rng,
    )


def _jets(rng: np.random.Generator, idx: np.ndarray, pt: np.ndarray, eta: np.ndarray, btag: np.ndarray) -> dict:
    """Flat jet fields; mass = 0.1 pT with 10% spread (GeV)."""
    m = len(idx)
    mass = 0.1 * pt * np.clip(rng.normal(1.0, 0.1, m), 0.5, 1.5)
    return {
        "idx": idx,
        "pt": pt.astype(np.float32),
        "eta": eta.astype(np.float32),
        "phi": _phi(rng, m).astype(np.float32),
        "mass": mass.astype(np.float32),
        "btagCSVV2": btag.astype(np.float32),
    }


def _light_jets(
    rng: np.random.Generator, n: int, rate: float, offset: float, mean: float, b_fraction: float = 0.0
) -> dict:
    idx = np.repeat(np.arange(n), rng.poisson(rate, n))
    m = len(idx)
    btag = np.where(rng.random(m) < b_fraction, rng.uniform(0.6, 1.0, m), rng.uniform(0.0, 0.5, m))
    return _jets(rng, idx, _exp(rng, offset, mean, m), rng.uniform(-_ETA_JET, _ETA_JET, m), btag)


def _event(n: int, muons: list[dict], jets: list[dict], met: tuple, weight: np.ndarray) -> dict:
    return {
        "Muon": _collection(n, muons, _ETA_MUON),
        "Jet": _collection(n, jets, _ETA_JET),
        "MET_pt": met[0].astype(np.float32),
        "MET_phi": met[1].astype(np.float32),
        "genWeight": weight,
    }


def _dimuon_process(rng: np.random.Generator, mass: np.ndarray) -> dict:
    """Signal or Drell-Yan: resonance of ``mass`` (GeV) → μ+μ-, soft muons, ISR jets."""
    n = len(mass)
    pt1, eta1, phi1, pt2, eta2, phi2 = _two_body(rng, mass)
    q1 = rng.choice(np.array([-1, 1]), n)
    idx = np.arange(n)
    prompt = _muons(
        np.concatenate([idx, idx]),
        np.concatenate([pt1, pt2]),
        np.concatenate([eta1, eta2]),
        np.concatenate([phi1, phi2]),
        np.concatenate([q1, -q1]),
        rng.exponential(0.03, 2 * n),
        rng,
    )
    soft = _soft_muons(rng, n, 0.2, 5.0, 0.3)
    jets = _light_jets(rng, n, 1.2, 20.0, 15.0)
    return _event(n, [prompt, soft], [jets], _met_gauss(rng, n, 12.0), _weights(rng, n))


def _make_signal(rng: np.random.Generator, n: int) -> dict:
    """Breit-Wigner (Cauchy) m0 = 100 GeV, Gamma = 1 GeV, truncated to [80, 120] GeV by inverse CDF."""
    m0, half = 100.0, 0.5
    u_lo, u_hi = (np.arctan((m - m0) / half) / np.pi + 0.5 for m in (80.0, 120.0))
    mass = m0 + half * np.tan(np.pi * (rng.uniform(u_lo, u_hi, n) - 0.5))
    return _dimuon_process(rng, mass)


def _make_dy(rng: np.random.Generator, n: int) -> dict:
    """m = 60 + exponential(mean 30) GeV, truncated to [60, 250] GeV by inverse CDF."""
    u = rng.uniform(0.0, 1.0 - np.exp(-190.0 / 30.0), n)
    return _dimuon_process(rng, 60.0 - 30.0 * np.log1p(-u))


def _make_ttbar(rng: np.random.Generator, n: int) -> dict:
    """Two W muons (pT = 10 + exp(30) GeV, OS), 2 b-jets + Poisson(2.5) light jets, MET 30 + exp(50)."""
    idx = np.arange(n)
    q1 = rng.choice(np.array([-1, 1]), n)
    prompt = _muons(
        np.concatenate([idx, idx]),
        _exp(rng, 10.0, 30.0, 2 * n),
        _truncnorm(rng, 1.2, _ETA_MUON, 2 * n),
        _phi(rng, 2 * n),
        np.concatenate([q1, -q1]),
        rng.exponential(0.05, 2 * n),
        rng,
    )
    soft = _soft_muons(rng, n, 0.6, 5.0, 0.3)
    bidx = np.concatenate([idx, idx])
    bjets = _jets(
        rng, bidx, _exp(rng, 30.0, 50.0, 2 * n), _truncnorm(rng, 1.5, 2.5, 2 * n), rng.uniform(0.6, 1.0, 2 * n)
    )
    light = _light_jets(rng, n, 2.5, 30.0, 50.0)
    met = (_exp(rng, 30.0, 50.0, n), _phi(rng, n))
    return _event(n, [prompt, soft], [bjets, light], met, _weights(rng, n, negative_fraction=0.01))


def _make_qcd(rng: np.random.Generator, n: int) -> dict:
    """Poisson(2.2) non-prompt muons (pT = 3 + exp(7) GeV, iso ~ exp(0.4)), Poisson(3) jets."""
    soft = _soft_muons(rng, n, 2.2, 7.0, 0.4)
    jets = _light_jets(rng, n, 3.0, 20.0, 30.0, b_fraction=0.15)
    return _event(n, [soft], [jets], _met_gauss(rng, n, 15.0), _weights(rng, n))


_MAKERS: dict[str, Callable[[np.random.Generator, int], dict]] = {
    "signal": _make_signal,
    "dy": _make_dy,
    "ttbar": _make_ttbar,
    "qcd": _make_qcd,
}
