"""The dpo-reading/1 format: the issue's minimal form is accepted, every bad field is named."""

from __future__ import annotations

import json

import pytest

from DPOScoringLib.common.errors import DPOInputError
from DPOScoringLib.rules.reading import load_reading, parse_reading

MINIMAL = {
    "schema": "dpo-reading/1",
    "findings": [{"lobe": "RUL", "kind": "nodular", "status": "confirmed", "zone": "cortical"}],
    "lobes": {"LLL": {"dendriform": True,
                      "ild": {"ggo": 1, "fine_reticulation": 2, "coarse_reticulation": 0,
                              "honeycombing": 0, "consolidation": 0, "overall": 2}}},
}


def test_minimal_form_from_the_issue_is_accepted():
    r = parse_reading(MINIMAL)
    assert r.findings[0].lobe == "RUL" and r.findings[0].zone == "cortical"
    assert r.lobe("LLL").dendriform and r.lobe("LLL").ild.overall == 2
    assert r.lobe("RML").dendriform is False and r.lobe("RML").ild.overall is None


def _with(path, value):
    doc = json.loads(json.dumps(MINIMAL))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


@pytest.mark.parametrize("path,value,named,phrase", [
    (("schema",), "dpo-reading/2", "schema", "not supported"),
    (("findings", 0, "lobe"), "RXL", "findings[0].lobe", "'RXL' is not one of"),
    (("findings", 0, "kind"), "nodule", "findings[0].kind", "not one of"),
    (("findings", 0, "status"), "maybe", "findings[0].status", "not one of"),
    (("findings", 0, "zone"), "hilar", "findings[0].zone", "not one of"),
    (("findings", 0, "short_axis_mm"), -1, "findings[0].short_axis_mm", "negative"),
    (("findings", 0, "lps"), [1, 2], "findings[0].lps", "three numbers"),
    (("findings", 0, "lung"), "left", "findings[0].lung", "contradicts lobe RUL"),
    (("findings", 0, "colour"), "red", "findings[0].colour", "unknown field"),
    (("lobes", "LLL", "ild", "ggo"), -1, "lobes.LLL.ild.ggo", "integer score 0-3"),
    (("lobes", "LLL", "ild", "ggo"), 4, "lobes.LLL.ild.ggo", "integer score 0-3"),
    (("lobes", "LLL", "ild", "ggo"), 1.5, "lobes.LLL.ild.ggo", "integer score 0-3"),
    (("lobes", "LLL", "ild", "ggo"), True, "lobes.LLL.ild.ggo", "integer score 0-3"),
    (("lobes", "LLL", "ild", "overall"), "2", "lobes.LLL.ild.overall", "integer score 0-3"),
    (("lobes", "LLL", "dendriform"), "yes", "lobes.LLL.dendriform", "true or false"),
    (("lobes", "LLL", "dendriforme"), True, "lobes.LLL.dendriforme", "unknown field"),
    (("lobes", "LUL2"), {}, "lobes.LUL2", "unknown lobe code"),
    (("lobes", "LLL", "extent_fraction_suggested"), 1.5, "lobes.LLL.extent_fraction_suggested", "0-1"),
    (("findings",), {}, "findings", "must be a list"),
])
def test_invalid_field_is_named(path, value, named, phrase):
    with pytest.raises(DPOInputError) as caught:
        parse_reading(_with(path, value))
    assert caught.value.where == named
    assert phrase in caught.value.problem


def test_missing_required_fields_are_named():
    with pytest.raises(DPOInputError, match=r"^findings\[0\]\.status: is required"):
        parse_reading({"schema": "dpo-reading/1", "findings": [{"lobe": "RUL", "kind": "nodular"}]})
    with pytest.raises(DPOInputError, match="^schema: is required"):
        parse_reading({"findings": []})


def test_confirmed_finding_must_have_a_lobe_but_pending_may_be_unassigned():
    pending = {"schema": "dpo-reading/1",
               "findings": [{"lobe": "unassigned", "kind": "nodular", "status": "pending"}]}
    assert parse_reading(pending).findings[0].lobe == "unassigned"
    pending["findings"][0]["status"] = "confirmed"
    with pytest.raises(DPOInputError, match=r"findings\[0\]\.lobe: a confirmed finding"):
        parse_reading(pending)


def test_extension_keys_are_carried():
    doc = dict(MINIMAL, x_site="A")
    doc["findings"] = [dict(MINIMAL["findings"][0], x_review_seconds=3)]
    r = parse_reading(doc)
    assert r.meta["x_site"] == "A" and r.findings[0].extra["x_review_seconds"] == 3


def test_unreadable_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(DPOInputError, match="no such reading file"):
        load_reading(tmp_path / "absent.json")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"schema": "dpo-reading/1", "findings": [', encoding="utf-8")
    with pytest.raises(DPOInputError, match=r"corrupt.json: is not valid JSON: line 1"):
        load_reading(corrupt)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(DPOInputError, match="not a text reading file"):
        load_reading(binary)
    with pytest.raises(DPOInputError, match="is a folder"):
        load_reading(tmp_path)
    bad_field = tmp_path / "bad.json"
    bad_field.write_text(json.dumps(_with(("findings", 0, "lobe"), "XX")), encoding="utf-8")
    with pytest.raises(DPOInputError, match=r"bad.json: findings\[0\]\.lobe"):
        load_reading(bad_field)
