"""`diffhep run` on sample files read over HTTP (a local server on 127.0.0.1) gives the numbers of the local files.

Also the limits of ``inputs:`` (files and events read per sample) and the one-line errors of
inputs that cannot be read: a URL that is not on the server, a refused connection, a folder
without ROOT files, a limit that is not a positive whole number. The oracle of the remote
run is the same config on the local files (``../shared/data``).
"""

from __future__ import annotations

import gc
import json
import shutil
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import uproot
from http_server import serve

from diffhep.cli import main

ZMUMU = "uproot-Zmumu.root"  # a flat TTree `events`, 2304 dimuon candidates

CONFIG = """\
name: zmumu_remote
lumi_pb: 1.0
tree: events
samples:
  z:
    role: signal
    files: [{z}]
    xsec_pb: 2304.0
  bkg:
    role: background
    files: [{bkg}]
    xsec_pb: 1000.0
parameters:
  muon_pt_min: {{init: 20, bounds: [0, 60], slope: 1.0, unit: GeV}}
regions:
  z_peak:
    select: pt1 > muon_pt_min and pt2 > muon_pt_min and Q1 * Q2 < 0
    observable: M
    binning: {{bins: 8, range: [60, 140]}}
    bandwidth: 0
systematics:
  bkg_norm: {{type: normsys, samples: [bkg], hi: 1.1, lo: 0.9}}
  z_model:
    type: histosys
    samples: [z]
    up: {{files: [{up}]}}
measurement:
  poi: mu
objective:
  name: asimov_significance
"""


def write_config(folder: Path, name: str, base: str, extra: str = "", **files: str) -> Path:
    """A config reading every sample from ``base`` (a folder path or a server URL); ``files`` override."""
    names = {"z": f"{base}/{ZMUMU}", "bkg": f"{base}/{ZMUMU}", "up": f"{base}/{ZMUMU}", **files}
    path = folder / name
    path.write_text(CONFIG.format(**names) + extra)
    return path


def error_line(capsys) -> str:
    """The one line on stderr, checked to be ``error: ...`` without a traceback."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def histograms(path: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Every histogram of a histograms.root: name -> (values, variances)."""
    with uproot.open(path) as f:
        return {
            key: (f[key].values().tolist(), f[key].variances().tolist())
            for key, cls in f.classnames(recursive=True).items()
            if cls.startswith("TH1")
        }


@pytest.fixture(scope="module")
def runs(shared_data, shared_data_server, tmp_path_factory) -> Path:
    """``diffhep run`` of the config on the local files (``local/``) and over HTTP (``remote/``), once."""
    folder = tmp_path_factory.mktemp("remote")
    local = write_config(folder, "local.yaml", str(shared_data))
    remote = write_config(folder, "remote.yaml", shared_data_server.url)
    before = len(shared_data_server.requests)
    assert main(["run", str(local), "--output", str(folder / "local"), "--quiet"]) == 0
    assert len(shared_data_server.requests) == before  # the local run asks the server nothing
    assert main(["run", str(remote), "--output", str(folder / "remote"), "--quiet"]) == 0
    assert f"/{ZMUMU}" in shared_data_server.requests[before:]  # the remote run reads over HTTP
    return folder


def test_run_over_http_gives_the_numbers_of_the_local_files(runs):
    a, b = (json.loads((runs / run / "results.json").read_text()) for run in ("local", "remote"))
    assert a["yields"]["z_peak"]["z"] > 0 and a["yields"] == b["yields"]
    assert a["cutflow"] == b["cutflow"] and a["significance"]["hard_pyhf"] == b["significance"]["hard_pyhf"]
    assert (runs / "local" / "workspace.json").read_text() == (runs / "remote" / "workspace.json").read_text()
    hists = histograms(runs / "local" / "histograms.root")
    assert len(hists) >= 4 and hists == histograms(runs / "remote" / "histograms.root")


