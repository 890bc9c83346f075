"""One test (or more) per rule of scoring-spec.md sections 1-8, named after the rule."""

from __future__ import annotations

import pytest

from DPOScoringLib.common.anatomy import BY_CODE, LEFT_LOBES, LOBE_CODES, RIGHT_LOBES, code_for_label
from DPOScoringLib.rules.characterisation import classify_zone, extent_is_over_half, lobe_distribution
from DPOScoringLib.rules.nodule_score import pooled_imputation_value
from DPOScoringLib.rules.policy import ScoringPolicy
from DPOScoringLib.rules.scoring import score_reading

from reading_builders import ild, nodules, reading

# --- section 1: lobes ---------------------------------------------------------------------------


def test_spec1_six_lobes_codes_label_values_and_lungs():
    assert LOBE_CODES == ("RUL", "RML", "RLL", "LUL", "LING", "LLL")
    assert [BY_CODE[c].label for c in LOBE_CODES] == [1, 2, 3, 4, 5, 6]
    assert RIGHT_LOBES == ("RUL", "RML", "RLL") and LEFT_LOBES == ("LUL", "LING", "LLL")
    assert BY_CODE["LING"].name == "lingula"
    assert code_for_label(0) == "unassigned" and code_for_label(5) == "LING"


# --- section 3: what is a PO --------------------------------------------------------------------


def test_spec3_short_axis_4mm_or_more_is_recorded_separately_not_counted():
    r = reading(findings=[
        {"lobe": "RUL", "kind": "nodular", "status": "confirmed", "short_axis_mm": 3.99},
        {"lobe": "RUL", "kind": "nodular", "status": "confirmed", "short_axis_mm": 4.0},
    ])
    s = score_reading(r)
    assert s["nnpol"]["RUL"] == 1
    assert s["separately_recorded"]["large_calcified"]["by_lobe"]["RUL"] == 1
    assert any("4 mm" in w and "findings[1]" in w for w in s["warnings"])


def test_spec3_large_calcified_and_granuloma_never_count_as_po():
    r = reading({"RUL": 1, "LLL": 1}, findings=[
        {"lobe": "RML", "kind": "large_calcified", "status": "confirmed"},
        {"lobe": "LUL", "kind": "granuloma", "status": "confirmed"},
    ])
    s = score_reading(r)
    assert s["total"] == 2
    assert s["separately_recorded"]["large_calcified"]["total"] == 1
    assert s["separately_recorded"]["granuloma"]["by_lobe"]["LUL"] == 1


# --- section 4: counting ------------------------------------------------------------------------


def test_spec4_nnpol_counts_confirmed_nodular_only():
    r = reading({"RUL": 2}, findings=nodules("RUL", 3, "pending") + nodules("RUL", 4, "rejected"))
    s = score_reading(r)
    assert s["nnpol"]["RUL"] == 2
    assert s["provisional"]["nnpol"]["RUL"] == 5
    assert s["complete"] is False
    assert s["findings"] == {"confirmed": 2, "pending": 3, "rejected": 4}


def test_spec4_complete_when_nothing_pending():
    s = score_reading(reading({"RUL": 2}, findings=nodules("RUL", 1, "rejected")))
    assert s["complete"] is True
    assert s["provisional"]["nnpol"] == s["nnpol"]


def test_spec4_dendriform_lobe_contributes_no_nodular_count():
    s = score_reading(reading({"RLL": 7, "LLL": 3}, dendriform=["RLL"]))
    assert s["nnpol"]["RLL"] == 0
    assert s["right_total"] == 0 and s["left_total"] == 3


def test_spec4_variant_dendriform_nodules_count():
    r = reading({"RLL": 7, "LLL": 3}, dendriform=["RLL"])
    s = score_reading(r, ScoringPolicy(dendriform_nodules="count"))
    assert s["nnpol"]["RLL"] == 7 and s["total"] == 10
    assert s["dpo_def1"] is True
    assert s["policy"]["dendriform_nodules"] == "count"


