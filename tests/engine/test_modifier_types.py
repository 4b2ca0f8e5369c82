"""``shapesys`` and ``normfactor`` systematics: the schema accepted them, the engine refused them.

A config with a 20 % ``shapesys`` and a free ``normfactor`` on the background
now builds; its workspace carries them as pyhf modifiers (``shapesys`` data =
sigma x the sample's yield per bin, one parameter per region and bin), and
diffhep's likelihood of the spec equals pyhf's of the written workspace at
random parameter points. A per-bin list of sigmas, which the engine does not
take, is refused by ``validate`` as by the engine.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import jax
import numpy as np
import pyhf
import pytest
import yaml

from diffhep.cli import main
from diffhep.config import load_config
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.io.generate import generate_sample
from diffhep.likelihood import build_model

CONFIG = """\
name: modifiers
lumi_pb: 5000.0
samples:
  signal: {role: signal, files: [signal.root], xsec_pb: 0.5, weight: genWeight}
  dy: {role: background, files: [dy.root], xsec_pb: 60.0, weight: genWeight}
parameters:
  muon_pt_min: {init: 20, bounds: [5, 60], slope: 0.5, unit: GeV}
objects:
  muons: {collection: Muon, cuts: pt > muon_pt_min}
regions:
  sr:
    select: count(muons) >= 2
    observable: pair_mass(muons)
    binning: {bins: 6, range: [70, 130]}
    bandwidth: 0
systematics:
  dy_shape: {type: shapesys, samples: [dy], sigma: 0.2}
  dy_norm: {type: normfactor, samples: [dy]}
measurement:
  poi: mu
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("modifiers")
    generate_sample(folder / "signal.root", "signal", 300, seed=1)
    generate_sample(folder / "dy.root", "dy", 600, seed=2)
    (folder / "config.yaml").write_text(CONFIG)
    return folder / "config.yaml"


def test_shapesys_and_normfactor_are_pyhf_modifiers_with_pyhfs_likelihood(config):
    assert main(["validate", str(config)]) == 0
    loaded = load_config(config)
    with jax.enable_x64(True):
        analysis = ConfiguredAnalysis.from_config(loaded.data, base=loaded.base_dir)
        hard = analysis.hard_histograms({"muon_pt_min": 20.0})
        spec = analysis.spec(hard)
        ws = analysis.workspace(hard)
        (channel,) = ws["channels"]
        dy = next(s for s in channel["samples"] if s["name"] == "dy")
        modifiers = {m["name"]: m for m in dy["modifiers"]}
        assert modifiers["dy_norm"]["type"] == "normfactor"
        assert modifiers["dy_shape_sr"]["type"] == "shapesys"
        np.testing.assert_allclose(modifiers["dy_shape_sr"]["data"], 0.2 * np.asarray(dy["data"]), rtol=1e-12)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="jsonschema.RefResolver", category=DeprecationWarning)
            workspace = pyhf.Workspace(ws)
            ref = workspace.model()
        ours = build_model(spec, poi_name="mu")
        assert ours.config.par_order == ref.config.par_order and ref.config.npars == 2 + 6
        data = np.asarray(workspace.data(ref))
        rng = np.random.default_rng(0)
        bounds = np.asarray(ref.config.suggested_bounds(), dtype=float)
        for _ in range(4):
            pars = rng.uniform(np.maximum(bounds[:, 0], 0.5), np.minimum(bounds[:, 1], 1.5))
            np.testing.assert_allclose(ours.logpdf(pars, data), ref.logpdf(pars, data), rtol=1e-10)


def test_a_per_bin_sigma_list_is_refused_in_one_line(config, tmp_path, capsys):
    raw = yaml.safe_load(config.read_text())
    raw["systematics"]["dy_shape"]["sigma"] = [0.1, 0.2]
    for name in ("signal.root", "dy.root"):
        (tmp_path / name).symlink_to(config.parent / name)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["validate", str(tmp_path / "c.yaml")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "systematics.dy_shape.sigma" in err, err
