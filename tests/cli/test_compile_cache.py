"""The command line's persistent compilation cache (:mod:`diffhep.execute.compile_cache`).

The second ``diffhep run`` of an analysis reads its compiled programs from the
cache folder instead of compiling them, and gives the same numbers. Both runs are
subprocesses with a cache folder of their own (not the test session's, ``tests/conftest.py``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from diffhep.cli import main
from diffhep.execute import compile_cache
from diffhep.execute.compile_cache import ENV, default_folder, resolve

CONFIG = """\
name: cached
lumi_pb: 10000.0
samples:
  signal: {role: signal, files: [signal.root], xsec_pb: 0.5, generate: {process: signal, events: 300}}
  dy: {role: background, files: [dy.root], xsec_pb: 60.0, generate: {process: dy, events: 600, seed: 3}}
parameters:
  muon_pt_min: {init: 20, bounds: [5, 60], slope: 0.5}
objects:
  muons: {collection: Muon, cuts: pt > muon_pt_min, order: pt}
regions:
  sr:
    select: count(muons) >= 2
    observable: pair_mass(muons)
    binning: {bins: 6, range: [60, 140]}
    bandwidth: 2
measurement: {poi: mu}
objective: {name: asimov_significance}
"""

LINE = re.compile(r"compile cache (?P<folder>.+): (?P<read>\d+) programs read, (?P<compiled>\d+) compiled")


def test_folder_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve() == (tmp_path / "xdg" / "diffhep" / "jax", False) and default_folder() == resolve()[0]
    monkeypatch.setenv(ENV, str(tmp_path / "env"))
    assert resolve() == (tmp_path / "env", True)
    assert resolve(str(tmp_path / "flag")) == (tmp_path / "flag", True)  # the flag before the environment
    assert resolve(None, True) == (None, True)
    for off in ("off", "OFF", "0", ""):
        monkeypatch.setenv(ENV, off)
        assert resolve() == (None, True)


def test_bad_folder_and_both_flags_are_one_line_errors(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["run", "missing.yaml", "--compile-cache", str(blocker / "jax")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: compile cache {blocker / 'jax'}: cannot use it"), err
    assert main(["run", "missing.yaml", "--compile-cache", str(tmp_path), "--no-compile-cache"]) == 1
    assert capsys.readouterr().err.strip() == "error: --compile-cache and --no-compile-cache: choose one"


def test_an_unusable_default_folder_only_turns_the_cache_off(monkeypatch, tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    use = compile_cache.enable(default_folder(), explicit=False)
    try:
        assert use.folder is None and use.notes and "compile cache off" in use.notes[0]
        assert use.line() == "compile cache: off"
        import jax

        assert not jax.config.jax_enable_compilation_cache
    finally:
        folder, explicit = resolve()
        compile_cache.enable(folder, explicit=explicit)  # as the session had it (tests/conftest.py)


#: ``diffhep run`` in a process of its own that stores every program it compiles: this config's programs compile
#: in less than MIN_COMPILE_S on an idle machine (the value-only objective, feedde6), so with the threshold nothing
#: would be stored; what is stored and read does not depend on the threshold.
DRIVER = (
    "import sys; import diffhep.execute.compile_cache as c; c.MIN_COMPILE_S = 0.0; "
    "from diffhep.cli import main; sys.exit(main(sys.argv[1:]))"
)


def _run(config: Path, output: Path, *flags: str) -> tuple[dict, re.Match]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, "run", str(config), "--output", str(output), *flags],
        capture_output=True, text=True, env=env, check=False, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = LINE.search(proc.stderr)
    assert match, proc.stderr[-2000:]
    return json.loads((output / "results.json").read_text()), match


@pytest.mark.slow
def test_second_run_reads_the_compiled_programs_and_gives_the_same_numbers(tmp_path):
    config = tmp_path / "cached.yaml"
    config.write_text(CONFIG)
    assert main(["generate", "--config", str(config)]) == 0
    cache = tmp_path / "jax-cache"
    first, first_line = _run(config, tmp_path / "first", "--compile-cache", str(cache))
    assert Path(first_line["folder"]) == cache and int(first_line["read"]) == 0 and int(first_line["compiled"]) > 0
    stored = sorted(p.name for p in cache.iterdir())
    assert stored  # every program it compiled
    second, line = _run(config, tmp_path / "second", "--compile-cache", str(cache))
    # every program stored by the first run is read, not compiled
    assert int(line["read"]) >= len([s for s in stored if not s.endswith("-atime")]) > 0
    stored = sorted(p.name for p in cache.iterdir())
    for key in ("significance", "yields", "cutflow"):
        assert second[key] == first[key], key
