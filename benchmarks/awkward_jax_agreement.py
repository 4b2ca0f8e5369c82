"""Why ``bench_agc.py`` flags a disagreement with Awkward's JAX backend at 1e5 events.

The AGC joint jet count (>= 4 selected jets, exactly one b-tag), computed with
the same Awkward code (pad the jet weights, loop over jet positions) on
Awkward's NumPy backend and on its (deprecated) JAX backend, against diffhep's
:func:`~diffhep.select.joint_count_distribution`. Run from the repository root::

    .venv/bin/python benchmarks/awkward_jax_agreement.py --events 100000

On the development machine (JAX 0.10.2, awkward 2.14, W+jets from
``generate_agc``): the NumPy backend agrees with diffhep to 7e-16 every time;
the JAX backend gives a different answer each time it runs on the same inputs:
at 1e5 events "probabilities" up to 13 in half to all of the events, at 2e4
events once wrong (up to 0.35, 6,825 events) and once right (7e-16). Values
that change from run to run and leave [0, 1] look like reads of freed or
uninitialised memory inside the backend; the Awkward-JAX timings of
``bench_agc.py`` measure its cost, but its numbers cannot be trusted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import awkward as ak  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from diffhep.examples import ttbar  # noqa: E402
from diffhep.io import Sample, generate_agc_sample, load_sample  # noqa: E402
from diffhep.select import joint_count_distribution  # noqa: E402

FLAVOURS = ("Muon", "Electron")


def _sigmoid(z):
    return np.exp(-(np.maximum(-z, 0.0) + np.log1p(np.exp(-np.abs(z)))))


def awkward_p41(jet_pt: ak.Array, jet_btag: ak.Array, cuts: dict, slopes: dict, width: int) -> np.ndarray:
    """``P(N_sel >= 4, N_tag = 1)`` per event with Awkward operations on the arrays' own backend."""
    w_sel = _sigmoid(slopes["jet_pt_min"] * (jet_pt - cuts["jet_pt_min"]))
    w_tag = w_sel * _sigmoid(slopes["btag_min"] * (jet_btag - cuts["btag_min"]))
    sel = ak.fill_none(ak.pad_none(w_sel, width, axis=1, clip=True), 0.0)
    tag = ak.fill_none(ak.pad_none(w_tag, width, axis=1, clip=True), 0.0)
    poly = {(i, j): (1.0 if (i, j) == (0, 0) else 0.0) for i in range(5) for j in range(3)}
    for k in range(width):
        s, t = sel[:, k], tag[:, k]
        new: dict = {}
        for (i, j), v in poly.items():
            for (di, dj), f in (((0, 0), 1.0 - s), ((1, 0), s - t), ((1, 1), t)):
                key = (min(i + di, 4), min(j + dj, 2))
                new[key] = new[key] + v * f if key in new else v * f
        poly = new
    return np.asarray(ak.to_numpy(ak.to_backend(poly[(4, 1)], "cpu")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args(argv)
    ak.jax.register_and_check()
    path = generate_agc_sample(Path(tempfile.mkdtemp()) / "wjets.root", "wjets", args.events, seed=11)
    events = load_sample(Sample(name="wjets", files=(str(path),), xsec_pb=1.0), ttbar.branches(FLAVOURS))
    data = ttbar.prepare(events, 1.0, flavours=FLAVOURS)
    slopes = {p.name: p.slope for p in ttbar.CUTS}
    cuts = {p.name: float(p.init) for p in ttbar.CUTS}
    w_sel, tagged = ttbar._jet_weights(data, {k: jnp.asarray(v) for k, v in cuts.items()}, slopes)
    ours = np.asarray(joint_count_distribution(data.jets, w_sel, w_sel * tagged, 4, 2))[:, 4, 1]
    jets = ttbar._jets(events)
    width = int(ak.max(ak.num(jets, axis=1), initial=0))
    pt, btag = ak.values_astype(jets.pt, np.float64), ak.values_astype(jets.btag, np.float64)
    print(f"{args.events:,} events, {len(ak.flatten(pt)):,} jets, up to {width} per event")
    numpy_p41 = awkward_p41(pt, btag, cuts, slopes, width)
    print(f"Awkward NumPy backend vs diffhep: max |diff| {np.max(np.abs(numpy_p41 - ours)):.1e}")
    for attempt in (1, 2):
        jax_p41 = awkward_p41(ak.to_backend(pt, "jax"), ak.to_backend(btag, "jax"), cuts, slopes, width)
        diff = np.abs(jax_p41 - ours)
        print(
            f"Awkward JAX backend vs diffhep (run {attempt}): max |diff| {diff.max():.1e}, "
            f"{int(np.sum(diff > 1e-9)):,} events differ, sum {jax_p41.sum():.6f} vs {ours.sum():.6f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
