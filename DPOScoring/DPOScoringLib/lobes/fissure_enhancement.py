"""Fissure evidence from the CT itself: thin bright plates inside the lung, without learned weights.

A fissure is two layers of visceral pleura, well under a millimetre thick, seen on CT as a faint
line some 50-150 HU above the surrounding lung (partial volume), best where it crosses the image
plane steeply. Fissure filters in the literature start from the Hessian of the image at the
fissure's scale: a bright sheet has one large negative eigenvalue across it and two eigenvalues
near zero along it (Descoteaux et al., MICCAI 2005, "sheetness"; van Rikxoort et al., Med Phys 2009;
Lassen et al., IEEE TMI 2013, who add the sheet's orientation). This module follows that recipe:

1. The lung's bounding box is resampled to an isotropic grid (``GRID_MM``) so the filter has one
   scale in mm whatever the slice thickness.
2. Hessian eigenvalues at ``SIGMA_MM`` (scikit-image); sheetness S = -l3 * exp(-(l2 / l3)^2 / 2a^2)
   for l3 < 0 (|l1| <= |l2| <= |l3|): large for a bright sheet, small for a vessel (l2 ~ l3) or a
   blob.
3. Kept as evidence: voxels with |l1|, |l2| <= ``MAX_RATIO`` |l3| whose sheetness continues
   ``SIDE_MM`` away in both in-plane directions (a sheet, not a tube), at least
   ``PLEURA_MARGIN_MM`` inside the lung, whose sheetness is a local maximum across the sheet and
   above ``MIN_SHEETNESS``, and whose two sides (``SIDE_MM``
   along the normal) are both aerated lung (< ``SIDE_MAX_HU``) while the centre is a bump on the
   profile across the sheet: at least as bright as the brighter side, and ``MIN_CONTRAST_HU``
   above the background interpolated under it (the mean of the two sides, i.e. minus the second
   difference). The side test rejects the surfaces of masses, vessels' walls and consolidations,
   and the bump test any step edge (a blurred step is monotonic across: its centre lies between
   its sides), which the eigenvalues alone do not. A fissure often separates lobes of different
   aeration, i.e. it is a line on a step; the former test (``MIN_CONTRAST_HU`` above the brighter
   side) rejected such lines, e.g. the right oblique fissure under the thorax CT's mass, where the
   upper lobe around the mass is some 60 HU greyer than the lower lobe (Docs/lobes.md).

4. Evidence points are joined into sheets (neighbours within ``SHEET_LINK_MM`` whose normals
   agree within ~32 degrees) and sheets of fewer than ``MIN_SHEET_POINTS`` points (~35 mm^2) are
   dropped: a fissure is a large continuous sheet, the walls of vessels and noise give small
   fragments (the grouping step of van Rikxoort et al. 2009 and Lassen et al. 2013).

Each evidence point carries its position (LPS mm), the sheet's unit normal and its strength; the
surface fitting (``fissure_fit.py``) picks from them what agrees with each fissure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..common.progress import Progress, ensure_progress
from ..ct.voxel_boxes import bounding_box

GRID_MM = 1.5          # isotropic working grid: at or below the thinnest slices the method aims at (2 mm)
SIGMA_MM = 1.5         # Hessian scale: the blurred fissure line is ~2-3 mm wide at 1-2 mm slices
SHEET_ALPHA = 0.5      # Descoteaux's alpha for the l2/l3 ratio
MIN_SHEETNESS = 5.0    # HU (sigma^2-normalised): a ~1 mm line 50 HU above the lung gives ~10-20
PLEURA_MARGIN_MM = 4.0  # from the aerated lung's surface (``aerated_lung``)
AERATED_HU = -400.0    # lung with air in it: the usual lung-segmentation threshold (lung_mask.AIR_HU)
SIDE_MM = 3.0
SIDE_MAX_HU = -600.0
MIN_CONTRAST_HU = 12.0
MAX_RATIO = 0.4        # |l2|, |l1| at most this share of |l3|: a sheet, not a tube or a blob
CENTRE_MAX_HU = -450.0  # a fissure line stays far below soft tissue at these resolutions
MAX_POINTS = 400_000
SHEET_LINK_MM = 2.3     # neighbours on the 1.5 mm grid, diagonals included
SHEET_MIN_DOT = 0.85    # normals within ~32 degrees
MIN_SHEET_POINTS = 15


@dataclass
class FissureEvidence:
    points: np.ndarray     # (n, 3) LPS mm
    normals: np.ndarray    # (n, 3) unit vectors, sign made so that the z component is >= 0
    strength: np.ndarray   # (n,) sheetness
    lung: np.ndarray       # (n,) 1 right, 2 left
    grid_mm: float = GRID_MM

    def subset(self, mask: np.ndarray) -> FissureEvidence:
        return FissureEvidence(self.points[mask], self.normals[mask], self.strength[mask], self.lung[mask],
                               self.grid_mm)

    def __len__(self) -> int:
        return len(self.points)


def _isotropic(array: np.ndarray, spacing_zyx, grid_mm: float, order: int) -> np.ndarray:
    factors = np.asarray(spacing_zyx, dtype=float) / grid_mm
    return ndimage.zoom(array, factors, order=order, prefilter=False, grid_mode=False)


def aerated_lung(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The lung as far as it is aerated: mask voxels below ``AERATED_HU`` (on the slightly smoothed
    image) with the holes of each axial slice filled (vessels, airways, nodules inside the lung).

    The pleural margin is measured from this, not from the lung mask itself: a lung mask may
    reach further than the air does (``lung_mask.py`` closes each lung with a 6 mm ball, so dense
    dependent lung, subpleural opacities and the hilum's soft tissue lie inside it). Measured from
    such a mask, the margin admits the bright boundary between that dense rim and the aerated lung,
    a sheet parallel to the pleura that is not a fissure; on the real thorax CT it added some 1,400
    such points within 8 mm of the aerated lung's surface and took the left oblique fissure's
    support below the level a fit is kept at (Docs/lobes.md)."""
    smooth = ndimage.gaussian_filter(image, 1.0)
    aerated = (labels > 0) & (smooth < AERATED_HU)
    for k in range(aerated.shape[0]):
        if aerated[k].any():
            aerated[k] = ndimage.binary_fill_holes(aerated[k])
    return aerated


