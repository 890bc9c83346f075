"""``dpo-score detect`` as a user runs it: the candidates file, its provenance and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from DPOScoringLib.common.errors import DPOInputError
from DPOScoringLib.ct.ct_image import sha256_of_files
from DPOScoringLib.detection.candidates_file import CANDIDATES_SCHEMA, REQUIRED_KEYS, load_candidates
from DPOScoringLib.synthetic.phantom import PhantomSpec, generate_phantom, write_phantom


@pytest.fixture(scope="module")
def thick_phantom(tmp_path_factory):
    spec = PhantomSpec(fov_mm=(200.0, 170.0, 180.0), spacing=(0.9, 0.9, 2.5), seed=4, n_po=12)
    return write_phantom(generate_phantom(spec), tmp_path_factory.mktemp("thick"))


def detect(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "DPOScoringLib", "detect", *map(str, args)],
                          capture_output=True, text=True, encoding="utf-8", timeout=timeout)


def test_detect_writes_candidates_with_provenance_and_warnings(thick_phantom, tmp_path):
    out = tmp_path / "candidates.json"
    result = detect(thick_phantom["ct"], "--lobes", thick_phantom["lobes"], "--out", out)
    assert result.returncode == 0, result.stderr
    document = load_candidates(out)
    assert document["schema"] == CANDIDATES_SCHEMA
    assert document["input"]["sha256"] == sha256_of_files([thick_phantom["ct"]])
    assert document["parameters"]["seed_hu"] == 300.0 and "contrast_mode" in document["parameters"]
    assert any("2.50 mm > 1.5 mm" in w for w in document["warnings"])
    assert "warning: slice thickness" in result.stderr and "[100%]" in result.stderr
    assert document["candidates"], "the phantom's POs should be found"
    for candidate in document["candidates"]:
        assert set(REQUIRED_KEYS) <= set(candidate)
        assert candidate["status"] == "pending" and candidate["lobe"] in (
            "RUL", "RML", "RLL", "LUL", "LING", "LLL")
        assert len(candidate["lps"]) == 3 and len(candidate["ijk"]) == 3
    ids = [c["id"] for c in document["candidates"]]
    assert len(set(ids)) == len(ids)


def test_ijk_refer_to_the_file_as_given(thick_phantom, tmp_path):
    image = sitk.ReadImage(str(thick_phantom["ct"]))
    flipped = sitk.Flip(image, [True, False, False])
    path = tmp_path / "flipped.nrrd"
    sitk.WriteImage(flipped, str(path))
    out = tmp_path / "c.json"
    assert detect(path, "--out", out, "--quiet").returncode == 0
    for candidate in load_candidates(out)["candidates"]:
        back = flipped.TransformContinuousIndexToPhysicalPoint(candidate["ijk"])
        assert np.allclose(back, candidate["lps"], atol=0.05)


def test_existing_output_is_never_overwritten_silently(thick_phantom, tmp_path):
    out = tmp_path / "candidates.json"
    out.write_text("the reader's own file")
    result = detect(thick_phantom["ct"], "--out", out, "--quiet")
    assert result.returncode == 2 and "already exists" in result.stderr
    assert out.read_text(encoding="utf-8") == "the reader's own file"


def test_lobe_map_on_another_grid_is_refused(thick_phantom, tmp_path):
    lobes = sitk.ReadImage(str(thick_phantom["lobes"]))
    path = tmp_path / "lobes_small.nrrd"
    sitk.WriteImage(lobes[:-2, :, :], str(path))
    result = detect(thick_phantom["ct"], "--lobes", path, "--out", tmp_path / "c.json", "--quiet")
    assert result.returncode == 2 and "does not match the CT" in result.stderr
    assert "Traceback" not in result.stderr


def test_lobe_map_with_foreign_values_is_refused(thick_phantom, tmp_path):
    lobes = sitk.ReadImage(str(thick_phantom["lobes"]))
    path = tmp_path / "lobes_ts.nrrd"
    sitk.WriteImage(lobes + 9, str(path))  # e.g. TotalSegmentator's 10-14 numbering
    result = detect(thick_phantom["ct"], "--lobes", path, "--out", tmp_path / "c.json", "--quiet")
    assert result.returncode == 2 and "label values" in result.stderr


def test_corrupt_candidates_file_is_named(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"schema": CANDIDATES_SCHEMA, "candidates": [{"id": "c1"}]}))
    with pytest.raises(DPOInputError, match=r"candidates\[0\]: lacks lps"):
        load_candidates(path)
