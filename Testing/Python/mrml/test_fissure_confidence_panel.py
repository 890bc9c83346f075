"""The panel's per-fissure confidence (issue 10 point 1: "carried into ... the Slicer panel, so the
reader knows which fissure to check"), built headless in ``mrml_fissure_confidence``. The truth is
the lobe result of the real fissure method on the phantom (``LobeResult.fissure_confidence()`` and
each fit's source), not the text builder."""

from __future__ import annotations

import json

import pytest

from DPOScoringLib.mrml import mrml_fissure_confidence as panel


class Node:
    """Stands for a vtkMRMLSegmentationNode's attribute store (Get/SetAttribute); the MRML node
    itself is used in test_slicer_module_flow.py."""

    def __init__(self):
        self.attributes = {}

    def SetAttribute(self, name, value):
        self.attributes[name] = value

    def GetAttribute(self, name):
        return self.attributes.get(name)


def test_the_text_names_each_fissure_with_its_supported_share_and_what_to_check(phantom_1mm):
    result = phantom_1mm.lobe_result
    document = json.loads(json.dumps(result.provenance_document()))  # as the CLI writes and the module reads
    confidence = result.fissure_confidence()
    assert set(confidence) == {"RO", "RH", "LO", "LG"}
    rows = panel.confidence_rows(document)
    assert [row[0] for row in rows] == ["right oblique fissure", "right horizontal fissure", "left oblique fissure",
                                        "lingular boundary"]
    text = panel.confidence_text(document)
    for (name, share, surface, check), code in zip(rows, ("RO", "RH", "LO", "LG")):
        item = result.provenance["fissures"][code]
        assert share == f"{round(100 * confidence[code])}%"
        kept = item["source"].startswith("template")
        assert surface == ("template kept" if kept else "fitted to the image")
        assert check == ("check: template kept" if kept else "check: low support" if confidence[code] < 0.25 else "")
        assert f"{name}: {share}" in text


def test_moved_fissures_are_marked_and_the_mark_is_kept_on_the_node():
    document = {"schema": panel.PROVENANCE_SCHEMA, "method": "fissures", "warnings": [],
                "provenance": {"fissures": {
                    "RO": {"confidence": 0.09, "source": "template (too little evidence)"},
                    "RH": {"confidence": 0.12, "source": "fitted to image evidence"},
                    "LO": {"confidence": 0.61, "source": "fitted to image evidence"},
                    "LG": {"confidence": 0.40, "source": "fitted to image evidence"}}}}
    node = Node()
    panel.store_provenance(node, document)
    panel.mark_moved(node, ["LO"])
    panel.mark_moved(node, ["RO"])
    rows = {row[0]: row for row in panel.confidence_rows(panel.stored_provenance(node))}
    assert rows["right oblique fissure"][3] == "moved by the reader (was template kept)"
    assert rows["right horizontal fissure"][3] == "check: low support"
    assert rows["left oblique fissure"][3] == "moved by the reader"
    assert rows["lingular boundary"][3] == ""
    assert panel.stored_provenance(node)["moved_by_reader"] == ["RO", "LO"]


def test_methods_without_fitted_fissures_say_so():
    assert panel.confidence_text(None) == ""
    lungmask = {"schema": panel.PROVENANCE_SCHEMA, "method": "lungmask", "provenance": {}, "warnings": []}
    assert "no fissure confidence" in panel.confidence_text(lungmask)
    given = {"schema": panel.PROVENANCE_SCHEMA, "method": "fissures", "provenance": {"points": "given"}}
    assert "points given" in panel.confidence_text(given)
    node = Node()
    node.SetAttribute(panel.PROVENANCE_ATTRIBUTE, "{not json")
    assert panel.stored_provenance(node) is None


def test_a_file_of_another_schema_is_refused_in_one_line(tmp_path):
    from DPOScoringLib.common.errors import DPOInputError

    path = tmp_path / "provenance.json"
    path.write_text(json.dumps({"schema": "other/1"}))
    with pytest.raises(DPOInputError, match="schema"):
        panel.load_provenance(path)


def test_the_panel_uses_the_core_names_the_lobes_command_writes_with():
    """One home: the fissures, their names, the low-support share and the provenance schema the
    panel reads are the ones the lobes command and the fissure fit use."""
    from DPOScoringLib.lobes import fissure_fit, lobe_pipeline
    from DPOScoringLib.lobes.fissures import FISSURE_NAMES, FISSURES

    assert panel.FISSURES is FISSURES and panel.FISSURE_NAMES is FISSURE_NAMES
    assert panel.LOW_CONFIDENCE == fissure_fit.LOW_CONFIDENCE
    assert panel.PROVENANCE_SCHEMA == lobe_pipeline.PROVENANCE_SCHEMA


def test_lobes_refuses_an_existing_provenance_file_before_any_work(tmp_path, capsys):
    from DPOScoringLib.cli.main import main

    existing = tmp_path / "provenance.json"
    existing.write_text("{}")
    code = main(["lobes", str(tmp_path / "absent-ct.nrrd"), "--out", str(tmp_path / "lobes.seg.nrrd"),
                 "--provenance-out", str(existing)])
    message = capsys.readouterr().err.strip()
    assert code == 2 and str(existing) in message and "already exists" in message
    assert len(message.splitlines()) == 1 and "absent-ct" not in message  # refused before the CT is read
    assert existing.read_text() == "{}" and not (tmp_path / "lobes.seg.nrrd").exists()
