"""Measuring one candidate on a small crop around it: size (RECIST short and long axis, spec
section 3), volume, HU, centre, slices, thickness and shape (nodular / dendriform / large).

Shape (spec section 3: "dendriform (branching structure on contiguous slices)"): dendriform when
branching (a junction in its 3-D skeleton, or, where thick slices blur a side branch into the
trunk, part of it, followed down to a quarter of its height, standing off its axis by more than a
branch's radius), thin (< 4 mm thick), at
least 10 mm long and over at least three contiguous slices. A straight line without a branch stays
nodular, however long.

Sizes are measured at half maximum: the boundary is the contour where the CT value crosses
halfway between the local background (median of a shell around the finding) and its peak. This
is the usual way to size small objects blurred by the scanner's point spread; the axial contour
is found with sub-pixel accuracy (marching squares).
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import edt
import numpy as np
from scipy import ndimage
from skimage import measure, morphology

LARGE_SHORT_AXIS_MM = 4.0
DENDRIFORM_MIN_EXTENT_MM = 10.0
DENDRIFORM_MAX_THICKNESS_MM = 4.0
DENDRIFORM_MIN_SLICES = 3


@dataclass
class Measurement:
    centre_kji: np.ndarray  # continuous index in the crop's parent array
    peak_hu: float
    mean_hu: float
    background_hu: float
    volume_mm3: float
    short_axis_mm: float
    long_axis_mm: float
    axial_slice: int  # index (k) of the slice where the long axis was measured
    slices: int
    thickness_mm: float
    extent_mm: float
    branch_points: int
    region: np.ndarray  # bool mask in the crop: the half-maximum region
    kind: str


def _shell(mask: np.ndarray, inner: int, outer: int) -> np.ndarray:
    grown = ndimage.binary_dilation(mask, iterations=outer)
    return grown & ~ndimage.binary_dilation(mask, iterations=inner) if inner else grown & ~mask


def axial_diameters(values2d: np.ndarray, level: float, region2d: np.ndarray, background: float,
                    spacing_xy) -> tuple[float, float]:
    """(long, short) axis in mm of the half-maximum contour on one axial slice: the longest
    diameter, and the largest diameter perpendicular to it (RECIST)."""
    masked = np.where(ndimage.binary_dilation(region2d, iterations=1), values2d, background)
    padded = np.pad(masked, 1, constant_values=background)
    contours = measure.find_contours(padded, level)
    if not contours:
        return 0.0, 0.0
    points = np.concatenate(contours) - 1.0  # (row, col) in pixels
    mm = points * np.array([spacing_xy[1], spacing_xy[0]])
    if len(mm) > 400:
        mm = mm[np.linspace(0, len(mm) - 1, 400).astype(int)]
    differences = mm[:, None, :] - mm[None, :, :]
    distances = np.einsum("ijk,ijk->ij", differences, differences)
    a, b = np.unravel_index(np.argmax(distances), distances.shape)
    long_axis = float(np.sqrt(distances[a, b]))
    if long_axis == 0.0:
        return 0.0, 0.0
    direction = (mm[b] - mm[a]) / long_axis
    perpendicular = np.array([-direction[1], direction[0]])
    projection = mm @ perpendicular
    return long_axis, float(projection.max() - projection.min())


def principal_axes(points_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points about their mean, eigenvalues ascending, eigenvectors as columns) of a point set:
    the last column is the direction along which it is longest."""
    centred = points_mm - points_mm.mean(axis=0)
    eigenvalues, vectors = np.linalg.eigh(np.cov(centred.T))
    return centred, eigenvalues, vectors


def branches_off_axis(points_mm: np.ndarray) -> bool:
    """Branching seen as shape when the skeleton cannot show it (thick slices blur a side branch
    into the trunk, or the branches broke into pieces): some of the structure stands off the line
    through it (its principal axis) by more than a dendriform branch's radius (half
    ``DENDRIFORM_MAX_THICKNESS_MM``). A straight rod stays within its radius of its axis."""
    if len(points_mm) < 4:
        return False
    centred, _, vectors = principal_axes(points_mm)
    axis = vectors[:, -1]
    off_axis = np.linalg.norm(centred - np.outer(centred @ axis, axis), axis=1)
    return float(off_axis.max()) > 0.5 * DENDRIFORM_MAX_THICKNESS_MM


