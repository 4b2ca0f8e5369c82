"""Atomic writers, the ROOT histogram file, the figures and the Markdown report."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import uproot
from matplotlib.figure import Figure

from diffhep.errors import ConfigError
from diffhep.histogram import Histogram
from diffhep.optimize.checkpoint import Checkpoint, latest_checkpoint, load_checkpoint, save_checkpoint
from diffhep.outputs import atomic_write, save_figure, write_bytes, write_json, write_root, write_text
from diffhep.report import (
    plot_cutflow,
    plot_history,
    plot_landscape,
    plot_region,
    render_report,
    write_histograms,
)


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_atomic_writers_write_whole_files_with_normal_permissions(tmp_path):
    write_text(tmp_path / "a.txt", "hello\n")
    write_bytes(tmp_path / "b.bin", b"\x00\x01")
    write_json(tmp_path / "sub" / "c.json", {"x": [1, 2]})
    assert (tmp_path / "a.txt").read_text() == "hello\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "sub" / "c.json").read_text() == '{\n  "x": [\n    1,\n    2\n  ]\n}\n'
    mode = stat.S_IMODE((tmp_path / "a.txt").stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # not mkstemp's 0600


def test_a_failing_write_leaves_no_partial_file_and_keeps_the_previous_one(tmp_path):
    path = tmp_path / "results.json"
    write_json(path, {"good": True})
    before = path.read_bytes()

    def half_then_fail(tmp):
        tmp.write_text('{"good": fal')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)
    with pytest.raises(TypeError):
        write_json(path, {"not json": object()})
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, lambda tmp: (tmp.write_text("{"), (_ for _ in ()).throw(KeyboardInterrupt()))[1])
    assert path.read_bytes() == before
    with pytest.raises(TypeError):
        write_root(tmp_path / "h.root", {"bad": object()})
    assert not (tmp_path / "h.root").exists()
    assert _leftovers(tmp_path) == []


def test_failing_figure_keeps_the_previous_png(tmp_path):
    import matplotlib.artist

    fig = Figure()
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    path = save_figure(tmp_path / "f.png", fig)
    before = path.read_bytes()
    assert before[:4] == b"\x89PNG"

    class Boom(matplotlib.artist.Artist):
        def draw(self, renderer):
            raise RuntimeError("drawing failed")

    ax.add_artist(Boom())
    with pytest.raises(RuntimeError, match="drawing failed"):
        save_figure(path, fig)
    assert path.read_bytes() == before and _leftovers(tmp_path) == []


def test_histograms_root_reads_back(tmp_path):
    edges = np.array([0.0, 1.0, 2.0, 4.0])
    h = {
        "sr": {
            "sig": Histogram(np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0, 1.5])),
            "bkg": Histogram(np.array([10.0, 5.0, 0.0]), np.array([2.0, 1.0, 0.0])),
        }
    }
    path = write_histograms(tmp_path / "histograms.root", {"": h, "initial": h}, {"sr": edges}, {"sr": "x [GeV]"})
    with uproot.open(path) as f:  # the AGC's names, {region}_{sample}{variation}
        th1 = f["sr_bkg"]
        assert th1.classname == "TH1D"
        np.testing.assert_array_equal(th1.values(), [10.0, 5.0, 0.0])
        np.testing.assert_array_equal(th1.variances(), [2.0, 1.0, 0.0])
        np.testing.assert_array_equal(th1.axis().edges(), edges)
        assert th1.axis().member("fTitle") == "x [GeV]"
        np.testing.assert_array_equal(f["initial/sr_sig"].values(), [1.0, 2.0, 3.0])


def test_histograms_root_refuses_two_histograms_of_one_name(tmp_path):
    h = Histogram(np.ones(2), np.ones(2))
    edges = {"a": np.arange(3.0), "a_b": np.arange(3.0)}
    with pytest.raises(ValueError, match="'a_b_c'"):
        write_histograms(tmp_path / "histograms.root", {"": {"a": {"b_c": h}, "a_b": {"c": h}}}, edges, {})
    assert not (tmp_path / "histograms.root").exists()


def test_landscape_in_one_dimension_and_none_for_a_random_search(tmp_path):
    scan = {
        "kind": "grid",
        "parameters": ["cut"],
        "axes": {"cut": [1.0, 2.0, 3.0]},
        "significance": [1.0, 2.0, None],
        "optimum": {"cut": 2.0},
        "best": {"cut": 2.0},
    }
    fig = plot_landscape(tmp_path / "landscape.png", scan, {"cut": "GeV"})
    assert isinstance(fig, Figure) and (tmp_path / "landscape.png").read_bytes()[:4] == b"\x89PNG"
    assert plot_landscape(tmp_path / "none.png", {**scan, "kind": "random"}, {"cut": "GeV"}) is None
    assert not (tmp_path / "none.png").exists()


def test_importing_the_report_leaves_the_matplotlib_backend_alone():
    code = textwrap.dedent("""
        import matplotlib
        before = matplotlib.get_backend()
        import diffhep.report
        import diffhep.report.plots
        print(before, matplotlib.get_backend(), "matplotlib.pyplot" in __import__("sys").modules)
    """)
    env = {**os.environ, "MPLBACKEND": "svg"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    before, after, _ = out.stdout.split()
    assert before.lower() == "svg" and after == before, out.stdout


def test_every_plot_returns_its_figure_and_writes_the_png_only_when_given_a_path(tmp_path):
    edges = np.array([0.0, 1.0, 2.0, 4.0])
    before = {"sig": np.array([1.0, 2.0, 1.0]), "bkg": np.array([10.0, 5.0, 2.0])}
    after = {"sig": np.array([1.0, 1.5, 0.5]), "bkg": np.array([3.0, 1.0, 0.5])}
    flow = {
        s: [{"step": "all", "soft": 10.0, "hard": 10.0}, {"step": "pt", "soft": 4.0, "hard": 3.0}]
        for s in ("sig", "bkg")
    }
    scan2 = {
        "kind": "grid",
        "parameters": ["a", "b"],
        "axes": {"a": [1.0, 2.0], "b": [0.0, 1.0, 2.0]},
        "significance": [1.0, 2.0, 1.5, None, 2.5, 2.0],
        "optimum": {"a": 2.0, "b": 1.0},
        "best": {"a": 2.0, "b": 1.0},
    }
    history = [{"step": i, "objective": -float(i), "a": 1.0 + i, "b": 2.0, "slope_scale": 1.0 + i} for i in range(3)]
    units = {"a": "GeV", "b": ""}
    draws = {
        "history": lambda p: plot_history(p, history, units),
        "region": lambda p: plot_region(
            p, "sr", "x [GeV]", edges, before, after, signal=["sig"], z_before=1.0, z_after=2.0
        ),
        "region_one_set_of_cuts": lambda p: plot_region(
            p, "sr", "x [GeV]", edges, None, after, signal=["sig"], z_after=2.0
        ),
        "cutflow": lambda p: plot_cutflow(p, flow, flow),
        "cutflow_one_set_of_cuts": lambda p: plot_cutflow(p, None, flow),
        "landscape": lambda p: plot_landscape(p, scan2, units),
    }
    for name, draw in draws.items():
        fig = draw(tmp_path / f"{name}.png")
        assert isinstance(fig, Figure), name
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert isinstance(draw(None), Figure), name
    assert len(plot_region(None, "sr", "x", edges, before, after, signal=["sig"], z_before=1.0, z_after=2.0).axes) == 2
    assert len(plot_region(None, "sr", "x", edges, None, after, signal=["sig"], z_after=2.0).axes) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.png" for n in draws)


def test_region_plot_with_data_has_points_and_a_ratio_panel():
    """Observed counts: points with Poisson intervals in each panel and data / MC below (issue 14 item 9)."""
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    counts = {"bkg": np.array([10.0, 8.0, 0.0]), "sig": np.array([0.0, 2.0, 0.0])}
    data = np.array([12.0, 5.0, 1.0])
    fig = plot_region(None, "sr", "x", edges, None, counts, signal=["sig"], z_after=1.0, data_after=data)
    main, ratio = fig.axes
    assert "data" in [t.get_text() for t in main.get_legend().get_texts()]
    assert ratio.get_ylabel() == "data / MC"
    (points,) = [c for c in ratio.containers]  # the errorbar of the bins with MC (the empty third left out)
    x, y = points.lines[0].get_data()
    np.testing.assert_allclose(x, [0.5, 1.5])
    np.testing.assert_allclose(y, [12.0 / 10.0, 5.0 / 10.0])
    both = plot_region(None, "sr", "x", edges, counts, counts, signal=["sig"], z_before=1.0, z_after=1.0,
                       data_before=None, data_after=data, data_label="pseudodata")  # fmt: skip
    assert len(both.axes) == 4 and both.axes[-1].get_ylabel() == "pseudodata / MC"


def test_report_links_every_file_and_tabulates_cuts():
    results = {
        "analysis": "demo",
        "stop_reason": "completed all 5 steps",
        "steps": 5,
        "seed": 1,
        "settings": {"name": "adam"},
        "config_hash": "abc",
        "resumed_from": 2,
        "parameters": {"pt_min": {"unit": "GeV", "low": 10.0, "high": 80.0}},
        "initial": {"pt_min": 30.0},
        "final": {"pt_min": 41.5},
        "significance": {
            "soft": {"before": 1.0, "after": 2.0, "slope_scale": 4.0},
            "hard_pyhf": {"before": 1.1, "after": None},
            "pyhf_hypotest": {"before": 1.05, "after": 2.5},
            "about": {"hard_pyhf": "pyhf's likelihood at the better fit", "pyhf_hypotest": "plain pyhf"},
        },
        "mc_statistics": {
            "before": {"threshold": 10.0, "emptiest": dict(FEW_BIN, mc_events=12.0), "few": []},
            "after": {"threshold": 10.0, "emptiest": FEW_BIN, "few": [FEW_BIN]},
        },
        "scan": None,
        "versions": {"diffhep": "0.1.0"},
    }
    files = {"history": "history.png", "numbers": "results.json"}
    text = render_report(results, files)
    assert "| `pt_min` | GeV | [10, 80] | 30 | 41.5 |" in text
    assert "![history](history.png)" in text and "[results.json](results.json)" in text
    assert "resumed from step 2" in text and "n/a" in text
    assert "| hard cuts, pyhf Z0 | 1.1 | n/a |" in text
    assert "| hard cuts, plain `pyhf.infer.hypotest` Z0 | 1.05 | 2.5 |" in text
    assert "- hard cuts, pyhf Z0: pyhf's likelihood at the better fit." in text
    assert "- plain `pyhf.infer.hypotest`: plain pyhf." in text
    assert "- initial cuts: background MC events in the emptiest bin of the selection: 12 (`sr` bin 3" in text
    assert "- optimised cuts: background MC events in the emptiest bin of the selection: 0.5 (`sr` bin 3" in text
    assert "| `sr` bin 3 [130, 140) | 0.5 | 333 | 5 |" in text


#: A bin of ``mc_statistics`` (:func:`diffhep.workflow.job.mc_statistics`).
FEW_BIN = {"region": "sr", "bin": 3, "low": 130.0, "high": 140.0, "background": 333.0, "mc_events": 0.5, "signal": 5.0}


def test_checkpoint_round_trip_restores_the_optax_state(tmp_path):
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(optax.cosine_decay_schedule(0.1, 10)))
    u = {"a": jnp.asarray(0.3), "b": jnp.asarray(-1.0)}
    state = opt.init(u)
    for _ in range(3):
        updates, state = opt.update({"a": jnp.asarray(0.2), "b": jnp.asarray(-0.7)}, state, u)
        u = optax.apply_updates(u, updates)
    save_checkpoint(tmp_path, Checkpoint(3, u, state, [{"step": 0, "objective": 1.5}], 7, "adam"))
    path = latest_checkpoint(tmp_path)
    assert path.name == "step_000003.npz" and (tmp_path / "latest").read_text() == "step_000003.npz\n"
    back = load_checkpoint(path, ["a", "b"], opt.init(u), "adam")
    assert back.step == 3 and back.seed == 7 and back.history == [{"step": 0, "objective": 1.5}]
    assert jax_tree_equal(state, back.opt_state) and jax_tree_equal(u, back.u)
    # an analysis lists its cuts in its own order; the step returns them sorted
    assert jax_tree_equal(u, load_checkpoint(path, ["b", "a"], opt.init(u), "adam").u)
    with pytest.raises(ConfigError, match="is for cuts"):
        load_checkpoint(path, ["a", "c"], opt.init(u), "adam")
    with pytest.raises(ConfigError, match="written by optimiser 'adam', not 'sgd'"):
        load_checkpoint(path, ["a", "b"], opt.init(u), "sgd")
    with pytest.raises(ConfigError, match="does not match"):
        load_checkpoint(path, ["a", "b"], optax.sgd(0.1).init(u), "adam")


def jax_tree_equal(a, b) -> bool:
    return jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b) and all(
        np.array_equal(x, y) and np.asarray(x).dtype == np.asarray(y).dtype
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
    )


def test_network_shapes_are_unit_area_before_and_after(tmp_path):
    """``network_<region>.png``: each sample's distribution at unit area, before dashed and after solid."""
    from diffhep.report import plot_shapes

    edges = np.array([0.0, 0.5, 1.0])
    before = {"sig": np.array([1.0, 1.0]), "bkg": np.array([3.0, 1.0]), "empty": np.zeros(2)}
    after = {"sig": np.array([0.5, 3.5]), "bkg": np.array([6.0, 2.0]), "empty": np.zeros(2)}
    fig = plot_shapes(tmp_path / "network_sr.png", "sr", "network output", edges, before, after)
    assert (tmp_path / "network_sr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["sig (before)", "sig (after)", "bkg (before)", "bkg (after)"]  # no sample without events
    handles, names = fig.axes[0].get_legend_handles_labels()  # StepPatch artists, one per sample and time
    steps = {name: h for h, name in zip(handles, names, strict=True)}
    np.testing.assert_allclose(steps["sig (after)"].get_data().values, [0.125, 0.875])
    np.testing.assert_allclose(steps["bkg (before)"].get_data().values, [0.75, 0.25])
    assert steps["sig (after)"].get_linestyle() == "-" and steps["bkg (before)"].get_linestyle() == "--"
