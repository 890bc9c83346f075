"""The words a reader sees (banner, per-lobe rows, variants, chart data, progress lines), checked
against hand-written readings whose right answers are worked out here, not by the code."""

from __future__ import annotations

import io

import numpy as np
import pytest

from DPOScoringLib.audit.report import axis_letters, chart_data, gallery_image
from DPOScoringLib.common.progress import Progress, line_printer
from DPOScoringLib.rules.score_summary import (
    AUTOMATIC_ONLY,
    banner_text,
    closing_summary,
    lobe_rows,
    review_state,
    text_report,
    variant_rows,
)
from DPOScoringLib.rules.scoring import score_reading

from reading_builders import ild, nodules, reading_doc


def scored(doc: dict, reader: str | None = None) -> tuple[dict, dict]:
    if reader is not None:
        doc = {**doc, "reader": reader}
    from DPOScoringLib.rules.reading import parse_reading

    return score_reading(parse_reading(doc)), doc


def test_nothing_pending_without_a_reader_is_automatic_only_not_complete():
    scores, doc = scored(reading_doc(), reader="")
    assert review_state(scores, doc) == AUTOMATIC_ONLY
    assert "complete" not in banner_text(scores, doc)


def test_complete_only_with_a_reader_and_nothing_pending():
    scores, doc = scored(reading_doc({"RUL": 3, "LUL": 2}), reader="dr-7")
    assert review_state(scores, doc) == "complete, reviewed by dr-7"
    pending, doc2 = scored(reading_doc({"RUL": 3}, findings=nodules("LUL", 2, status="pending")), reader="dr-7")
    state = review_state(pending, doc2)
    assert state.startswith("PROVISIONAL") and "2 pending" in state and "complete" not in state
    unread, doc3 = scored(reading_doc(findings=nodules("LUL", 2, status="pending")), reader="")
    assert AUTOMATIC_ONLY in review_state(unread, doc3)


def test_ild_not_assessed_is_not_zero():
    scores, doc = scored(reading_doc({"RUL": 1}), reader="r")
    assert "ILD extent not assessed" in banner_text(scores, doc) and "CS not assessed" in banner_text(scores, doc)
    rows = {row[0].split()[0]: row for row in lobe_rows(scores, doc)}
    assert rows["RUL"][4] == rows["RUL"][5] == "not assessed"
    graded, doc2 = scored(reading_doc({"RUL": 1}, ild={code: ild() for code in
                                                       ("RUL", "RML", "RLL", "LUL", "LING", "LLL")}), reader="r")
    assert "ILD extent 0 |" in banner_text(graded, doc2)
    assert {row[5] for row in lobe_rows(graded, doc2)} == {"0"}


def test_extent_question_unanswered_reads_not_assessed():
    scores, doc = scored(reading_doc({"RUL": 5, "LUL": 1}), reader="r")  # RUL >= 5: characterised
    rows = {row[0].split()[0]: row for row in lobe_rows(scores, doc)}
    assert rows["RUL"][6] == "not assessed" and rows["RML"][6] == ""
    answered, doc2 = scored(reading_doc({"RUL": 5, "LUL": 1}, lobes={"RUL": {"extent_over_half": True}}), "r")
    assert {row[0].split()[0]: row for row in lobe_rows(answered, doc2)}["RUL"][6] == "yes (reader)"


def test_dendriform_lobe_shows_the_confirmed_nodules_it_leaves_out():
    # LLL: 5 confirmed nodular POs and a dendriform PO -> NNPOL 0, 5 left out; RUL 4 pending
    doc = reading_doc({"RUL": 3, "LLL": 5}, findings=[{"lobe": "LLL", "kind": "dendriform", "status": "confirmed"},
                                                     *nodules("RUL", 4, status="pending")])
    scores, doc = scored(doc, reader="r")
    rows = {row[0].split()[0]: row for row in lobe_rows(scores, doc)}
    assert rows["LLL"][1] == "0" and rows["LLL"][3] == "yes (5 nodular not counted)"
    bars = {bar["code"]: bar for bar in chart_data(scores, doc)["bars"]}
    assert (bars["LLL"]["counted"], bars["LLL"]["excluded"], bars["LLL"]["pending"]) == (0, 5, 0)
    assert (bars["RUL"]["counted"], bars["RUL"]["excluded"], bars["RUL"]["pending"]) == (3, 0, 4)
    ticks = [t["value"] for t in chart_data(scores, doc)["ticks"]]
    assert ticks[0] == 0 and ticks[-1] >= 7  # the axis reaches the tallest stack (3 + 4)


