"""Shared fixtures: the real ROOT files in ``../shared/data`` and small synthetic samples."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

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
