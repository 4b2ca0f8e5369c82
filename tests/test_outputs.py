"""Leftovers of interrupted atomic writes: recognised by their exact name, removed, nothing else touched."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from diffhep.outputs import is_temporary, remove_temporaries

# A write killed with SIGKILL inside its writer: the temporary file stays behind.
KILLED_WRITE = """
import os, signal, sys
from diffhep.outputs import atomic_write
def writer(tmp):
    tmp.write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
atomic_write(sys.argv[1], writer)
"""


def test_leftovers_of_killed_writes_are_removed_and_nothing_else(tmp_path):
    for name in ("results.json", "latest", "histograms.root"):
        proc = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(tmp_path / name)], check=False)
        assert proc.returncode == -9
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert [is_temporary(n) for n in leftovers] == ["histograms.root", "latest", "results.json"], leftovers
    assert not (tmp_path / "results.json").exists()

    # Names that only look alike, a folder of the form, and a file of the form in a subfolder stay.
    keep = [".bashrc", ".results.json.bak", ".results.json.ABCDEFGH.json", ".x.abcdefgh.json", "results.json",
            ".latest.abcdefg"]  # fmt: skip
    for name in keep:
        (tmp_path / name).write_text("mine")
    (tmp_path / ".report.md.abcdefgh.md").mkdir()
    (tmp_path / "sub").mkdir()
    fd, nested = tempfile.mkstemp(prefix=".a.json.", suffix=".json", dir=tmp_path / "sub")
    os.close(fd)

    removed = remove_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == leftovers
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, ".report.md.abcdefgh.md", "sub"])
    assert (tmp_path / "sub" / nested).exists()
    assert remove_temporaries(tmp_path / "absent") == []


def test_only_the_named_targets_when_asked(tmp_path):
    for name in ("signal.root", "dy.root"):
        fd, _ = tempfile.mkstemp(prefix=f".{name}.", suffix=".root", dir=tmp_path)
        os.close(fd)
    removed = remove_temporaries(tmp_path, names=["dy.root"])
    assert [is_temporary(p.name) for p in removed] == ["dy.root"]
    assert [is_temporary(p.name) for p in tmp_path.iterdir()] == ["signal.root"]