def _faint_extent(values: np.ndarray, component: np.ndarray, peak_index, background: float,
                  peak: float) -> np.ndarray:
    """The structure down to a quarter of its height above the background, near it (within 3
    voxels): thin branches that partial volume (thick slices) keeps below the half maximum."""
    level = background + 0.25 * (peak - background)
    near = ndimage.binary_dilation(component, iterations=3)
    labels = cc3d.connected_components((values >= level) & near, connectivity=26)
    return labels == labels[peak_index] if labels[peak_index] else component


def skeleton_branch_points(region: np.ndarray) -> int:
    """Number of junctions in the 3-D skeleton of a region (0 for a blob, a rod or a curve)."""
    skeleton = morphology.skeletonize(region)
    if skeleton.sum() < 3:
        return 0
    neighbours = ndimage.convolve(skeleton.astype(np.uint8), np.ones((3, 3, 3), np.uint8),
                                  mode="constant") - 1
    junctions = skeleton & (neighbours >= 3)
    return int(cc3d.connected_components(junctions, connectivity=26).max()) if junctions.any() else 0


def measure_candidate(crop: np.ndarray, component: np.ndarray, spacing) -> Measurement:
    """``crop``: HU around the candidate; ``component``: its voxels (bool, same shape);
    ``spacing``: (x, y, z) mm."""
    spacing_kji = np.array(spacing[::-1], dtype=float)
    values = crop.astype(np.float32)
    peak_index = np.unravel_index(np.argmax(np.where(component, values, -np.inf)), crop.shape)
    peak = float(values[peak_index])
    shell = _shell(component, 1, 3)
    background = float(np.median(values[shell])) if shell.any() else -850.0
    level = background + 0.5 * (peak - background)
    allowed = ndimage.binary_dilation(component, iterations=1)
    above = (values >= level) & allowed
    labels = cc3d.connected_components(above, connectivity=26)
    region = labels == labels[peak_index] if labels[peak_index] else component.copy()
    weights = np.clip(values - background, 0.0, None) * region
    total = float(weights.sum())
    centre = (np.array(ndimage.center_of_mass(weights)) if total > 0
              else np.array(np.nonzero(region)).mean(axis=1))
    voxel = float(np.prod(spacing_kji))
    best = (0.0, 0.0, int(peak_index[0]))
    for k in np.nonzero(region.any(axis=(1, 2)))[0]:
        long_axis, short_axis = axial_diameters(values[k], level, region[k], background, spacing)
        if long_axis > best[0]:
            best = (long_axis, short_axis, int(k))
    coords = np.array(np.nonzero(region)).T * spacing_kji
    extent = float(np.sqrt(((coords.max(axis=0) - coords.min(axis=0) + spacing_kji) ** 2).sum()))
    slices = int(region.any(axis=(1, 2)).sum())
    long_enough = extent >= DENDRIFORM_MIN_EXTENT_MM  # only then can it be dendriform
    branches = skeleton_branch_points(region) if long_enough else 0
    thickness = (2.0 * float(edt.edt(np.pad(region, 1), anisotropy=tuple(spacing_kji)).max())
                 if long_enough else min(best[1], extent))
    branching = branches >= 1 or (long_enough and branches_off_axis(
        np.argwhere(_faint_extent(values, component, peak_index, background, peak)) * spacing_kji))
    if (branching and extent >= DENDRIFORM_MIN_EXTENT_MM and slices >= DENDRIFORM_MIN_SLICES
            and thickness < DENDRIFORM_MAX_THICKNESS_MM):
        kind = "dendriform"
    elif best[1] >= LARGE_SHORT_AXIS_MM:
        kind = "large_calcified"
    else:
        kind = "nodular"
    return Measurement(
        centre_kji=centre, peak_hu=peak, mean_hu=float(values[region].mean()), background_hu=background,
        volume_mm3=float(region.sum()) * voxel, short_axis_mm=best[1], long_axis_mm=best[0],
        axial_slice=best[2], slices=slices, thickness_mm=thickness, extent_mm=extent,
        branch_points=branches, region=region, kind=kind)