def test_spec4_dendriform_finding_marks_its_lobe():
    r = reading({"LUL": 2}, findings=[{"lobe": "LUL", "kind": "dendriform", "status": "confirmed"}])
    s = score_reading(r)
    assert s["dendriform_lobes"] == ["LUL"] and s["nnpol"]["LUL"] == 0
    pending = reading({"LUL": 2}, findings=[{"lobe": "LUL", "kind": "dendriform", "status": "pending"}])
    s = score_reading(pending)
    assert s["ldo"] == 0 and s["provisional"]["ldo"] == 1


@pytest.mark.parametrize("ldo", range(7))
def test_spec4_ldo_counts_dendriform_lobes(ldo):
    s = score_reading(reading(dendriform=LOBE_CODES[:ldo]))
    assert s["ldo"] == ldo


def test_spec4_right_and_left_totals():
    s = score_reading(reading({"RUL": 1, "RML": 2, "RLL": 3, "LUL": 4, "LING": 5, "LLL": 6}))
    assert (s["right_total"], s["left_total"], s["total"]) == (6, 15, 21)


# --- section 5: definitions ---------------------------------------------------------------------


def test_spec5_def1_nine_versus_ten_bilateral():
    assert score_reading(reading({"RUL": 5, "LLL": 4}))["dpo_def1"] is False
    assert score_reading(reading({"RUL": 5, "LLL": 5}))["dpo_def1"] is True


def test_spec5_def1_all_in_one_lung_is_negative_by_default():
    s = score_reading(reading({"RUL": 6, "RLL": 6}))
    assert s["total"] == 12 and s["dpo_def1"] is False


def test_spec5_def1_variant_total():
    s = score_reading(reading({"RUL": 6, "RLL": 6}), ScoringPolicy(def1="total"))
    assert s["dpo_def1"] is True
    assert s["variants"]["def1"] == {"default": False, "total": True}
    assert score_reading(reading({"RUL": 9}), ScoringPolicy(def1="total"))["dpo_def1"] is False


def test_spec5_def2_lobe_with_four_versus_five():
    assert score_reading(reading({"RLL": 4, "LLL": 1}))["dpo_def2"] is False
    assert score_reading(reading({"RLL": 5, "LLL": 1}))["dpo_def2"] is True


def test_spec5_def2_positive_with_fewer_than_ten_in_total():
    s = score_reading(reading({"RLL": 5, "LING": 1}))
    assert s["total"] == 6 and s["dpo_def2"] is True and s["dpo_def1"] is False


def test_spec5_def2_default_requires_bilateral():
    assert score_reading(reading({"RLL": 8}))["dpo_def2"] is False


def test_spec5_def2_variant_lobe():
    s = score_reading(reading({"RLL": 5}), ScoringPolicy(def2="lobe"))
    assert s["dpo_def2"] is True and s["variants"]["def2"]["default"] is False


def test_spec5_def2_variant_each_lung():
    one_sided = reading({"RLL": 5, "LLL": 4})
    assert score_reading(one_sided, ScoringPolicy(def2="each-lung"))["dpo_def2"] is False
    both = reading({"RLL": 5, "LLL": 5})
    assert score_reading(both, ScoringPolicy(def2="each-lung"))["dpo_def2"] is True
    assert score_reading(one_sided)["variants"]["def2"] == {"default": True, "lobe": True,
                                                            "each-lung": False}


def test_spec5_dendriform_lobes_excluded_from_definitions():
    r = reading({"RLL": 6, "LLL": 6}, dendriform=["LLL"])
    s = score_reading(r)
    assert s["dpo_def1"] is False and s["dpo_def2"] is False


def test_spec5_policy_is_reported():
    s = score_reading(reading(), ScoringPolicy(def1="total", def2="lobe"))
    assert s["policy"]["id"] == "def1=total,def2=lobe,dendriform-nodules=exclude"


def test_spec5_unknown_variant_rejected():
    with pytest.raises(ValueError, match="def2"):
        ScoringPolicy(def2="both")


# --- section 6: ANS -----------------------------------------------------------------------------