def find_fissure_evidence(hu: np.ndarray, lungs: np.ndarray, geometry, progress: Progress | None = None,
                          grid_mm: float = GRID_MM) -> FissureEvidence:
    """Sheet-like bright voxels inside the lungs (``hu`` and ``lungs`` on the LPS-oriented grid of
    ``geometry``, arrays (k, j, i))."""
    from skimage.feature import hessian_matrix, hessian_matrix_eigvals

    progress = ensure_progress(progress)
    empty = FissureEvidence(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0, dtype=np.uint8), grid_mm)
    if not lungs.any():
        return empty
    spacing_zyx = np.array(geometry.spacing[::-1], dtype=float)
    margin = int(np.ceil(8.0 / spacing_zyx.min()))
    box = bounding_box(lungs > 0, margin)
    progress.step(0.0, "fissure filter: resampling the lungs")
    image = _isotropic(np.clip(hu[box], -1000, 200).astype(np.float32), spacing_zyx, grid_mm, 1)
    labels = _isotropic(lungs[box], spacing_zyx, grid_mm, 0)
    inside = ndimage.distance_transform_edt(aerated_lung(image, labels)) * grid_mm >= PLEURA_MARGIN_MM
    progress.step(0.2, "fissure filter: Hessian eigen-analysis")
    elements = hessian_matrix(image, sigma=SIGMA_MM / grid_mm, order="rc", use_gaussian_derivatives=False)
    elements = [(e * (SIGMA_MM / grid_mm) ** 2).astype(np.float32) for e in elements]  # scale-normalised, HU
    eigen = hessian_matrix_eigvals(elements)  # decreasing: eigen[2] is the most negative
    l3, l2 = eigen[2], eigen[1]
    sheet = np.where((l3 < 0) & inside,
                     -l3 * np.exp(-((l2 / np.minimum(l3, -1e-6)) ** 2) / (2 * SHEET_ALPHA ** 2)), 0.0)
    sheet = sheet.astype(np.float32)
    del eigen, l3, l2
    progress.step(0.6, "fissure filter: keeping thin bright sheets")
    candidates = np.nonzero(sheet >= MIN_SHEETNESS)
    if candidates[0].size == 0:
        return empty
    if candidates[0].size > MAX_POINTS:
        order = np.argsort(sheet[candidates])[::-1][:MAX_POINTS]
        candidates = tuple(c[order] for c in candidates)
    hessians = np.empty((candidates[0].size, 3, 3), dtype=np.float64)
    (hzz, hzy, hzx, hyy, hyx, hxx) = elements
    for (a, b), h in zip(((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)), (hzz, hzy, hzx, hyy, hyx, hxx)):
        hessians[:, a, b] = hessians[:, b, a] = h[candidates]
    del elements
    values, vectors = np.linalg.eigh(hessians)
    normal_zyx = vectors[:, :, 0]  # eigh sorts ascending: column 0 belongs to the most negative value
    flat = (np.abs(values[:, 1]) <= MAX_RATIO * -values[:, 0]) & (np.abs(values[:, 2]) <= MAX_RATIO * -values[:, 0])
    position = np.stack(candidates, axis=1).astype(float)
    smooth = ndimage.gaussian_filter(image, 0.7)

    def sample(volume, where):
        return ndimage.map_coordinates(volume, where.T, order=1, mode="nearest")

    step = normal_zyx * (SIDE_MM / grid_mm)
    centre = sample(smooth, position)
    side_a = sample(smooth, position + step)
    side_b = sample(smooth, position - step)
    across_a = sample(sheet, position + normal_zyx)
    across_b = sample(sheet, position - normal_zyx)
    strength = sheet[candidates]
    along = [sample(sheet, position + sign * vectors[:, :, axis] * (SIDE_MM / grid_mm))
             for axis in (1, 2) for sign in (1.0, -1.0)]
    extends = np.min(along, axis=0) >= 0.5 * MIN_SHEETNESS
    keep = (flat & extends & (centre < CENTRE_MAX_HU) & (side_a < SIDE_MAX_HU) & (side_b < SIDE_MAX_HU)
            & (centre >= np.maximum(side_a, side_b)) & (centre - 0.5 * (side_a + side_b) >= MIN_CONTRAST_HU)
            & (strength >= across_a) & (strength >= across_b))
    progress.step(0.9, "fissure filter: evidence points")
    position, normal_zyx, strength = position[keep], normal_zyx[keep], strength[keep]
    lung = labels[tuple(np.round(position).astype(int).T)]
    # back to the original grid's index space, then LPS
    start = np.array([s.start for s in box], dtype=float)
    zyx_index = start + position * grid_mm / spacing_zyx
    ijk = zyx_index[:, ::-1]
    matrix = np.array(geometry.direction).reshape(3, 3) @ np.diag(geometry.spacing)
    lps = np.array(geometry.origin) + ijk @ matrix.T
    normal_xyz = np.array(geometry.direction).reshape(3, 3) @ normal_zyx[:, ::-1].T
    normal_xyz = normal_xyz.T
    normal_xyz *= np.where(normal_xyz[:, 2:3] < 0, -1.0, 1.0)
    evidence = FissureEvidence(lps, normal_xyz, strength.astype(np.float32), lung.astype(np.uint8), grid_mm)
    evidence = keep_large_sheets(evidence)
    progress.step(1.0, f"fissure filter: {len(evidence)} evidence points")
    return evidence


def keep_large_sheets(evidence: FissureEvidence, min_points: int = MIN_SHEET_POINTS) -> FissureEvidence:
    """Only evidence points in connected sheets of at least ``min_points`` points."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(evidence)
    if n == 0:
        return evidence
    pairs = cKDTree(evidence.points).query_pairs(SHEET_LINK_MM, output_type="ndarray")
    if len(pairs):
        agree = np.abs((evidence.normals[pairs[:, 0]] * evidence.normals[pairs[:, 1]]).sum(axis=1)) > SHEET_MIN_DOT
        pairs = pairs[agree]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return evidence.subset(np.bincount(labels)[labels] >= min_points)
