"""The fissure points the lobes were made from, kept on the lobe segmentation node, so that a drag
after the scene was saved and opened again (or the module reloaded) still takes the fast path.

A node attribute is saved in the scene file (``.mrml``) with the node, so the points survive a
scene save and reload, an ``.mrb`` bundle, and a module reload. They are trusted only while they
still describe the lobes: the attribute also holds a digest of the lobes they were made from
(``lobe_digest``: SHA-256 of the lobes as spec labels 1-6 on the reference grid, over the shared
layer's extent). A drag that reads them checks the digest against the segmentation first (in the
worker thread); when the segmentation was changed since without this module watching (another
tool, a Slicer session without the module, the file rewritten), the digest differs and the lobes
are recomputed from the points instead (``mrml_lobe_drag``): an honest slow path, never a fast
wrong one.

An edit made while the module watches the node (``MRMLLobes.keep_lobe_points``: Segment Editor
strokes, an import into the node) marks the stored points ``edited`` (``mark_edited``) instead:
the points still describe the lobes apart from the reader's edits, as a drag in that session
assumes (it relabels only the voxels a moved surface sweeps and keeps every other voxel as
edited), so after a reload the drag does the same and the edits survive. A node so marked is not
checked by digest again until fresh points are stored. Slicer 5.8-5.12 send no event before a
scene is saved, so the digest cannot be brought up to date at save time.

The digest depends only on which voxel holds which lobe (not on the layer's label values, its
scalar type, which segments share it, nor the order its voxels are stored in: it is taken over the
layer read as the core's LPS-oriented array), so merging the segmentation's layers into one, or a
layer on the CT's own grid instead of its LPS-ordered one, keeps it.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

POINTS_ATTRIBUTE = "DPOScoring.LobePoints"
POINTS_SCHEMA = "dpo-lobe-points/1"
SLAB = 16  # slices hashed at a time (a changed slab is copied, never the whole layer)


def lobe_digest(view: np.ndarray, lookup: np.ndarray, offset, shape, changes=None) -> str:
    """SHA-256 of the lobes held in a layer's voxels ``view`` ([k, j, i]; ``lookup``: layer value
    -> spec label, any other value 0), placed at ``offset`` on a reference grid of ``shape``;
    with ``changes`` (``kk, jj, ii, labels`` on the reference grid, spec labels) the digest of the
    lobes after those changes, without writing them."""
    top = int(view.max()) if view.size else 0
    if top >= lookup.size:
        lookup = np.concatenate([lookup, np.zeros(top + 1 - lookup.size, dtype=np.uint8)])
    lookup = lookup.astype(np.uint8)
    identity = view.dtype == np.uint8 and np.array_equal(lookup[:top + 1], np.arange(top + 1))
    digest = hashlib.sha256(json.dumps({"schema": POINTS_SCHEMA, "offset": [int(v) for v in offset],
                                        "size": [int(v) for v in view.shape],
                                        "grid": [int(v) for v in shape]}).encode())
    if changes is not None:
        kk, jj, ii, labels = (np.asarray(a) for a in changes)
        order = np.argsort(kk, kind="stable")
        kk, jj, ii, labels = kk[order] - offset[0], jj[order] - offset[1], ii[order] - offset[2], labels[order]
    for start in range(0, view.shape[0], SLAB):
        slab = view[start:start + SLAB]
        canonical = slab if identity else lookup[slab]
        if changes is not None:
            first, last = np.searchsorted(kk, [start, start + SLAB])
            if last > first:
                canonical = canonical.copy() if canonical is slab else canonical
                canonical[kk[first:last] - start, jj[first:last], ii[first:last]] = labels[first:last]
        digest.update(np.ascontiguousarray(canonical).data)
    return digest.hexdigest()


def store_points(segmentation, points: dict, digest: str) -> None:
    """The points (LPS mm, exact: JSON keeps a float's every digit) and the digest of the lobes
    made from them, as an attribute of the segmentation node (saved with the scene)."""
    document = {"schema": POINTS_SCHEMA, "coordinates": "LPS", "lobes_sha256": digest,
                "fissures": {name: np.asarray(p, dtype=float).tolist() for name, p in points.items()}}
    segmentation.SetAttribute(POINTS_ATTRIBUTE, json.dumps(document))


def _document(segmentation) -> dict | None:
    """The stored attribute as our schema's JSON object, or None (none, or not ours)."""
    text = segmentation.GetAttribute(POINTS_ATTRIBUTE) if segmentation is not None else None
    try:
        document = json.loads(text) if text else None
    except ValueError:
        return None
    return document if isinstance(document, dict) and document.get("schema") == POINTS_SCHEMA else None


def mark_edited(segmentation) -> None:
    """The lobes were edited while the module watched: the stored points (if any, and ours) are
    marked ``edited``; ``stored_points`` then returns them without a digest to check."""
    document = _document(segmentation)
    if document is not None and not document.get("edited"):
        document["edited"] = True
        segmentation.SetAttribute(POINTS_ATTRIBUTE, json.dumps(document))


def forget_points(segmentation) -> None:
    """The stored points no longer describe the lobes (they were replaced another way)."""
    if segmentation.GetAttribute(POINTS_ATTRIBUTE) is not None:
        segmentation.RemoveAttribute(POINTS_ATTRIBUTE)


def stored_points(segmentation) -> tuple[dict, str | None] | None:
    """``(points, digest)`` as stored, or None (none stored, or an attribute that is not ours: a
    hand-edited or foreign value is ignored, never trusted). The digest is None when the lobes
    were edited under the module's watch (``mark_edited``): the points are trusted as they were
    in that session."""
    from ..lobes.fissures import FISSURES  # here: the module loads before SciPy is installed

    document = _document(segmentation)
    if document is None or not isinstance(document.get("lobes_sha256"), str):
        return None
    try:
        points = {name: np.asarray(values, dtype=float) for name, values in document["fissures"].items()}
    except (ValueError, TypeError, AttributeError, KeyError):
        return None
    if not points or any(name not in FISSURES or p.ndim != 2 or p.shape[1] != 3 for name, p in points.items()):
        return None
    return points, (None if document.get("edited") is True else document["lobes_sha256"])
