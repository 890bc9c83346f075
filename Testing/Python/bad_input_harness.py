"""Runs ``dpo-score`` on a bad input and checks what a user must get (issue 12): exit code 2, one
line on standard error naming the problem, no traceback, nothing on standard output, and no
file created, changed or removed anywhere in the test's folder (inputs, --out, the working
folder) nor in the temporary folder.

``refused`` runs the command in this process (``cli.main``; an uncaught exception, i.e. a
traceback, fails the test); ``refused_subprocess`` runs the real entry point in a new process.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from DPOScoringLib.cli import main as cli

PROGRESS_LINE = re.compile(r"^\[\s*\d+%\] ")


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every file under ``folder`` with its size, mode and content time, and every folder with
    its mode (a folder's time changes when a write test creates and removes a file in it)."""
    state = {}
    for root, folders, files in os.walk(folder):
        for name in folders:
            state[str(Path(root, name).relative_to(folder))] = ("folder", Path(root, name).lstat().st_mode)
        for name in files:
            path = Path(root, name)
            info = path.lstat()
            state[str(path.relative_to(folder))] = (info.st_size, info.st_mode, info.st_mtime_ns)
    return state


def _changes(before: dict, after: dict) -> list[str]:
    return sorted(set(before.items()) ^ set(after.items()))


def _check(code: int, stdout: str, stderr: str, phrases, before, after, temp_before, temp_after) -> str:
    # progress lines ("[ 10%] loading the CT") may come first; the error itself must be one line
    lines = [line for line in stderr.strip().splitlines() if not PROGRESS_LINE.match(line)]
    assert code == 2, f"exit {code}, expected 2; stderr: {stderr}"
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {stderr}"
    for phrase in [phrases] if isinstance(phrases, str) else phrases:
        assert phrase in lines[0], f"{phrase!r} not in {lines[0]!r}"
    assert stdout == "", f"standard output not empty: {stdout[:200]}"
    assert not _changes(before, after), f"files changed by a refused command: {_changes(before, after)}"
    assert not _changes(temp_before, temp_after), f"temporary files left: {_changes(temp_before, temp_after)}"
    return lines[0]


def refused(sandbox: Path, argv: list, phrases, monkeypatch) -> str:
    """Run ``dpo-score argv`` in this process from ``sandbox`` and check the refusal."""
    temp = sandbox.parent / f"{sandbox.name}-tmp"
    temp.mkdir(exist_ok=True)
    monkeypatch.chdir(sandbox)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv("TMPDIR", str(temp))
    before, temp_before = snapshot(sandbox), snapshot(temp)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as stop:  # argparse refusals
            code = stop.code
    return _check(code, stdout.getvalue(), stderr.getvalue(), phrases, before, snapshot(sandbox), temp_before,
                  snapshot(temp))


def refused_subprocess(sandbox: Path, argv: list, phrases, timeout: float = 120) -> str:
    """The same check through the real entry point (``python -m DPOScoringLib``)."""
    temp = sandbox.parent / f"{sandbox.name}-tmp"
    temp.mkdir(exist_ok=True)
    before, temp_before = snapshot(sandbox), snapshot(temp)
    result = subprocess.run([sys.executable, "-m", "DPOScoringLib", *map(str, argv)], capture_output=True,
                            text=True, encoding="utf-8", cwd=sandbox, timeout=timeout, env={**os.environ,
                                                                                            "TMPDIR": str(temp)})
    return _check(result.returncode, result.stdout, result.stderr, phrases, before, snapshot(sandbox), temp_before,
                  snapshot(temp))
