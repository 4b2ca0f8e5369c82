"""The fuzzing tier's harness: seeded Hypothesis settings, a time limit per input, and the tally.

Every input fed to an entry point ends in one of:

* a *clean error* — a :class:`~diffhep.errors.DiffhepError` whose message is one
  line, or, through ``diffhep.cli.main``, exit status 1 with stderr one
  ``error: ...`` line that is not "unexpected ... (this is a bug in diffhep)";
* a *correct result* — checked by the test against an oracle where one exists
  (pyhf, the undamaged file, Python's arithmetic);
* an allowed third outcome named by the test (``stricter than pyhf``, ``changed
  in an uncompressed basket``);

and never in a traceback (another exception type, or an "unexpected" line), a
hang (no result after :data:`TIME_LIMIT_S` seconds), a wrong result or a partial
output file (a file left in ``--output`` by a command that failed, or a
temporary ``.name.XXXX`` file). Any of these fails the test; all outcomes are
counted per entry point, written per process to ``<basetemp root>/fuzz-counts/``
and summed in the terminal summary (``tests/conftest.py``), with or without xdist.

Examples are drawn with ``derandomize=True`` (the same inputs in every run, in
CI too) and no example database; ``--fuzz-long`` multiplies every example
count by :data:`LONG_FACTOR`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import hypothesis
import pytest
from hypothesis import HealthCheck

from diffhep.cli import main
from diffhep.errors import DiffhepError

#: ``--fuzz-long`` multiplies every test's number of examples by this.
LONG_FACTOR = 50
#: An input with no outcome after this many seconds is a hang (the first call of a
#: process imports and compiles: about 3 s).
TIME_LIMIT_S = 30.0
#: The outcomes printed first, in this order (tracebacks, hangs, wrong results and
#: partial files must stay 0).
OUTCOMES = ("inputs", "clean errors", "correct results", "tracebacks", "hangs", "wrong results", "partial files")


class Hang(BaseException):
    """No outcome within the time limit (a BaseException: ``main`` must not turn it into an error line)."""


@contextlib.contextmanager
def time_limit(seconds: float = TIME_LIMIT_S) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread if the block runs longer than ``seconds``."""

    def on_alarm(signum: int, frame: object) -> None:
        raise Hang(f"no outcome after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def clean_line(err: str) -> bool:
    """Is ``err`` (a command's stderr) one ``error: ...`` line that does not report a bug?"""
    return (
        err.startswith("error: ")
        and err.count("\n") == 1
        and err.endswith("\n")
        and "bug in diffhep" not in err
        and not err.startswith("error: unexpected")
    )


class Case:
    """One input: its outcome is a clean error, or what :meth:`outcome` says (default: a correct result)."""

    def __init__(self) -> None:
        self.kind = "correct results"

    def outcome(self, kind: str) -> None:
        self.kind = kind


class Fuzz:
    """Settings and tally of one process's fuzz tests."""

    def __init__(self, multiplier: int) -> None:
        self.multiplier = multiplier
        self.counts: dict[str, Counter[str]] = {}

    def settings(self, examples: int) -> hypothesis.settings:
        """``examples`` inputs (times ``--fuzz-long``'s factor), the same ones in every run."""
        return hypothesis.settings(
            max_examples=examples * self.multiplier,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )

    def count(self, entry: str, kind: str) -> None:
        self.counts.setdefault(entry, Counter())[kind] += 1

    @contextlib.contextmanager
    def case(self, entry: str) -> Iterator[Case]:
        """Run one input through ``entry``; a DiffhepError is a clean error if it is one line."""
        case = Case()
        self.count(entry, "inputs")
        try:
            with time_limit():
                yield case
        except DiffhepError as err:
            if "\n" in str(err) or not str(err):
                self.count(entry, "tracebacks")
                raise AssertionError(f"not one line: {str(err)!r}") from err
            self.count(entry, "clean errors")
        except Hang:
            self.count(entry, "hangs")
            raise
        except AssertionError:
            self.count(entry, "wrong results")
            raise
        except BaseException:
            self.count(entry, "tracebacks")
            raise
        else:
            self.count(entry, case.kind)

    def cli(
        self, entry: str, argv: Sequence[str], *, output: Path | None = None, expect: str | None = None
    ) -> tuple[int, str]:
        """``diffhep ARGV`` in-process: (exit status, stdout); a failure is one clean line and leaves no file.

        ``output`` is the command's ``--output`` folder: after a failure it must hold
        nothing; after a success, no temporary file. ``expect``: the error line it must
        print (the library's error for the same input), if known.
        """
        self.count(entry, "inputs")
        out, err = io.StringIO(), io.StringIO()
        try:
            with time_limit(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = main(list(argv))
        except Hang:
            self.count(entry, "hangs")
            raise
        text = err.getvalue()
        if status == 0:
            kind = "correct results"
        elif status == 1 and clean_line(text):
            kind = "clean errors"
        else:
            self.count(entry, "tracebacks")
            raise AssertionError(f"diffhep {' '.join(argv)!r}: status {status}, stderr {text!r}")
        if expect is not None and text.split() != expect.split():  # the CLI collapses runs of spaces
            self.count(entry, "wrong results")
            raise AssertionError(f"diffhep {' '.join(argv)!r}: stderr {text!r}, expected {expect!r}")
        left = sorted(p.name for p in output.rglob("*")) if output is not None and output.exists() else []
        if (status != 0 and left) or any(name.startswith(".") for name in left):
            self.count(entry, "partial files")
            raise AssertionError(f"diffhep {' '.join(argv)!r}: status {status} left {left} in {output}")
        self.count(entry, kind)
        return status, out.getvalue()


def counts_folder(config: pytest.Config, basetemp: Path) -> Path:
    """``<basetemp root>/fuzz-counts``: an xdist worker's basetemp is ``<root>/popen-gwN``."""
    root = basetemp.parent if hasattr(config, "workerinput") else basetemp
    return root / "fuzz-counts"


@pytest.fixture(scope="session")
def fuzz(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    """The process's :class:`Fuzz`; its counts are written at the end of the session."""
    tally = Fuzz(LONG_FACTOR if request.config.getoption("--fuzz-long") else 1)
    yield tally
    folder = counts_folder(request.config, tmp_path_factory.getbasetemp())
    folder.mkdir(parents=True, exist_ok=True)
    worker = getattr(request.config, "workerinput", {}).get("workerid", "main")
    (folder / f"{worker}-{os.getpid()}.json").write_text(json.dumps(tally.counts, indent=1))
