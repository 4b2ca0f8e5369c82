"""Shared fixtures: the real ROOT files in ``../shared/data`` and small synthetic samples."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Tests live in one folder per package (tests/engine/, tests/likelihood/, ...); their shared
# factories (jagged_factory, workspace_factory, toy_analysis) sit here, importable from all.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_server import Server, serve  # noqa: E402 - the folder above is on the path now

# One JAX persistent compilation cache per test session, shared by the xdist workers and the
# processes tests start (CLI subprocesses, notebook kernels), through the environment: the
# command line builds its analysis anew in every call, so `run` then `optimize` of one config,
# a resumed job or the same template in several tests compile the same programs again;
# with the cache they read them (tests/cli, the dimuon template and tests/optimize: 213 -> 174 s of
# CPU, 2 workers, 2026-12-07). The command line
# turns the cache on itself (diffhep.execute.compile_cache), here in the same folder. Programs
# compiled in under half a second are not stored. A cached executable is the one XLA would
# compile. It was off from 0863e31 to here: a worker segfaulted serialising an executable in
# test_template_ttbar; 30 minutes later (12a4562) the cause of that run's crashes was found
# to be the kernel's memory-map limit, which _release_compiled_programs below now guards.
# Dask worker *threads* must not read it (that aborted a process): the no_persistent_cache
# fixture, and the command line turns it off for them (compile_cache.suspend).
_OWN_CACHE = "DIFFHEP_TEST_JAX_CACHE" not in os.environ
if _OWN_CACHE:
    os.environ["DIFFHEP_TEST_JAX_CACHE"] = tempfile.mkdtemp(prefix="diffhep-test-jax-cache-")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ["DIFFHEP_TEST_JAX_CACHE"])
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("DIFFHEP_COMPILE_CACHE", os.environ["DIFFHEP_TEST_JAX_CACHE"])
# XLA compiles with its backend optimisations off in the tests (and the processes they start):
# the tests' arrays are small, so compilation, not execution, is what takes the time, and
# the first two flags halve it (measured on tests/select/test_select_joint.py: 40 s -> 23 s).
# The last two skip XLA's constant folding (it folded index tables, "Constant folding an
# instruction is taking > 1s") and its CPU fusion emitters: compile of the dimuon example's
# soft histograms 11.8 s -> 4.7 s, of its Z 17.1 s -> 4.7 s, of its gradient 19.7 s -> 5.3 s,
# of a hypotest 16 s -> 4.8 s; the whole suite 1072 s -> 717 s (2 workers, idle 2-core
# machine, 2026-12-07). The results are the same computations up to float rounding; they run
# somewhat slower, which no test times.
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    " --xla_cpu_use_fusion_emitters=false --xla_disable_hlo_passes=constant_folding",
)


#: Memory maps of a test process above which JAX's compiled programs are dropped (the kernel's limit,
#: ``vm.max_map_count``, is 65,530 by default).
MAX_MAPS = 30_000


def _memory_maps() -> int | None:
    try:
        with open("/proc/self/maps", "rb") as maps:
            return sum(1 for _ in maps)
    except OSError:  # not Linux: no count, drop the programs after every module
        return None


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after a test module once the process holds many memory maps.

    Every compiled XLA executable keeps memory maps (about 600 per hypotest of a new model);
    a test worker that compiled the whole suite reached 53,000 of the kernel's 65,530
    (``vm.max_map_count``), and XLA then aborted or segfaulted mid-compile (two fresh-clone
    CI runs, 2026-12-07, in the template tests). ``jax.clear_caches`` frees them. It is called
    only above ``MAX_MAPS``: the programs kept serve later modules (tests/select, tests/histogram
    and tests/jagged in one process: 2,242 compiles instead of 2,533, and 28,000 maps at the end).
    """
    yield
    maps = _memory_maps()
    if maps is None or maps > MAX_MAPS:
        import gc

        import jax

        jax.clear_caches()
        gc.collect()


@pytest.fixture
def no_persistent_cache():
    """No persistent compilation cache while Dask worker *threads* compile: with JAX 0.10.2,
    reading a cached executable of a step in a worker thread aborted the whole process."""
    import jax
    from jax._src import compilation_cache

    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
    yield
    jax.config.update("jax_enable_compilation_cache", enabled)
    compilation_cache.reset_cache()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _OWN_CACHE and not hasattr(config, "workerinput"):  # the controller made it: remove it
        shutil.rmtree(os.environ["DIFFHEP_TEST_JAX_CACHE"], ignore_errors=True)


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _missing(what: str) -> None:
    """Fail in CI (where the data must be present), skip elsewhere."""
    message = f"{what} not found (expected the real test files in ../shared/data)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the real HEP test files (``<repo>/../shared/data``)."""
    if not SHARED_DATA.is_dir():
        _missing(str(SHARED_DATA))
    return SHARED_DATA


@pytest.fixture(scope="module")
def shared_data_server(shared_data: Path) -> Iterator[Server]:
    """A local HTTP server (byte ranges) serving ``../shared/data`` on 127.0.0.1 for one test module.

    ``.url`` is ``http://127.0.0.1:PORT``; ``.requests`` the paths it was asked for.
    """
    with serve(shared_data) as server:
        yield server


@pytest.fixture(scope="session")
def data_file(shared_data: Path) -> Callable[[str], Path]:
    """Factory: ``data_file("uproot-HZZ.root")`` → path, failing in CI / skipping if missing."""

    def get(name: str) -> Path:
        path = shared_data / name
        if not path.is_file():
            _missing(str(path))
        return path

    return get


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small file per process (20k events each), generated once per session."""
    from diffhep.io import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("synthetic"), n_events=20_000, seed=7)


#: Test files (relative to tests/) that are end to end: ``make test-fast`` leaves them out.
SLOW = ("templates/", "docs/test_notebooks.py", "bench/", "cli/test_packaging.py", "execute/test_execute_dask.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        try:
            rel = Path(str(item.fspath)).resolve().relative_to(here).as_posix()
        except ValueError:
            continue
        if rel.startswith(SLOW):
            item.add_marker(pytest.mark.slow)


# The fuzzing tier (tests/fuzz/): --fuzz-long, and its counts summed over the processes
# (each writes <basetemp root>/fuzz-counts/<worker>-<pid>.json; see tests/fuzz/conftest.py).
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fuzz-long", action="store_true", help="fuzzing tier: 50 times more inputs per test")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    import json
    from collections import Counter

    basetemp = getattr(getattr(config, "_tmp_path_factory", None), "_basetemp", None)
    if basetemp is None or hasattr(config, "workerinput"):
        return
    totals: dict[str, Counter[str]] = {}
    for part in sorted((Path(basetemp) / "fuzz-counts").glob("*.json")):
        for entry, counts in json.loads(part.read_text()).items():
            totals.setdefault(entry, Counter()).update(counts)
    if not totals:
        return
    first = ("inputs", "clean errors", "correct results", "tracebacks", "hangs", "wrong results", "partial files")
    terminalreporter.section("fuzzing tier: outcomes per entry point")
    for entry, counts in sorted(totals.items()):
        rest = sorted(set(counts) - set(first))
        shown = ", ".join(f"{counts[kind]} {kind}" for kind in (*first, *rest) if kind in first or counts[kind])
        terminalreporter.write_line(f"{entry}: {shown}")
