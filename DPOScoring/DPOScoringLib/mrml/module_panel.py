"""What the module panel shows and may do, decided without Qt (the widget in ``DPOScoring.py``
only applies it): which buttons are enabled, what the per-lobe table holds, how the background
process is started and ended, whether PyTorch is there for lungmask. Headless-tested in
``Testing/Python/mrml/test_module_panel.py``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import sys

from ..rules.reading import KINDS

# the finding kinds as the panel's kind menu names them, in the reading format's order
KIND_LABELS = {kind: "suspected granuloma" if kind == "granuloma" else kind.replace("_", " ") for kind in KINDS}

RUN_BUTTONS = ("computeLobesButton", "detectButton")
REVIEW_BUTTONS = ("confirmButton", "rejectButton", "undoButton", "previousButton", "nextButton",
                  "addPointButton", "saveReviewButton")

# the per-lobe table: the reading's answer each column edits and the column's header
ASSESSMENT_TABLE = (("dendriform", "dendriform"), ("ggo", "GGO"), ("fine_reticulation", "fine ret."),
                    ("coarse_reticulation", "coarse ret."), ("honeycombing", "honeycomb"),
                    ("consolidation", "consolid."), ("overall", "overall"), ("extent_over_half", "> 50 %"))
ASSESSMENT_COLUMNS = tuple(name for name, _header in ASSESSMENT_TABLE)
ASSESSMENT_HEADERS = tuple(header for _name, header in ASSESSMENT_TABLE)
CHECKBOX_COLUMNS = ("dendriform", "extent_over_half")  # yes/no answers; the others are ILD grades 0-3
# The background process (``PythonSlicer -c WORKER_BOOT ARGUMENTS``) reports its own PID first:
# PythonSlicer is a launcher and the computing python-real is its child, which Cancel must end
# (killing the launcher alone leaves it running).
WORKER_BOOT = ("import os, sys; sys.stderr.write('[pid %d]\\n' % os.getpid()); sys.stderr.flush(); "
               "from DPOScoringLib.cli.main import main; sys.exit(main(sys.argv[1:]))")


def enabled_buttons(has_volume: bool, has_candidates: bool, busy: bool, fissure_method: bool,
                    can_export_dicom: bool) -> dict[str, bool]:
    """Each panel button (by its .ui name) and whether it is enabled: a run needs a CT and no run
    going, recomputing lobes from points only the fissure method has, review needs candidates."""
    state = {name: has_volume and not busy for name in RUN_BUTTONS}
    state["recomputeLobesButton"] = has_volume and not busy and fissure_method
    state.update(dict.fromkeys(REVIEW_BUTTONS, has_candidates))
    state["cancelButton"] = busy
    state["exportDicomButton"] = can_export_dicom
    return state


def assessment_cells(saved: dict, lobe_codes) -> list[list]:
    """The per-lobe table, one row a lobe and one cell a column of ``ASSESSMENT_COLUMNS``: True or
    False in a checkbox column, else the saved ILD grade as text ("" when not assessed)."""
    rows = []
    for code in lobe_codes:
        answers = saved.get(code, {})
        rows.append([bool(answers.get(name)) if name in CHECKBOX_COLUMNS
                     else ("" if answers.get("ild", {}).get(name) is None else str(answers["ild"][name]))
                     for name in ASSESSMENT_COLUMNS])
    return rows


def worker_program() -> str:
    """PythonSlicer (the launcher that sets up Slicer's Python environment) beside this Python."""
    return shutil.which("PythonSlicer") or os.path.join(os.path.dirname(sys.executable), "PythonSlicer")


def decode_output(raw) -> str:
    """A QByteArray (or bytes) of the worker's stderr as text."""
    return (raw.data() if hasattr(raw, "data") else bytes(raw)).decode("utf-8", "replace")


def worker_environment(module_dir: str, pythonpath: str) -> dict:
    """What the background process's environment adds: the module's folder first on PYTHONPATH
    (DPOScoringLib importable), unbuffered output (progress lines arrive as they are written)."""
    return {"PYTHONPATH": module_dir + os.pathsep + pythonpath, "PYTHONUNBUFFERED": "1"}


def parse_worker_line(line: str) -> tuple:
    """One stderr line of the background process: ("pid", PID, ""), ("progress", percent, text),
    ("message", None, line) or (None, None, "") for blank lines."""
    if line.startswith("[pid ") and line.rstrip().endswith("]") and line[5:].strip(" ]\n").isdigit():
        return "pid", int(line[5:].strip(" ]\n")), ""
    if line.startswith("[") and "%]" in line and line[1:line.index("%]")].strip().isdigit():
        return "progress", int(line[1:line.index("%]")]), line[line.index("%]") + 2:].strip()
    return ("message", None, line) if line.strip() else (None, None, "")


def terminate(pid) -> None:
    """Ends the worker's python-real (the launcher does not pass a kill on); gone already is fine."""
    if pid:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)


def torch_available() -> bool:
    """lungmask needs PyTorch, which the PyTorch extension installs (never this module)."""
    return importlib.util.find_spec("torch") is not None