def test_spec6_ans_paper_fig1_values():
    high = score_reading(reading({"RUL": 60, "RML": 60, "RLL": 80, "LUL": 60, "LING": 42, "LLL": 80}))
    assert high["total"] == 382 and round(high["ans"], 2) == 63.67 and high["ans_fraction"] == "382/6"
    low = score_reading(reading({"RLL": 40, "LLL": 42}))
    assert round(low["ans"], 2) == 13.67


def test_spec6_ans_divides_by_lobes_without_dendriform():
    s = score_reading(reading({"RUL": 4, "RLL": 9, "LLL": 6}, dendriform=["RLL", "LUL"]))
    assert s["ans"] == pytest.approx(10 / 4) and s["ans_fraction"] == "10/4"


def test_spec6_ans_zero_without_po():
    s = score_reading(reading())
    assert s["ans"] == 0 and "no nodular PO" in s["ans_note"]


def test_spec6_ans_null_with_reason_when_ldo_six():
    s = score_reading(reading({"RUL": 3}, dendriform=LOBE_CODES))
    assert s["ldo"] == 6 and s["ans"] is None and "LDO = 6" in s["ans_note"]


def test_spec6_ans_pooled_imputation_for_ldo_six():
    patients = [
        ({"RUL": 2, "RML": 0, "RLL": 4, "LUL": 0, "LING": 0, "LLL": 0}, ["LLL"]),  # 6 over 5
        ({c: 1 for c in LOBE_CODES}, ["RUL", "RML", "RLL", "LUL", "LING"]),  # 1 over 1
        ({c: 9 for c in LOBE_CODES}, []),  # no dendriform lobe: not pooled
        ({c: 0 for c in LOBE_CODES}, list(LOBE_CODES)),  # LDO 6: not pooled
    ]
    assert pooled_imputation_value(patients) == pytest.approx(7 / 6)
    assert pooled_imputation_value(patients[2:]) is None


# --- section 7: characterisation ----------------------------------------------------------------


def test_spec7_characterisation_triggers_five_nodules_or_dendriform():
    s = score_reading(reading({"RUL": 4, "RLL": 5, "LLL": 1}, dendriform=["LING"]))
    assert sorted(s["characterisation"]) == ["LING", "RLL"]
    assert "5 nodular PO" in s["characterisation"]["RLL"]["trigger"]
    assert s["characterisation"]["LING"]["trigger"] == "dendriform PO"


def test_spec7_extent_exactly_half_is_no():
    assert extent_is_over_half(0.5) is False and extent_is_over_half(0.5001) is True


def test_spec7_extent_reader_answer_stands_over_suggestion():
    r = reading({"RLL": 5}, lobes={"RLL": {"extent_over_half": False, "extent_fraction_suggested": 0.9}})
    item = score_reading(r)["characterisation"]["RLL"]
    assert item["extent_over_half"] is False and item["extent_source"] == "reader"
    r = reading({"RLL": 5}, lobes={"RLL": {"extent_fraction_suggested": 0.9}})
    item = score_reading(r)["characterisation"]["RLL"]
    assert item["extent_over_half"] is True and item["extent_source"] == "suggested"
    item = score_reading(reading({"RLL": 5}))["characterisation"]["RLL"]
    assert item["extent_over_half"] is None and item["extent_source"] == "not assessed"


def test_spec7_zone_pleural_within_1mm_first():
    assert classify_zone(1.0, 0.99) == "pleural"
    assert classify_zone(1.01, 0.99) == "cortical"


def test_spec7_zone_cortical_outer_third_else_medullary():
    assert classify_zone(5.0, 2 / 3) == "cortical"
    assert classify_zone(5.0, 0.66) == "medullary"
    assert classify_zone(20.0, 0.1) == "medullary"


def test_spec7_lobe_distribution_more_than_half_else_random():
    assert lobe_distribution(["pleural"] * 3 + ["cortical"] * 2)["category"] == "pleural"
    assert lobe_distribution(["pleural"] * 2 + ["cortical"] * 2)["category"] == "random"
    assert lobe_distribution(["medullary"] * 2 + ["cortical"] * 1)["category"] == "medullary"


