"""A PO abutting the pleura where a rib touches the lung (issue 9, point 3; detection.bone_foci).

Each volume is built here, from geometry: lung (-850 HU) on one side of a plane, the chest wall
(40 HU) on the other, and a rib lying on the plane from the chest-wall side: a tube of elliptic
cross-section (14 x 8 mm, 58 mm long) running in the axial plane, a cortex 1.2 mm thick (1000 HU) around
marrow (250 HU), ending in the volume. The volume is blurred by a Gaussian point spread (sigma
0.45 mm) and given noise. POs are spheres painted with partial volume (phantom.implant_spheres).
The lung mask is the lung's side of the plane (the pipeline's mask reaches the chest wall, and
its edge overlaps a rib's surface by a voxel), less
a PO's voxels denser than -400 HU: an air threshold leaves a PO on the surface out of the mask,
as on the fibrosis phantom, so the PO has no core deep in the mask.
Every test checks first that its volume shows the situation it is about (the PO and the rib are
one structure at the grow threshold; no PO voxel more than a voxel deep in the lung mask).
"""

from __future__ import annotations

import cc3d
import edt
import numpy as np
from scipy import ndimage

from DPOScoringLib.detection.candidates import detect_candidates
from DPOScoringLib.synthetic.phantom import implant_spheres

PLEURA_X_MM = 30.0  # the lung is x < 30 mm; the rib lies on the plane, beyond it
RIB_Z_MM = 16.0  # the rib's axis: along y, at this height
RIB_Y_MM = (6.0, 64.0)  # where the rib runs (it ends inside the volume at both ends)
RIB_HALF_AXES_MM = (4.0, 7.0)  # half thickness across the wall (x) and half height (z)


def rib_volume(spacing, seed: int, noise_sd: float = 18.0):
    """(hu, rib) on a (k, j, i) grid of 32 x 70 x 48 mm: painted on a grid three times finer and
    averaged (partial volume), blurred, noise added; ``rib``: voxels whose centre is in the rib."""
    fine = 3
    shape = tuple(int(round(extent / s)) for extent, s in zip((32.0, 70.0, 48.0), spacing[::-1]))
    axes = [(np.arange(n * fine) + 0.5) * s / fine - 0.5 * s for n, s in zip(shape, spacing[::-1])]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    hu = np.where(x < PLEURA_X_MM, -850.0, 40.0).astype(np.float32)
    along = (y >= RIB_Y_MM[0]) & (y <= RIB_Y_MM[1])
    centre_x = PLEURA_X_MM + RIB_HALF_AXES_MM[0]

    def inside(a, b):
        return along & (((x - centre_x) / a) ** 2 + ((z - RIB_Z_MM) / b) ** 2 <= 1.0)

    cortex = 1.2
    hu[inside(*RIB_HALF_AXES_MM)] = 1000.0
    hu[inside(RIB_HALF_AXES_MM[0] - cortex, RIB_HALF_AXES_MM[1] - cortex)] = 250.0
    hu = hu.reshape(shape[0], fine, shape[1], fine, shape[2], fine).mean(axis=(1, 3, 5))
    rib = inside(*RIB_HALF_AXES_MM)[1::fine, 1::fine, 1::fine]
    sigma = np.array([min(0.45, 0.3 * spacing[2]), 0.45, 0.45]) / np.array(spacing[::-1])
    hu = ndimage.gaussian_filter(hu, sigma)
    hu += np.random.default_rng(seed).normal(0.0, noise_sd, hu.shape).astype(np.float32)
    return np.rint(hu).astype(np.int16), rib


def lung_mask(hu, spacing, po=None):
    """The lung's side of the plane, its edge overlapping the rib's surface by a voxel (as the
    pipeline's mask does on the fibrosis phantom); less, with ``po`` = (centre, diameter), the PO's voxels
    (within its radius + 1 mm) denser than -400 HU."""
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip(hu.shape, spacing[::-1])], indexing="ij")
    lungs = x < PLEURA_X_MM + spacing[0]
    if po is not None:
        centre, diameter = po
        near = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) <= diameter / 2.0 + 1.0
        lungs &= ~(near & (hu >= -400))
    return lungs.astype(np.uint8)


def detect(hu, spacing, lungs):
    return detect_candidates(hu, spacing, lungs, lps_of=lambda ijk: np.asarray(ijk) * spacing)


def po_on_rib(spacing, diameter, density, seed, gap_mm=0.0):
    """A PO in the lung touching the rib's lung-facing surface (or ``gap_mm`` from it), at the
    rib's mid-height and halfway along it."""
    hu, rib = rib_volume(spacing, seed)
    centre = np.array([PLEURA_X_MM - diameter / 2.0 - gap_mm, 35.0, RIB_Z_MM])
    implant_spheres(hu, spacing, (0, 0, 0), [(centre, diameter, density)], psf_sigma_mm=0.45)
    return hu, rib, centre


def assert_fused_and_not_deep(hu, spacing, lungs, centre, diameter):
    """The volume shows the case: the PO and the rib are one structure at 100 HU, and no PO
    voxel lies more than a voxel deep in the lung mask (the older split by depth misses it)."""
    labels = cc3d.connected_components(hu >= 100, connectivity=26)
    index = tuple(np.round(centre / np.array(spacing)).astype(int)[::-1])
    rib_index = tuple(np.round(np.array([PLEURA_X_MM + 0.6, 35.0, RIB_Z_MM]) / np.array(spacing)).astype(int)[::-1])
    assert labels[index] and labels[index] == labels[rib_index], "the PO is not fused with the rib"
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip(hu.shape, spacing[::-1])], indexing="ij")
    in_po = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) <= diameter / 2.0
    depth = edt.edt(lungs > 0, anisotropy=tuple(spacing[::-1]), black_border=False)
    assert depth[in_po].max() <= max(spacing[:2]) + 1e-6, "the PO has a core deep in the lung mask"