def test_variants_in_words_with_known_answers():
    # 6 + 6 nodular POs, right lung only: def1 default negative (not bilateral), total positive;
    # def2 default negative, lobe positive, each-lung negative
    scores, _ = scored(reading_doc({"RUL": 6, "RLL": 6}), reader="r")
    table = {(d, v.split(":")[0]): r for d, v, r in variant_rows(scores)}
    assert table == {("definition 1", "default"): "negative", ("definition 1", "total"): "positive",
                     ("definition 2", "default"): "negative", ("definition 2", "lobe"): "positive",
                     ("definition 2", "each-lung"): "negative"}


def test_text_report_uses_plain_words_not_code_names():
    scores, doc = scored(reading_doc({"RUL": 2}), reader="r")
    text = text_report(scores, doc)
    assert "def1=" not in text and "policy def1" not in text
    assert "nodular POs in a lobe with dendriform PO are not counted" in text
    summary = closing_summary(scores, doc, "out/case")
    assert "next:" in summary and "grade ILD per lobe" in summary and "out/case/report.html" in summary


def test_progress_lines_name_their_stage_and_keep_a_stage_last_word():
    stream = io.StringIO()
    progress = Progress(line_printer(stream=stream))
    detection = progress.sub(0.5, 0.8, stage="detection")
    detection.step(0.0, "thresholding inside the lungs")
    detection.step(0.5, "measuring structure 3")
    detection.step(1.0, "1 candidate found")
    progress.sub(0.8, 1.0, stage="report").step(0.0, "drawing")
    assert stream.getvalue().splitlines() == ["[ 50%] detection: thresholding inside the lungs",
                                              "[ 65%] detection: measuring structure 3",
                                              "[ 80%] detection: 1 candidate found",
                                              "[ 80%] report: drawing"]
    assert line_printer(quiet=True) is None


@pytest.mark.parametrize("direction,letters", [
    ((1, 0, 0), ("R", "L")), ((-1, 0, 0), ("L", "R")), ((0, 1, 0), ("A", "P")), ((0, 0, 1), ("I", "S")),
    ((0.1, 0.0, -0.99), ("S", "I")),
])
def test_orientation_letters_follow_the_lps_direction(direction, letters):
    assert axis_letters(np.array(direction, dtype=float)) == letters


@pytest.mark.parametrize("spacing", [(0.8, 0.8, 1.0), (0.5, 0.5, 2.0), (1.2, 1.2, 5.0)])
def test_gallery_scale_bar_is_ten_millimetres(spacing):
    from PIL import Image

    hu = np.full((20, 120, 120), -1000, dtype=np.int16)  # air: black in the bone window
    data = gallery_image(hu, spacing, np.array([10.0, 60.0, 60.0]), (0, 255, 0), 1, "c001")
    panel = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[:, :180]
    white = np.all(panel == 255, axis=2)

    def longest_run(row):
        best = run = 0
        for value in row:
            run = run + 1 if value else 0
            best = max(best, run)
        return best

    half = round(15.0 / spacing[0])  # the panel shows a 30 mm field: 2 * half + 1 voxels
    px_per_mm = 180 / ((2 * half + 1) * spacing[0])
    bar = max(longest_run(row) for row in white[-14:])
    assert abs(bar - 10.0 * px_per_mm) <= 2.0


def test_fissure_support_lists_the_least_supported_fissure_first():
    from DPOScoringLib.audit.report import fissure_support

    provenance = {"method": "fissures", "fissures": {
        "RO": {"name": "right oblique fissure", "confidence": 0.09},
        "LO": {"name": "left oblique fissure", "confidence": 0.64},
        "RH": {"name": "right horizontal fissure", "confidence": 0.0}}}
    assert fissure_support(provenance) == [("right horizontal fissure", "0%"), ("right oblique fissure", "9%"),
                                           ("left oblique fissure", "64%")]
    assert fissure_support({"method": "lungmask"}) == []
