"""Human-readable views of a ``dpo-scores/1`` result: the banner line, the per-lobe rows, plain
words for kinds and policies, and the closing summary of ``run`` and ``demo``.

Shared by the Slicer panel, the command line's text output and the report, so every place
shows the same words for the same numbers. Functions take the raw reading (the ``dpo-reading/1``
dict) where it is known: only the reading says who reviewed and whether the reader answered the
ILD and extent questions ("not assessed" is not the same as 0).
"""

from __future__ import annotations

from ..common.anatomy import BY_CODE, LOBE_CODES

KIND_WORDS = {
    "nodular": "nodular PO",
    "dendriform": "dendriform PO",
    "large_calcified": "calcified nodule >= 4 mm (recorded separately)",
    "granuloma": "suspected granuloma (recorded separately)",
}
STATUS_WORDS = {"pending": "pending (not yet reviewed)", "confirmed": "confirmed", "rejected": "rejected"}
ZONE_WORDS = {"pleural": "pleural", "cortical": "cortical", "medullary": "medullary", None: "zone not known"}
DEF1_WORDS = {
    "default": "PO in both lungs and at least 10 in all",
    "total": "at least 10 PO in all (both lungs not required)",
}
DEF2_WORDS = {
    "default": "a lobe with at least 5 PO, and PO in both lungs",
    "lobe": "a lobe with at least 5 PO",
    "each-lung": "a right and a left lobe with at least 5 PO each",
}
DENDRIFORM_WORDS = {
    "exclude": "nodular POs in a lobe with dendriform PO are not counted",
    "count": "nodular POs in a lobe with dendriform PO are counted too",
}
NOT_ASSESSED = "not assessed"
AUTOMATIC_ONLY = "automatic only, not reviewed"


def _yes_no(value: bool) -> str:
    return "positive" if value else "negative"


def format_number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def kind_words(kind: str | None) -> str:
    return KIND_WORDS.get(kind, kind or "unknown kind")


def policy_words(policy: dict) -> list[str]:
    """The policy as three plain sentences (definition 1, definition 2, dendriform lobes)."""
    return [f"definition 1: {DEF1_WORDS[policy['def1']]}",
            f"definition 2: {DEF2_WORDS[policy['def2']]}",
            DENDRIFORM_WORDS[policy["dendriform_nodules"]]]


def ild_answered(reading: dict | None, code: str) -> bool | None:
    """Did the reader give ILD scores for this lobe? None when no reading is known."""
    if reading is None:
        return None
    return (reading.get("lobes") or {}).get(code, {}).get("ild") is not None


def any_ild_answered(reading: dict | None) -> bool | None:
    if reading is None:
        return None
    return any(ild_answered(reading, code) for code in LOBE_CODES)


def review_state(scores: dict, reading: dict | None = None) -> str:
    """'complete' only when a reader has reviewed (a reader id, nothing pending); otherwise
    'automatic only, not reviewed' or 'PROVISIONAL' while candidates wait for a decision.
    Without a reading (reader unknown) a case with nothing pending is called complete."""
    pending = scores["findings"]["pending"]
    reader = None if reading is None else (reading.get("reader") or "").strip()
    if pending == 0:
        if reader is None:
            return "complete"
        return f"complete, reviewed by {reader}" if reader else AUTOMATIC_ONLY
    with_pending = (f"with pending: total {scores['provisional']['total']}, "
                    f"definition 1 {_yes_no(scores['provisional']['dpo_def1'])}, "
                    f"definition 2 {_yes_no(scores['provisional']['dpo_def2'])}")
    who = AUTOMATIC_ONLY if reader == "" else (f"reader {reader}" if reader else "")
    return "PROVISIONAL: " + ", ".join(filter(None, [who, f"{pending} pending ({with_pending})"]))


def is_complete(scores: dict, reading: dict | None) -> bool:
    return review_state(scores, reading).startswith("complete")


def banner_text(scores: dict, reading: dict | None = None) -> str:
    """One line: R/L totals, definitions, ANS, ILD extent and CS, and the review state."""
    ild = NOT_ASSESSED if any_ild_answered(reading) is False else str(scores["ild_extent"])
    cs = NOT_ASSESSED if any_ild_answered(reading) is False else format_number(scores["coarseness_score"])
    return (f"R {scores['right_total']} / L {scores['left_total']} (total {scores['total']}, "
            f"LDO {scores['ldo']}) | DPO definition 1 {_yes_no(scores['dpo_def1'])}, "
            f"definition 2 {_yes_no(scores['dpo_def2'])} | ANS {format_number(scores['ans'])} | "
            f"ILD extent {ild} | CS {cs} | {review_state(scores, reading)}")


