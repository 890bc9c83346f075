"""Where a library function replaced a hand-written one (issue 13), checked on scenes whose answer
is known by construction: fragments linked through scipy's connected components over KD-tree pairs,
the pleura distance through a KD-tree query, the detector's crop through voxel_boxes."""

from __future__ import annotations

import numpy as np

from DPOScoringLib.detection.candidates import _linked_groups
from DPOScoringLib.detection.pleura_geometry import LungGeometry


def _blob(centre, n=5):
    return np.asarray(centre, dtype=float) + np.linspace(-0.5, 0.5, n)[:, None] * [1.0, 0.0, 0.0]


def test_fragments_within_the_gap_are_linked_and_chains_count():
    regions = [_blob((0, 0, 0)), _blob((0, 1.5, 0)), _blob((0, 3.0, 0)),  # a chain: 0-1, 1-2 (0-2 is 3 mm)
               _blob((0, 20, 0)),                                         # alone
               _blob((10, 0, 0)), _blob((10, 0, 1.8))]                     # a pair
    assert _linked_groups(regions, list(range(6)), gap_mm=2.0) == [[0, 1, 2], [4, 5]]
    assert _linked_groups(regions, [0, 2, 3], gap_mm=2.0) == []          # without 1 the chain breaks
    assert _linked_groups(regions, [5, 4], gap_mm=2.0) == [[5, 4]]        # in the order given
    assert _linked_groups(regions, [3], gap_mm=2.0) == []


def test_distance_to_the_pleura_of_a_round_finding_is_measured_from_its_centre():
    lungs = np.zeros((40, 40, 40), dtype=np.uint8)
    lungs[:, :, :30] = 1                       # the lung ends at i = 29; i = 30 is outside
    geometry = LungGeometry(lungs, (1.0, 1.0, 1.0))
    region = np.ones((1, 1, 1), dtype=bool)
    for i in (26, 27, 28):  # within the fine search (gaps beyond 5 mm are estimated on a 4 mm grid)
        centre = (20.0, 20.0, float(i))
        gap = geometry.distance_to_pleura_mm(region, (20, 20, i), 1, centre_kji=centre, radius_mm=1.0)
        # nearest outside voxel centre at i = 30: (30 - i) mm, less half a voxel, less the radius
        assert np.isclose(gap, max(30 - i - 0.5 - 1.0, 0.0)), (i, gap)
    # the edge of a finding of voxels: nearest voxel to the nearest outside voxel, less a voxel
    block = np.ones((1, 1, 3), dtype=bool)
    assert np.isclose(geometry.distance_to_pleura_mm(block, (20, 20, 24), 1), 30 - 26 - 1.0)
