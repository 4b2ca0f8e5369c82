"""``diffhep bench agc`` at a tiny size: the JSON (AGC metrics per measurement) and the Markdown agree.

Uses ``tests/configs/bench_tiny.yaml`` (one region, quick to compile) and a
Dask LocalCluster of two threads (``--dask-threads``): worker processes would
each compile the step again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffhep.cli import main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "bench_tiny.yaml"
EVENTS = 3000
MEASUREMENTS = [
    "hard_forward",
    "hard_forward_plain",
    "step_memory",
    "step_streaming",
    "step_streaming_cached",
    "step_dask",
]


def test_bench_agc_writes_consistent_json_and_markdown(tmp_path, capsys, monkeypatch, no_persistent_cache):
    """Also with a relative ``--workdir work/bench/agc-data`` and ``--output`` from a fresh folder (issue 17,
    item 0): the generated files and the report are found there."""
    pytest.importorskip("distributed")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "work" / "bench" / "agc"
    fits = iter([("memory", "auto: in memory"), ("streaming", "auto: streaming (estimated 9 GB, 1 GB available)")])
    # the 2nd size "does not fit"; patched where the bench looks it up (a patch of diffhep.execute.settings would
    # stay bound in diffhep.bench.agc, imported by the command under it, after this test)
    monkeypatch.setattr("diffhep.bench.agc.choose_mode", lambda *a: next(fits))
    argv = [
        "bench",
        "agc",
        "--config",
        str(CONFIG),
        "--events",
        "3e3",
        "2e3",
        "--chunk-size",
        "1000",
        "--repeat",
        "1",
        "--dask-threads",
        "--workdir",
        "work/bench/agc-data",
        "--output",
        "work/bench/agc",
        "--quiet",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads((out / "bench.json").read_text())
    for events in (EVENTS, 2000):
        assert (tmp_path / "work" / "bench" / "agc-data" / f"events_{events}" / "ttbar.root").is_file()
    assert report["settings"]["events"] == [EVENTS, 2000] and report["repeat"] == 1
    assert report["machine"]["cpu_count"] >= 1 and len(report["machine"]["load_average"]) == 3
    size, large = report["results"]
    assert size["events"] == EVENTS and size["skipped"] == {}
    # a size that does not fit in memory: the forward pass streams, the in-memory step is skipped with the reason
    assert [m["measurement"] for m in large["measurements"]] == [m for m in MEASUREMENTS if m != "step_memory"]
    assert large["measurements"][0]["executor"] == "streaming" and large["measurements"][0]["chunksize"] == 1000
    assert large["skipped"] == {"step_memory": "does not fit in memory (estimated 9 GB, 1 GB available)"}
    assert [m["measurement"] for m in size["measurements"]] == MEASUREMENTS
    for m in size["measurements"]:
        assert m["entries"] == EVENTS and m["walltime"] > 0 and len(m["walltimes"]) == 1
        assert m["event_rate_khz"] == pytest.approx(EVENTS / m["walltime"] / 1e3)
        assert m["event_rate_per_worker_khz"] == pytest.approx(m["event_rate_khz"] / m["num_workers"])
        assert m["peak_rss_bytes"] > 0 and m["bytesread"] >= 0 and m["device"]["platform"]
        assert m["first_call_walltime"] > 0  # the warm-up call: a step's compilation is in it
    by_name = {m["measurement"]: m for m in size["measurements"]}
    assert by_name["hard_forward"]["bytesread"] > 0 and by_name["hard_forward_plain"]["bytesread"] > 0
    assert by_name["step_streaming"]["chunksize"] == 1000 and by_name["step_streaming"]["chunks"] >= 3
    assert by_name["step_dask"]["num_workers"] == 2 and by_name["step_memory"]["load_walltime"] > 0
    plain = by_name["hard_forward_plain"]["event_rate_khz"]
    assert set(size["ratios_to_plain"]) == set(MEASUREMENTS) - {"hard_forward_plain"}
    for name, ratio in size["ratios_to_plain"].items():
        assert ratio == pytest.approx(by_name[name]["event_rate_khz"] / plain)
    table = (out / "bench.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith(f"| {EVENTS} |")]
    assert [r.split("|")[2].strip() for r in rows] == MEASUREMENTS
    step = next(r for r in rows if r.split("|")[2].strip() == "step_memory").split("|")
    assert float(step[7]) == pytest.approx(by_name["step_memory"]["first_call_walltime"], abs=0.006)  # "first call (s)"
    assert "- 2000 events: step_memory not measured: does not fit in memory" in table
    assert table in capsys.readouterr().out

    # --only: those measurements alone (the samples are reused), no ratios without the plain pass
    only = ["step_memory", "step_streaming_cached"]
    argv[argv.index("2e3")] = "3e3"
    monkeypatch.setattr("diffhep.bench.agc.choose_mode", lambda *a: ("memory", "auto: in memory"))
    assert main([*argv[: argv.index("--quiet")], "--only", *only, "--quiet"]) == 0
    again = json.loads((out / "bench.json").read_text())
    assert again["settings"]["only"] == only
    assert all([m["measurement"] for m in r["measurements"]] == only for r in again["results"])
    assert all(r["ratios_to_plain"] == {} for r in again["results"])
    assert all(row.endswith("| - |") for row in (out / "bench.md").read_text().splitlines() if row.startswith("| 3000"))
    from diffhep.bench.agc import MEASUREMENTS as IN_BENCH
    from diffhep.cli.bench import MEASUREMENTS as IN_CLI

    assert list(IN_BENCH) == list(IN_CLI) == MEASUREMENTS


def test_plain_baseline_does_not_depend_on_the_chunk_size(tmp_path):
    from diffhep.bench import agc as bench_agc
    from diffhep.config import load_config

    config = load_config(bench_agc.prepare_config(CONFIG, 2500, tmp_path)).data
    cuts = {k: float(p["init"]) for k, p in config["parameters"].items()}
    whole = bench_agc._plain(config, cuts, 10**9)[0]()
    chunked = bench_agc._plain(config, cuts, 700)[0]()
    assert whole.keys() == chunked.keys() and sum(h.sum() for h in whole.values()) > 0
    for key, h in whole.items():
        np.testing.assert_allclose(chunked[key], h, rtol=1e-12, atol=0)


def test_plain_baseline_weighs_as_the_template(tmp_path):
    """On the AGC template (``normalisation: events``: xsec x lumi / N, no genWeight) the plain baseline's
    histograms are diffhep's hard-cut histograms of every nominal sample (issue 14 item 3)."""
    from diffhep.bench import agc as bench_agc
    from diffhep.config import load_config
    from diffhep.engine.configured import ConfiguredAnalysis

    loaded = load_config(bench_agc.prepare_config(bench_agc.DEFAULT_CONFIG, 4000, tmp_path))
    config = loaded.data
    assert {s.get("normalisation") for s in config["samples"].values()} == {"events"}
    cuts = {k: float(p["init"]) for k, p in config["parameters"].items()}
    plain = bench_agc._plain(config, cuts, 1500)[0]()
    analysis = ConfiguredAnalysis.from_config(config, base=loaded.base_dir)
    analysis.load()
    hard = analysis.hard_histograms(cuts)
    assert sum(h.sum() for h in plain.values()) > 0
    for (region, name), h in plain.items():
        got = np.asarray(hard[region][name].counts)  # float32
        np.testing.assert_allclose(got, h, rtol=1e-6, atol=1e-6 * h.max(initial=1), err_msg=f"{region} {name}")


def test_bench_agc_bad_options_are_one_line(tmp_path, capsys):
    assert main(["bench", "agc", "--events", "lots", "--output", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --events 'lots'") and "\n" not in err
    assert main(["bench", "agc", "--scheduler", "nowhere", "--output", str(tmp_path)]) == 1
    assert "not a Dask scheduler address" in capsys.readouterr().err


def test_prepare_config_with_a_relative_folder_names_the_generated_files(tmp_path, monkeypatch):
    """Issue 17, item 0: the copy lives in ``folder``, so its paths must not be relative to the working directory."""
    from diffhep.bench import agc as bench_agc
    from diffhep.config import load_config

    monkeypatch.chdir(tmp_path)
    path = bench_agc.prepare_config(CONFIG, 500, Path("work") / "bench" / "agc-data" / "events_500")
    config = load_config(path)
    assert path.resolve().parent == tmp_path.resolve() / "work" / "bench" / "agc-data" / "events_500"
    for sample in config.resolved["samples"].values():
        for f in sample["files"]:
            assert Path(f).is_file() and Path(f).parent == path.resolve().parent, f
    assert sum(bench_agc._entries(f) for s in config.data["samples"].values() for f in s["files"]) == 500
