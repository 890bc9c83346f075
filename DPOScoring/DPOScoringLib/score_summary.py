"""Human-readable views of a ``dpo-scores/1`` result: the banner line and the per-lobe rows.

Shared by the Slicer panel, the command line's text output and the report, so every place
shows the same words for the same numbers.
"""

from __future__ import annotations

from .lobes import BY_CODE, LOBE_CODES


def _yes_no(value: bool) -> str:
    return "positive" if value else "negative"


def format_number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def banner_text(scores: dict) -> str:
    """One line: R/L totals, definitions, ANS, ILD extent and CS; 'provisional' while pending."""
    status = "complete" if scores["complete"] else (
        f"PROVISIONAL: {scores['findings']['pending']} pending "
        f"(with pending: total {scores['provisional']['total']}, "
        f"def1 {_yes_no(scores['provisional']['dpo_def1'])}, "
        f"def2 {_yes_no(scores['provisional']['dpo_def2'])})")
    return (f"R {scores['right_total']} / L {scores['left_total']} (total {scores['total']}, "
            f"LDO {scores['ldo']}) | DPO def1 {_yes_no(scores['dpo_def1'])}, "
            f"def2 {_yes_no(scores['dpo_def2'])} | ANS {format_number(scores['ans'])} | "
            f"ILD extent {scores['ild_extent']} | CS {format_number(scores['coarseness_score'])} | "
            f"{status} | policy {scores['policy']['id']}")


LOBE_COLUMNS = ("lobe", "NNPOL", "pending", "dendriform", "CG", "ILD extent", "extent > 50 %",
                "distribution")


def lobe_rows(scores: dict) -> list[tuple[str, ...]]:
    """One row per lobe, in spec order, with the columns of ``LOBE_COLUMNS``."""
    rows = []
    dendriform = set(scores["dendriform_lobes"])
    for code in LOBE_CODES:
        pending = scores["provisional"]["nnpol"][code] - scores["nnpol"][code]
        item = scores["characterisation"].get(code)
        extent = "" if item is None or item["extent_over_half"] is None else (
            ("yes" if item["extent_over_half"] else "no") + f" ({item['extent_source']})")
        rows.append((
            f"{code} ({BY_CODE[code].name})",
            str(scores["nnpol"][code]),
            str(pending) if pending else "",
            "yes" if code in dendriform else "",
            str(scores["coarseness_grades"][code]),
            str(scores["ild_overall_by_lobe"][code]),
            extent,
            scores["lobe_distribution"].get(code) or "",
        ))
    return rows


def text_report(scores: dict) -> str:
    table = [LOBE_COLUMNS, *lobe_rows(scores)]
    widths = [max(len(row[i]) for row in table) for i in range(len(LOBE_COLUMNS))]
    lines = [banner_text(scores), ""]
    for row in table:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    lines += [f"ANS: {scores['ans_note']}", *(f"warning: {w}" for w in scores["warnings"])]
    return "\n".join(lines) + "\n"