def test_limits_on_files_and_events_per_sample(shared_data_server, tmp_path, capsys):
    url = shared_data_server.url
    two = f"{url}/{ZMUMU}, {url}/second_copy_never_read.root"
    path = write_config(tmp_path, "limited.yaml", url, "inputs:\n  max_files_per_sample: 1\n", z=two, bkg=two, up=two)
    assert main(["validate", str(path), "--output", str(tmp_path / "v")]) == 0
    assert json.loads((tmp_path / "v" / "validate.json").read_text())["events"] == {"z": 2304, "bkg": 2304}
    assert "/second_copy_never_read.root" not in shared_data_server.requests  # the file past the limit
    path.write_text(path.read_text() + "  max_events_per_sample: 1000\n")
    assert main(["validate", str(path), "--output", str(tmp_path / "v")]) == 0
    assert json.loads((tmp_path / "v" / "validate.json").read_text())["events"] == {"z": 1000, "bkg": 1000}

    from diffhep.config import load_config
    from diffhep.engine.configured import ConfiguredAnalysis

    analysis = ConfiguredAnalysis(load_config(path))
    data = analysis.load()  # nominal z, bkg and the variation z/z_model/up: 1000 events each, read
    assert data.weight.shape == (3000,)
    assert np.sum(np.asarray(data.weight)[:1000]) == pytest.approx(2304.0)  # normalised over the events read
    capsys.readouterr()


def test_unreadable_inputs_are_one_line_errors_that_keep_the_previous_outputs(
    runs, shared_data, shared_data_server, tmp_path, capsys
):
    out = Path(shutil.copytree(runs / "local", tmp_path / "out"))  # the outputs of a previous run
    written = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()

    missing = f"{shared_data_server.url}/not_on_the_server.root"
    refused = f"http://127.0.0.1:{closed_port()}/{ZMUMU}"
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no ROOT file here")
    cases = {
        "missing.yaml": ({"bkg": missing}, [missing, "sample 'bkg'", "HTTP 404"]),
        "refused.yaml": ({"z": refused}, [refused, "sample 'z'", "connection refused"]),
        "folder.yaml": ({"bkg": str(tmp_path / "empty")}, [str(tmp_path / "empty"), "sample 'bkg'", "no ROOT files"]),
    }
    for name, (files, expected) in cases.items():
        path = write_config(tmp_path, name, str(shared_data), **files)
        assert main(["run", str(path), "--output", str(out), "--quiet"]) == 1
        err = error_line(capsys)
        assert all(text in err for text in expected), err
        assert {p.name: p.read_bytes() for p in out.iterdir()} == written  # nothing already written is lost
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()  # any socket of the failed requests, closed here rather than during a later test

    for limit in ("0", "-3", "1.5", "two"):
        path = write_config(
            tmp_path, "bad_limit.yaml", str(shared_data), f"inputs: {{max_events_per_sample: {limit}}}\n"
        )
        assert main(["validate", str(path), "--no-data"]) == 1
        err = error_line(capsys)
        assert "inputs.max_events_per_sample" in err and "bad_limit.yaml:" in err, err


@pytest.mark.parametrize("mode", ["memory", "streaming"])
def test_a_server_gone_before_loading_names_the_sample_and_the_url(shared_data, tmp_path, mode):
    from diffhep.config import load_config
    from diffhep.engine.chunked import ChunkedAnalysis
    from diffhep.engine.configured import ConfiguredAnalysis
    from diffhep.execute.settings import ExecutionSettings
    from diffhep.io.read import RemoteFileError

    with serve(shared_data) as server:  # a server of its own, stopped after the analysis is built
        path = write_config(tmp_path, "gone.yaml", server.url)
        config = load_config(path)
        analysis = ConfiguredAnalysis(config)
        if mode == "streaming":
            analysis = ChunkedAnalysis(analysis, config, settings=ExecutionSettings(mode="streaming", cache=tmp_path))
    with pytest.raises(RemoteFileError, match=r"sample 'z': cannot read http://127\.0\.0\.1:\d+/uproot-Zmumu\.root"):
        analysis.load()
    if mode == "streaming":
        analysis.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_generate_refuses_a_url_as_its_target(shared_data_server, tmp_path, capsys):
    path = write_config(tmp_path, "gen.yaml", shared_data_server.url)
    text = path.read_text().replace(
        "    xsec_pb: 2304.0\n", "    xsec_pb: 2304.0\n    generate: {process: signal, events: 10}\n"
    )
    path.write_text(text)
    assert main(["generate", "--config", str(path)]) == 1
    err = error_line(capsys)
    assert "samples.z.files[0]" in err and "is a URL" in err and shared_data_server.url in err, err
    assert not list(tmp_path.glob("*.root"))