def test_spec7_lobe_distribution_unknown_zones_count_against_predominance():
    result = lobe_distribution(["pleural", "pleural", None, None])
    assert result["category"] == "random" and result["unknown"] == 2 and "note" in result


def test_spec7_lobe_distribution_reported_for_triggered_lobes():
    findings = (nodules("RLL", 3, zone="pleural") + nodules("RLL", 2, zone="cortical")
                + nodules("LLL", 5, zone="medullary", status="pending"))
    s = score_reading(reading(findings=findings + nodules("LUL", 2, zone="pleural")))
    assert s["lobe_distribution"] == {"RLL": "pleural"}


def test_spec7_background_summary():
    findings = (nodules("RLL", 3, background="coarse_reticulation")
                + nodules("RLL", 1, background="normal") + nodules("RLL", 1))
    bg = score_reading(reading(findings=findings))["characterisation"]["RLL"]["background"]
    assert bg["fraction_in_ild"] == pytest.approx(3 / 4)
    assert bg["predominant_ild_pattern"] == "coarse_reticulation" and bg["unrecorded"] == 1


# --- section 8: ILD extent and coarseness -------------------------------------------------------


def test_spec8_ild_extent_sums_overall_or_largest_pattern():
    s = score_reading(reading(ild={"RUL": ild(ggo=1, fine=2), "RLL": ild(coarse=1, overall=3),
                                   "LLL": ild(honey=3)}))
    assert s["ild_overall_by_lobe"]["RUL"] == 2 and s["ild_overall_by_lobe"]["RLL"] == 3
    assert s["ild_extent"] == 8


def test_spec8_coarseness_grade_of_most_extensive_pattern():
    s = score_reading(reading(ild={"RUL": ild(ggo=3, honey=1), "RML": ild(fine=2, ggo=1)}))
    assert s["coarseness_grades"]["RUL"] == 1 and s["coarseness_grades"]["RML"] == 2


def test_spec8_coarseness_ties_go_to_higher_grade():
    s = score_reading(reading(ild={"RUL": ild(fine=2, coarse=2), "RML": ild(ggo=1, honey=1)}))
    assert s["coarseness_grades"]["RUL"] == 3 and s["coarseness_grades"]["RML"] == 4


def test_spec8_consolidation_alone_has_no_grade():
    s = score_reading(reading(ild={"RUL": ild(consolidation=3), "RML": ild(consolidation=3, ggo=1)}))
    assert s["coarseness_grades"]["RUL"] == 0 and s["coarseness_grades"]["RML"] == 1
    assert s["ild_overall_by_lobe"]["RUL"] == 3  # consolidation still counts for extent


def test_spec8_coarseness_score_7_2_for_grades_summing_6_over_5_lobes():
    s = score_reading(reading(ild={"RUL": ild(ggo=1), "RML": ild(ggo=1), "RLL": ild(ggo=1),
                                   "LUL": ild(ggo=1), "LLL": ild(fine=2)}))
    assert s["lild"] == 5 and s["coarseness_score"] == pytest.approx(7.2)


def test_spec8_coarseness_score_24_for_honeycombing_everywhere():
    s = score_reading(reading(ild={code: ild(honey=3) for code in LOBE_CODES}))
    assert s["coarseness_score"] == pytest.approx(24.0)


def test_spec8_coarseness_score_null_when_lild_zero():
    s = score_reading(reading(ild={"RUL": ild(consolidation=2)}))
    assert s["lild"] == 0 and s["coarseness_score"] is None and "LILD = 0" in s["coarseness_note"]


def test_spec8_contradictory_overall_is_kept_and_flagged():
    s = score_reading(reading(ild={"RUL": ild(fine=3, overall=1)}))
    assert s["ild_overall_by_lobe"]["RUL"] == 1
    assert any("lobes.RUL.ild.overall" in w for w in s["warnings"])
