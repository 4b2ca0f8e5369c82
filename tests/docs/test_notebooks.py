"""Every notebook in ``notebooks/`` runs from top to bottom, and is stored clean.

Notebooks are executed with nbclient in a Jupyter kernel that runs *this*
interpreter (the virtual environment's, so the notebooks import the diffhep
under test), in the ``notebooks/`` folder, with a time limit per cell. New
notebooks are picked up automatically. A failure names the notebook and shows
the source of the failing cell and the error.

Stored notebooks must be valid nbformat and carry no outputs, so that their
diffs show only what people wrote.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

#: Seconds one cell may run (the notebooks are meant to take well under a minute in all).
CELL_TIMEOUT_S = 180

#: Python warnings as the kernel prints them on stderr ("...: DeprecationWarning: ...").
WARNING_LINE = re.compile(r"\b\w*Warning: ")

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _runs_this_python(argv0: str) -> bool:
    # jupyter_client replaces a bare "python", "python3" or "python3.X" by sys.executable.
    major, minor = sys.version_info[:2]
    if argv0 in {"python", f"python{major}", f"python{major}.{minor}"}:
        return True
    return Path(argv0).absolute() == Path(sys.executable).absolute()


@pytest.fixture(scope="session")
def kernel_manager_options(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Options for ``nbclient.NotebookClient`` selecting a kernel that runs ``sys.executable``.

    The ``python3`` kernel is used when it runs this interpreter (ipykernel's
    own kernelspec, installed into the virtual environment, does); otherwise a
    temporary kernelspec pointing to ``sys.executable`` is written to
    ``tmp_path`` and used instead.
    """
    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        spec = None
    if spec is not None and _runs_this_python(spec.argv[0]):
        return {"kernel_name": "python3"}
    kernels = tmp_path_factory.mktemp("jupyter") / "kernels"
    (kernels / "diffhep-test").mkdir(parents=True)
    (kernels / "diffhep-test" / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "diffhep tests",
                "language": "python",
            }
        )
    )
    return {
        "kernel_name": "diffhep-test",
        "kernel_spec_manager": KernelSpecManager(kernel_dirs=[str(kernels)]),
    }


def _strip_ansi(text: str) -> str:
    return ANSI_ESCAPE.sub("", text)


def _failure_report(path: Path, index: int, cell: Any, error: Exception) -> str:
    """Notebook name, failing cell (1-based, markdown counted), its source and the error."""
    timed_out = isinstance(error, CellTimeoutError)
    what = f"timed out after {CELL_TIMEOUT_S} s" if timed_out else "failed"
    lines = [f"{path.name}: cell {index + 1} {what}", "", cell.source.rstrip(), ""]
    errors = [out for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    if errors:
        lines.append(_strip_ansi("\n".join(errors[-1].get("traceback", []))))
    elif isinstance(error, CellExecutionError):
        lines.append(f"{error.ename}: {error.evalue}")
    else:
        lines.append(f"{type(error).__name__}: {_strip_ansi(str(error))}")
    return "\n".join(lines)


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    dirty = [
        i + 1
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} (1-based) are stored with outputs or execution counts; "
        "clear them before committing (JupyterLab: Edit > Clear Outputs of All Cells, "
        f"or `jupyter nbconvert --clear-output --inplace {path.name}`)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, kernel_manager_options: dict[str, Any]) -> None:
    nb = nbformat.read(path, as_version=4)
    options = dict(kernel_manager_options)
    spec_manager = options.pop("kernel_spec_manager", None)
    # First, in the executed copy only: prove that the kernel runs the interpreter under test.
    check = nbformat.v4.new_code_cell(
        "import sys\n"
        f"assert sys.prefix == {sys.prefix!r}, "
        f"f'the notebook kernel runs {{sys.executable}}, not {sys.executable}'"
    )
    nb.cells.insert(0, check)
    current: dict[str, Any] = {}

    def remember(cell: Any, cell_index: int) -> None:
        current.update(cell=cell, index=cell_index)

    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_execute=remember,
        **options,
    )
    if spec_manager is not None:
        client.km = client.kernel_manager_class(kernel_name=options["kernel_name"], kernel_spec_manager=spec_manager)
    failure = None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        if not current:
            raise
        if current["index"] == 0:
            failure = f"{path.name}: the kernel check added by this test failed\n\n"
            failure += _strip_ansi(str(error))
        else:  # number the cell as in the stored notebook, which has no check cell
            failure = _failure_report(path, current["index"] - 1, current["cell"], error)
    if failure is not None:  # outside the except block: no chained nbclient traceback
        pytest.fail(failure, pytrace=False)

    warnings = [
        (i, line)
        for i, cell in enumerate(nb.cells[1:], start=1)
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") == "stream" and out.get("name") == "stderr"
        for line in out.get("text", "").splitlines()
        if WARNING_LINE.search(line)
    ]
    assert not warnings, (
        f"{path.name} prints warnings (filter a known third-party warning by its message, "
        "with a comment saying why):\n" + "\n".join(f"  cell {i}: {line}" for i, line in warnings)
    )
