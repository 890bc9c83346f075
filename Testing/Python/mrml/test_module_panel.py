"""The panel's decisions, made without Qt (``mrml/module_panel.py``; the widget only applies them)."""

from __future__ import annotations

import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from DPOScoringLib.mrml import module_panel
from DPOScoringLib.mrml.module_panel import ASSESSMENT_COLUMNS

UI = Path(__file__).resolve().parents[3] / "DPOScoring" / "Resources" / "UI" / "DPOScoring.ui"


def test_every_button_it_enables_is_a_widget_of_the_panel():
    names = {w.get("name") for w in ET.parse(UI).iter("widget")}
    state = module_panel.enabled_buttons(True, True, False, True, True)
    assert set(state) <= names, set(state) - names


def test_buttons_follow_ct_candidates_and_a_running_process():
    idle_empty = module_panel.enabled_buttons(False, False, False, True, False)
    assert not any(idle_empty.values())
    ready = module_panel.enabled_buttons(True, False, False, True, False)
    assert ready["computeLobesButton"] and ready["detectButton"] and ready["recomputeLobesButton"]
    assert not ready["confirmButton"] and not ready["cancelButton"]
    busy = module_panel.enabled_buttons(True, True, True, True, True)
    assert busy["cancelButton"] and not busy["detectButton"] and not busy["computeLobesButton"]
    assert busy["confirmButton"] and busy["exportDicomButton"]
    lungmask = module_panel.enabled_buttons(True, False, False, False, False)
    assert lungmask["computeLobesButton"] and not lungmask["recomputeLobesButton"]  # no points to drag


def test_assessment_cells_hold_checkboxes_and_grades():
    saved = {"RUL": {"dendriform": True, "ild": {"ggo": 2, "overall": 0}}}
    rows = module_panel.assessment_cells(saved, ["RUL", "LLL"])
    assert len(rows) == 2 and all(len(row) == len(ASSESSMENT_COLUMNS) for row in rows)
    rul = dict(zip(ASSESSMENT_COLUMNS, rows[0]))
    assert rul["dendriform"] is True and rul["extent_over_half"] is False
    assert rul["ggo"] == "2" and rul["overall"] == "0" and rul["honeycombing"] == ""
    assert rows[1] == [False if name in ("dendriform", "extent_over_half") else "" for name in ASSESSMENT_COLUMNS]
    assert len(module_panel.ASSESSMENT_HEADERS) == len(ASSESSMENT_COLUMNS)


def test_terminate_ends_the_process_and_tolerates_one_already_gone():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        module_panel.terminate(process.pid)
        assert process.wait(timeout=20) == -signal.SIGTERM
    finally:
        process.kill()
    module_panel.terminate(process.pid)  # ended and reaped: no error
    module_panel.terminate(None)


def test_worker_output_and_program():
    assert module_panel.decode_output(b"[ 42%] lobes\n\xff") == "[ 42%] lobes\n\ufffd"
    assert Path(module_panel.worker_program()).name == "PythonSlicer"
    assert module_panel.KIND_LABELS["granuloma"] == "suspected granuloma"
    assert module_panel.KIND_LABELS["large_calcified"] == "large calcified"
