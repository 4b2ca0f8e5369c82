"""Shared fixtures: the real ROOT files in ``../shared/data`` and small synthetic samples."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

# Tests live in one folder per package (tests/engine/, tests/likelihood/, ...); their shared
# factories (jagged_factory, workspace_factory, toy_analysis) sit here, importable from all.
sys.path.insert(0, str(Path(__file__).resolve().parent))

# One JAX persistent compilation cache per test session, shared by the xdist workers and
# by the processes tests start (CLI subprocesses, notebook kernels, Dask workers) through
# the environment: many tests compile the same programs (`run` then `optimize` of one
# config, a resumed job, the same model in several tests), and XLA compiles of fits take
# seconds each on CPU. Programs that compile in under a second are not stored. It only
# saves time: a cached executable is the one XLA would have compiled.
_OWN_CACHE = "DIFFHEP_TEST_JAX_CACHE" not in os.environ
if _OWN_CACHE:
    os.environ["DIFFHEP_TEST_JAX_CACHE"] = tempfile.mkdtemp(prefix="diffhep-test-jax-cache-")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ["DIFFHEP_TEST_JAX_CACHE"])
# XLA compiles with its backend optimisations off in the tests (and the processes they start):
# the tests' arrays are small, so compilation, not execution, is what takes the time, and
# these flags halve it (measured on tests/select/test_select_joint.py: 40 s -> 23 s). The
# results are the same computations; they run somewhat slower, which no test times.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")


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
