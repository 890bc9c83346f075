"""Small builders for dpo-reading/1 documents used across the tests (parsed the real way)."""

from __future__ import annotations

from DPOScoringLib.rules.reading import READING_SCHEMA, parse_reading


def nodules(lobe: str, n: int, status: str = "confirmed", **extra) -> list[dict]:
    return [{"lobe": lobe, "kind": "nodular", "status": status, **extra} for _ in range(n)]


def reading_doc(counts: dict[str, int] | None = None, dendriform=(), ild=None, findings=(),
                lobes=None) -> dict:
    """A reading document: ``counts`` confirmed nodular POs per lobe, dendriform lobe flags,
    per-lobe ILD pattern scores, extra findings and extra per-lobe fields."""
    all_findings = []
    for lobe, n in (counts or {}).items():
        all_findings += nodules(lobe, n)
    all_findings += list(findings)
    lobe_docs: dict[str, dict] = {code: dict(value) for code, value in (lobes or {}).items()}
    for code in dendriform:
        lobe_docs.setdefault(code, {})["dendriform"] = True
    for code, scores in (ild or {}).items():
        lobe_docs.setdefault(code, {})["ild"] = scores
    return {"schema": READING_SCHEMA, "findings": all_findings, "lobes": lobe_docs}


def reading(*args, **kwargs):
    return parse_reading(reading_doc(*args, **kwargs))


def ild(ggo=0, fine=0, coarse=0, honey=0, consolidation=0, overall=None) -> dict:
    doc = {"ggo": ggo, "fine_reticulation": fine, "coarse_reticulation": coarse,
           "honeycombing": honey, "consolidation": consolidation}
    if overall is not None:
        doc["overall"] = overall
    return doc
