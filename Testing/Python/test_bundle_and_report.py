"""`dpo-score run`: the case bundle read back by independent readers, and the report opened in a
real headless browser."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas
import pytest
import SimpleITK as sitk
import slicerio
from PIL import Image

from DPOScoringLib.bundle import BUNDLE_FILES
from DPOScoringLib.ct_image import sha256_of_files
from DPOScoringLib.lobe_files import read_lobe_source, to_spec_labels
from DPOScoringLib.reading import parse_reading
from DPOScoringLib.scoring import score_reading


def dpo_score(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "DPOScoringLib", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def bundle(phantom_2mm, tmp_path_factory):
    out = tmp_path_factory.mktemp("cases") / "case-1"
    result = dpo_score("run", phantom_2mm.paths["ct"], "--out", out, "--reader", "reader-7", "--quiet")
    assert result.returncode == 0, result.stderr
    return out, phantom_2mm


def test_bundle_holds_every_file_and_its_provenance(bundle):
    out, phantom = bundle
    for name in BUNDLE_FILES + ("report.html",):
        assert (out / name).is_file(), name
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["input"]["sha256"] == sha256_of_files([phantom.paths["ct"]])
    assert provenance["reader"] == "reader-7" and provenance["software"]["version"]
    assert provenance["parameters"]["detection"]["seed_hu"] == 300.0
    assert provenance["lobes"]["method"] == "fissures"
    assert not list(out.parent.glob(".*partial"))


def test_bundle_round_trip_with_independent_readers(bundle):
    out, _ = bundle
    labelmap = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "lobes.nrrd")))
    image, mapping, _ = read_lobe_source(out / "lobes.seg.nrrd")
    from_segmentation, _ = to_spec_labels(sitk.GetArrayFromImage(image), mapping)
    assert np.array_equal(labelmap, from_segmentation) and set(np.unique(labelmap)) == set(range(7))
    segmentation = slicerio.read_segmentation(str(out / "lobes.seg.nrrd"))  # Slicer's own reader package
    assert [s["name"] for s in segmentation["segments"]][4] == "lingula"
    assert np.array_equal(segmentation["voxels"].transpose(2, 1, 0), labelmap)
    reading = json.loads((out / "reading.json").read_text())
    rows = list(csv.DictReader(io.StringIO((out / "findings.csv").read_text())))
    assert [r["id"] for r in rows] == [f["id"] for f in reading["findings"]]
    assert all(r["status"] == "pending" for r in rows)
    table = pandas.read_csv(out / "findings.csv")
    assert list(table["id"]) == [f["id"] for f in reading["findings"]]
    assert np.allclose(table[["x_lps", "y_lps", "z_lps"]].to_numpy(), [f["lps"] for f in reading["findings"]])
    scores = json.loads((out / "scores.json").read_text())
    recomputed = score_reading(parse_reading(reading))
    assert {k: v for k, v in scores.items() if k != "lobe_volumes_ml"} == json.loads(json.dumps(recomputed))


def test_bundle_markups_load_in_slicer_with_statuses(bundle):
    slicer = pytest.importorskip("slicer", reason="slicer-core is installed by the test setup (make test)")
    from DPOScoringLib.mrml_logic import DPOScoringMRMLLogic, create_headless_scene

    out, _ = bundle
    scene = create_headless_scene()
    markups = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    storage = scene.AddNewNodeByClass("vtkMRMLMarkupsJsonStorageNode")
    storage.SetFileName(str(out / "candidates.mrk.json"))
    assert storage.ReadData(markups)
    reading = json.loads((out / "reading.json").read_text())
    records = DPOScoringMRMLLogic(scene).records(markups)
    assert [r["id"] for r in records] == [f["id"] for f in reading["findings"]]
    assert all(r["status"] == "pending" for r in records) and markups.GetNthControlPointLocked(0)
    del slicer


def test_existing_bundle_is_never_overwritten_silently(bundle):
    out, phantom = bundle
    before = (out / "provenance.json").read_text()
    result = dpo_score("run", phantom.paths["ct"], "--out", out, "--quiet")
    assert result.returncode == 2 and "already holds a bundle" in result.stderr
    assert (out / "provenance.json").read_text() == before


def test_report_is_self_contained(bundle):
    out, _ = bundle
    page = (out / "report.html").read_text()
    sources = re.findall(r'<img alt="[^"]*" src="([^"]+)"', page)
    reading = json.loads((out / "reading.json").read_text())
    assert len(sources) == 4 + 1 + len(reading["findings"])  # 3 axial, coronal MIP, bars, gallery
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).verify()
    assert "http://" not in page and "https://" not in page
    assert "def1=default" in page and "thin-section CT recommended" in page


def test_report_renders_in_headless_chromium(bundle, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "make test installs Debian's chromium for this test"
    out, _ = bundle
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run(flags + ["--dump-dom", (out / "report.html").as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    loaded = re.search(r'data-images="(\d+) loaded, (\d+) broken"', dom)
    assert loaded and int(loaded.group(1)) > 5 and loaded.group(2) == "0"
    shot = tmp_path / "report.png"
    subprocess.run(flags + ["--window-size=1200,1600", f"--screenshot={shot}", (out / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (1600, 1200) and pixels.std() > 20  # text, tables and images, not a blank page
