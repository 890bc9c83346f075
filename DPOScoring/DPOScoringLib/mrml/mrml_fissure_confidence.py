"""Which fissure to check: the per-fissure confidence of the weight-free lobe method (the share of
each fitted fissure surface supported by image evidence, and whether the template was kept; see
``fissure_fit.py`` and Docs/lobes.md) carried from the ``lobes`` command to the Slicer panel.

The command writes it with ``--provenance-out``; the module keeps it as an attribute of the lobe
segmentation node (saved with the scene, following the node) and marks the fissures the reader
moved, whose measured share then describes the surface before the move. The panel's rows and text
are built here, headless; DPOScoring.py only shows them.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..common.errors import DPOInputError
from ..lobes.fissures import FISSURE_NAMES, FISSURES, LOW_CONFIDENCE
from ..lobes.lobe_files import PROVENANCE_SCHEMA

PROVENANCE_ATTRIBUTE = "DPOScoring.LobeProvenance"
ROW_COLUMNS = ("fissure", "supported by the image", "surface", "check")


def load_provenance(path: str | Path) -> dict:
    """``lobes --provenance-out``'s file (``LobeResult.provenance_document``)."""
    from ..rules.reading import load_json_file

    document = load_json_file(path, "lobe provenance file")
    if not isinstance(document, dict) or document.get("schema") != PROVENANCE_SCHEMA:
        raise DPOInputError(f"{path}: schema", f"is not {PROVENANCE_SCHEMA!r}")
    return document


def store_provenance(segmentation, document: dict) -> None:
    segmentation.SetAttribute(PROVENANCE_ATTRIBUTE, json.dumps(document))


def stored_provenance(segmentation) -> dict | None:
    text = segmentation.GetAttribute(PROVENANCE_ATTRIBUTE) if segmentation is not None else None
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None  # an attribute edited by hand: no rows rather than a broken panel


def mark_moved(segmentation, names) -> None:
    """The reader moved these fissures' points (after the lobes followed them)."""
    document = stored_provenance(segmentation)
    if not document or not names:
        return
    moved = set(document.get("moved_by_reader", [])) | set(names)
    document["moved_by_reader"] = [name for name in FISSURES if name in moved]
    store_provenance(segmentation, document)


def confidence_rows(document: dict | None) -> list[tuple[str, str, str, str]]:
    """One row per fissure (``ROW_COLUMNS``): name, supported share, where the surface comes from,
    and what to check ("check: template kept", "check: low support", "moved by the reader")."""
    fissures = ((document or {}).get("provenance") or {}).get("fissures") or {}
    moved = set((document or {}).get("moved_by_reader", []))
    rows = []
    for name in FISSURES:
        item = fissures.get(name)
        if item is None:
            continue
        share = float(item.get("confidence", 0.0))
        kept = str(item.get("source", "")).startswith("template")
        surface = "template kept" if kept else "fitted to the image"
        check = "check: template kept" if kept else ("check: low support" if share < LOW_CONFIDENCE else "")
        if name in moved:
            check = "moved by the reader" + (f" (was {check[7:]})" if check else "")
        rows.append((FISSURE_NAMES[name], f"{share:.0%}", surface, check))
    return rows


def confidence_text(document: dict | None) -> str:
    """The panel's text: a heading and one line per fissure, or why there is none."""
    if not document:
        return ""
    rows = confidence_rows(document)
    if not rows:
        method = document.get("method", "")
        if method == "fissures":
            return "Fissures: points given, no image support measured."
        return f"Lobes by {method}: no fissure surfaces fitted, no fissure confidence."
    lines = ["Fissures supported by the image (share of the surface):"]
    for fissure, share, surface, check in rows:
        lines.append(f"{fissure}: {share}, {surface}" + (f" - {check}" if check else ""))
    return "\n".join(lines)