LOBE_COLUMNS = ("lobe", "NNPOL", "pending", "dendriform", "CG", "ILD extent", "extent > 50 %",
                "distribution")


def excluded_by_dendriform(scores: dict, reading: dict | None) -> dict[str, int]:
    """Confirmed nodular POs per lobe that the dendriform-lobe rule left out of NNPOL."""
    if reading is None:
        return dict.fromkeys(LOBE_CODES, 0)
    from .counting import CONFIRMED, nodular_po_per_lobe
    from .reading import parse_reading

    raw = nodular_po_per_lobe(parse_reading(reading), CONFIRMED)
    return {code: max(raw[code] - scores["nnpol"][code], 0) for code in LOBE_CODES}


def lobe_rows(scores: dict, reading: dict | None = None) -> list[tuple[str, ...]]:
    """One row per lobe, in spec order, with the columns of ``LOBE_COLUMNS``."""
    rows = []
    dendriform = set(scores["dendriform_lobes"])
    excluded = excluded_by_dendriform(scores, reading)
    for code in LOBE_CODES:
        pending = scores["provisional"]["nnpol"][code] - scores["nnpol"][code]
        item = scores["characterisation"].get(code)
        extent = "" if item is None else (
            NOT_ASSESSED if item["extent_over_half"] is None
            else ("yes" if item["extent_over_half"] else "no") + f" ({item['extent_source']})")
        answered = ild_answered(reading, code) is not False
        flag = ""
        if code in dendriform:
            flag = f"yes ({excluded[code]} nodular not counted)" if excluded[code] else "yes"
        rows.append((
            f"{code} ({BY_CODE[code].name})",
            str(scores["nnpol"][code]),
            str(pending) if pending else "",
            flag,
            str(scores["coarseness_grades"][code]) if answered else NOT_ASSESSED,
            str(scores["ild_overall_by_lobe"][code]) if answered else NOT_ASSESSED,
            extent,
            scores["lobe_distribution"].get(code) or "",
        ))
    return rows


def variant_rows(scores: dict) -> list[tuple[str, str, str]]:
    """(definition, variant in words, positive/negative) for every variant of both definitions."""
    rows = []
    for definition, words in (("def1", DEF1_WORDS), ("def2", DEF2_WORDS)):
        for variant, value in scores["variants"][definition].items():
            name = "definition 1" if definition == "def1" else "definition 2"
            rows.append((name, f"{variant}: {words[variant]}", _yes_no(value)))
    return rows


def text_report(scores: dict, reading: dict | None = None) -> str:
    """The banner, the per-lobe table, the policy in words, the ANS note and the warnings."""
    table = [LOBE_COLUMNS, *lobe_rows(scores, reading)]
    widths = [max(len(row[i]) for row in table) for i in range(len(LOBE_COLUMNS))]
    lines = [banner_text(scores, reading), ""]
    for row in table:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    lines += ["", "policy: " + "; ".join(policy_words(scores["policy"])),
              f"ANS: {scores['ans_note']}", *(f"warning: {w}" for w in scores["warnings"])]
    return "\n".join(lines) + "\n"


def next_steps(scores: dict, reading: dict | None, bundle: str) -> list[str]:
    """What a reader does next with this case, in plain words (closing lines of run and demo)."""
    pending = scores["findings"]["pending"]
    steps = [f"open {bundle}/report.html, or the bundle in 3D Slicer (DPO Scoring > Open a review folder)"]
    if pending:
        steps.append(f"review the {pending} pending candidate{'s' if pending != 1 else ''} in the bone window: "
                     "confirm (C) or reject (R) each; place missed ossifications with A")
    else:
        steps.append("check the decisions in the gallery; place missed ossifications with A")
    if any_ild_answered(reading) is False:
        steps.append("grade ILD per lobe (GGO, reticulation, honeycombing, consolidation): not assessed yet")
    open_extent = [code for code, item in scores["characterisation"].items() if item["extent_over_half"] is None]
    if open_extent:
        steps.append("answer 'extent > 50 %' for " + ", ".join(open_extent) + ": not assessed yet")
    if not is_complete(scores, reading):
        steps.append("save the review under your reader ID: the scores are complete once a reader has "
                     "decided every candidate")
    return steps


def closing_summary(scores: dict, reading: dict | None, bundle: str) -> str:
    """The text ``run`` and ``demo`` end with: the scores and what a reader does next."""
    lines = [text_report(scores, reading).rstrip("\n"), "", "next:"]
    lines += [f"  {n}. {step}" for n, step in enumerate(next_steps(scores, reading, bundle), start=1)]
    return "\n".join(lines) + "\n"
