"""Property-based tests of the scoring engine (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from DPOScoringLib.common.anatomy import LOBE_CODES
from DPOScoringLib.rules.policy import DEF1_VARIANTS, DEF2_VARIANTS, DENDRIFORM_NODULE_VARIANTS, ScoringPolicy
from DPOScoringLib.rules.reading import KINDS, READING_SCHEMA, STATUSES, ZONES, parse_reading
from DPOScoringLib.rules.scoring import score_reading

lobes = st.sampled_from(LOBE_CODES)
finding = st.fixed_dictionaries(
    {"lobe": lobes, "kind": st.sampled_from(KINDS), "status": st.sampled_from(STATUSES)},
    optional={"zone": st.sampled_from(ZONES),
              "short_axis_mm": st.floats(0.5, 8.0, allow_nan=False)},
)
policies = st.builds(ScoringPolicy, st.sampled_from(DEF1_VARIANTS), st.sampled_from(DEF2_VARIANTS),
                     st.sampled_from(DENDRIFORM_NODULE_VARIANTS))
ild_scores = st.fixed_dictionaries({p: st.integers(0, 3) for p in (
    "ggo", "fine_reticulation", "coarse_reticulation", "honeycombing", "consolidation")})
lobe_docs = st.dictionaries(lobes, st.fixed_dictionaries(
    {"dendriform": st.booleans()}, optional={"ild": ild_scores}), max_size=6)
readings = st.fixed_dictionaries({"findings": st.lists(finding, max_size=40), "lobes": lobe_docs})


def score(doc, policy):
    return score_reading(parse_reading({"schema": READING_SCHEMA, **doc}), policy)


def without_volatile(scores):
    return {k: v for k, v in scores.items() if k not in ("findings", "complete", "warnings")}


@settings(max_examples=200, deadline=None)
@given(readings, policies, lobes)
def test_adding_a_confirmed_nodular_po_never_turns_a_definition_negative(doc, policy, lobe):
    dendriform = {code for code, item in doc["lobes"].items() if item["dendriform"]}
    dendriform |= {f["lobe"] for f in doc["findings"]
                   if f["kind"] == "dendriform" and f["status"] == "confirmed"}
    if lobe in dendriform:
        lobe = next((code for code in LOBE_CODES if code not in dendriform), None)
        if lobe is None:
            return
    before = score(doc, policy)
    more = dict(doc, findings=doc["findings"] + [{"lobe": lobe, "kind": "nodular", "status": "confirmed"}])
    after = score(more, policy)
    for name in ("dpo_def1", "dpo_def2"):
        assert after[name] >= before[name]
    for definition in ("def1", "def2"):
        for variant, positive in before["variants"][definition].items():
            assert after["variants"][definition][variant] >= positive


@settings(max_examples=200, deadline=None)
@given(readings, st.sampled_from(DENDRIFORM_NODULE_VARIANTS))
def test_definition_2_default_implies_bilateral_presence(doc, dendriform_nodules):
    s = score(doc, ScoringPolicy(dendriform_nodules=dendriform_nodules))
    if s["dpo_def2"]:
        assert s["right_total"] >= 1 and s["left_total"] >= 1
    if s["provisional"]["dpo_def2"]:
        assert s["provisional"]["right_total"] >= 1 and s["provisional"]["left_total"] >= 1


@settings(max_examples=150, deadline=None)
@given(readings, policies, st.randoms(use_true_random=False))
def test_scores_are_invariant_to_the_order_of_findings(doc, policy, rnd):
    shuffled = list(doc["findings"])
    rnd.shuffle(shuffled)
    first = score(doc, policy)
    second = score(dict(doc, findings=shuffled), policy)
    assert without_volatile(first) == without_volatile(second)
    assert len(first["warnings"]) == len(second["warnings"])  # they name positions, which moved


@settings(max_examples=150, deadline=None)
@given(readings, policies, st.lists(finding, min_size=1, max_size=10))
def test_rejected_findings_never_change_any_score(doc, policy, extra):
    rejected = [dict(f, status="rejected") for f in extra]
    before = score(doc, policy)
    after = score(dict(doc, findings=doc["findings"] + rejected), policy)
    assert without_volatile(before) == without_volatile(after)
    assert before["warnings"] == after["warnings"] and before["complete"] == after["complete"]
    assert after["findings"]["rejected"] == before["findings"]["rejected"] + len(rejected)
