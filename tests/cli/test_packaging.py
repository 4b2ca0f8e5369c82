"""The wheel ships the template analyses: ``diffhep new`` works from a pip-installed diffhep.

One wheel is built per module (``pip wheel --no-build-isolation`` with the
venv's hatchling, a couple of seconds) and installed with ``pip install
--target`` into a temporary folder; the commands then run in a subprocess whose
``PYTHONPATH`` puts that folder before the editable install, from a working
directory outside the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # the repository: pyproject.toml, analyses/, src/
TEMPLATES = sorted(d.name for d in (ROOT / "analyses").iterdir() if (d / "config.yaml").is_file())


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """``(wheel, site)``: the wheel built from this checkout and the folder it is installed into."""
    pytest.importorskip("hatchling")
    tmp = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=300)  # fmt: skip
    (wheel,) = tmp.glob("diffhep-*.whl")
    site = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)  # fmt: skip
    return wheel, site


def _python(code: str, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_the_wheel_lists_the_templates(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "diffhep/templates/dimuon/config.yaml" in names
    assert "diffhep/config/templates.py" in names
    for template in TEMPLATES:
        assert {f"diffhep/templates/{template}/config.yaml", f"diffhep/templates/{template}/README.md"} <= names
    assert not [n for n in names if n.endswith(".root")]


def test_new_from_the_installed_wheel(installed, tmp_path):
    _, site = installed
    code = f"""
import json
from pathlib import Path
import diffhep, diffhep.cli
from diffhep.config.templates import template_names, template_root
site = Path({str(site)!r}).resolve()
assert Path(diffhep.__file__).resolve().is_relative_to(site), diffhep.__file__
assert template_root().resolve() == site / "diffhep" / "templates", template_root()
assert diffhep.cli.main(["new", "myana", "--from", "dimuon"]) == 0
names = template_names()
for name in names:
    assert diffhep.cli.main(["new", "copy_" + name, "--from", name, "--output", "all"]) == 0
print("NAMES=" + json.dumps(names))
"""
    out = _python(code, site, tmp_path).stdout
    names = json.loads(next(line for line in out.splitlines() if line.startswith("NAMES="))[len("NAMES=") :])
    assert names == TEMPLATES
    assert (tmp_path / "myana" / "config.yaml").is_file() and (tmp_path / "myana" / "README.md").is_file()
    assert "name: myana" in (tmp_path / "myana" / "config.yaml").read_text()
    # Generated data go to ./work/data as in a checkout, never into site-packages.
    assert "files: [../work/data/dimuon/signal.root]" in (tmp_path / "myana" / "config.yaml").read_text()
    for name in TEMPLATES:
        made = tmp_path / "all" / f"copy_{name}"
        assert (made / "config.yaml").is_file() and (made / "README.md").is_file(), name