def test_a_po_brighter_than_the_rib_on_2mm_slices_is_a_candidate_and_the_rib_is_listed():
    """2 mm slices: a 2.4 mm PO of 1600 HU on the rib's surface stands out of the cortex above a
    saddle; it is found, measured as nodular, and the rib stays listed as bone."""
    spacing = (0.8, 0.8, 2.0)
    hu, _, centre = po_on_rib(spacing, 2.4, 1600.0, seed=3)
    lungs = lung_mask(hu, spacing, (centre, 2.4))
    assert_fused_and_not_deep(hu, spacing, lungs, centre, 2.4)
    result = detect(hu, spacing, lungs)
    assert [c.kind for c in result.candidates] == ["nodular"], [(c.kind, c.lps) for c in result.candidates]
    assert np.linalg.norm(np.asarray(result.candidates[0].lps) - centre) < 1.5
    assert any(e["reason"].startswith("bone or mediastinum") for e in result.excluded)


def test_a_po_joined_to_the_rib_only_by_blur_is_a_candidate_on_1mm_slices():
    """1 mm slices: a 2 mm PO of 800 HU 0.1 mm from the rib, dimmer than the cortex: its blur
    joins the rib's at 100 HU but not at 200 HU (a PO's seed level): found as nodular."""
    spacing = (0.8, 0.8, 1.0)
    hu, _, centre = po_on_rib(spacing, 2.0, 800.0, seed=4, gap_mm=0.1)
    lungs = lung_mask(hu, spacing, (centre, 2.0))
    assert_fused_and_not_deep(hu, spacing, lungs, centre, 2.0)
    index = tuple(np.round(centre / np.array(spacing)).astype(int)[::-1])
    labels = cc3d.connected_components(hu >= 200, connectivity=26)
    assert labels[index] and (labels == labels[index]).sum() < 20  # apart from the rib at 200 HU
    result = detect(hu, spacing, lungs)
    assert [c.kind for c in result.candidates] == ["nodular"], [(c.kind, c.lps) for c in result.candidates]
    assert np.linalg.norm(np.asarray(result.candidates[0].lps) - centre) < 1.5


def test_a_po_touching_the_rib_and_dimmer_than_its_cortex_is_a_candidate():
    """1 mm slices: a 1.8 mm PO of 900 HU touching the rib peaks below the cortex beside it and
    has no saddle at the seed level: only its shape tells it, standing out of the bone's surface
    into the lung. Found as nodular."""
    spacing = (0.8, 0.8, 1.0)
    hu, _, centre = po_on_rib(spacing, 1.8, 900.0, seed=4)
    lungs = lung_mask(hu, spacing, (centre, 1.8))
    assert_fused_and_not_deep(hu, spacing, lungs, centre, 1.8)
    index = np.round(centre / np.array(spacing)).astype(int)[::-1]
    near = hu[tuple(slice(i - 2, i + 3) for i in index)]
    labels = cc3d.connected_components(hu >= 200, connectivity=26)
    assert (labels == labels[tuple(index)]).sum() > 1000  # one with the rib at 200 HU
    assert near.max() > hu[tuple(index)] + 300  # the cortex beside it is brighter than the PO
    result = detect(hu, spacing, lungs)
    assert [c.kind for c in result.candidates] == ["nodular"], [(c.kind, c.lps) for c in result.candidates]
    assert np.linalg.norm(np.asarray(result.candidates[0].lps) - centre) < 1.5


def test_a_bone_bump_larger_than_a_po_gives_no_candidate():
    """A 6 mm half-sphere of bone (700 HU) on the rib's lung surface (an osteophyte-like bump)
    stands out into the lung but is larger than a PO can be (4 mm): no candidate."""
    for spacing in ((0.8, 0.8, 1.0), (0.8, 0.8, 2.0)):
        hu, _ = rib_volume(spacing, seed=5)
        bump = np.array([PLEURA_X_MM, 35.0, RIB_Z_MM])
        implant_spheres(hu, spacing, (0, 0, 0), [(bump, 6.0, 700.0)], psf_sigma_mm=0.45)
        result = detect(hu, spacing, lung_mask(hu, spacing, (bump, 6.0)))
        assert result.candidates == [], (spacing, [(c.kind, c.lps, c.peak_hu) for c in result.candidates])


def test_a_rib_alone_gives_no_candidate():
    """The rib with its ends (the cortex's corners there are bright knobs) and noise, at 1 and
    2 mm slices and several noise draws: listed as bone, never a candidate."""
    for spacing in ((0.8, 0.8, 1.0), (0.8, 0.8, 2.0)):
        for seed in range(3):
            hu, rib = rib_volume(spacing, seed, noise_sd=25.0)
            lungs = lung_mask(hu, spacing)
            assert (cc3d.connected_components(hu >= 100, connectivity=26) > 0)[rib].all()
            result = detect(hu, spacing, lungs)
            assert result.candidates == [], (spacing, seed, [(c.kind, c.lps, c.peak_hu) for c in result.candidates])
            assert any(e["reason"].startswith("bone or mediastinum") for e in result.excluded)
