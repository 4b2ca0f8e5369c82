"""``diffhep generate`` after a killed run: the killed run's temporary files go, nothing else does."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from diffhep.cli import main

# ``diffhep generate`` killed with SIGKILL while its ROOT file is half written.
KILLED = textwrap.dedent(
    """
    import os, signal, sys
    import diffhep.io.generate as gen
    blocks = gen._blocks
    def killed(*args):
        yield next(blocks(*args))
        os.kill(os.getpid(), signal.SIGKILL)
    gen._blocks = killed
    from diffhep.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)

CONFIG = """\
name: g
lumi_pb: 1.0
samples:
  signal: {role: signal, files: [data/signal.root], xsec_pb: 1.0, generate: {process: signal, events: 3000}}
parameters:
  x: {init: 1, bounds: [0, 2], slope: 1}
regions:
  sr: {observable: MET_pt, binning: {bins: 2, range: [0, 100]}, bandwidth: 0, select: MET_pt > x}
"""


def _killed(argv):
    proc = subprocess.run([sys.executable, "-c", KILLED, *argv], capture_output=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]


def test_generate_removes_what_a_killed_generate_left(tmp_path, capsys):
    out = tmp_path / "by_process"
    argv = ["generate", "--output", str(out), "--process", "signal", "--events", "3000"]
    _killed([*argv[:-1], "30000"])
    leftovers = [p.name for p in out.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".signal.root."), leftovers  # no signal.root
    (out / ".qcd.root.abcdefgh.root").write_text("another target's: kept")
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [".qcd.root.abcdefgh.root", "signal.root"]

    config = tmp_path / "cfg" / "config.yaml"
    config.parent.mkdir()
    config.write_text(CONFIG)
    _killed(["generate", "--config", str(config), "--events", "30000"])
    data = config.parent / "data"
    assert [p.name.startswith(".signal.root.") for p in data.iterdir()] == [True]
    assert main(["generate", "--config", str(config)]) == 0
    assert sorted(p.name for p in data.iterdir()) == ["diffhep-generated.json", "signal.root"]
    capsys.readouterr()
