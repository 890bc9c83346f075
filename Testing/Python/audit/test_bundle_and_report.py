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
from html.parser import HTMLParser

import numpy as np
import pandas
import pytest
import SimpleITK as sitk
import slicerio
from PIL import Image

from DPOScoringLib.audit.bundle import BUNDLE_FILES
from DPOScoringLib.ct.ct_image import sha256_of_files
from DPOScoringLib.lobes.lobe_files import read_lobe_source, to_spec_labels
from DPOScoringLib.rules.reading import parse_reading
from DPOScoringLib.rules.scoring import score_reading


def dpo_score(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "DPOScoringLib", *map(str, args)], capture_output=True,
                          text=True, encoding="utf-8", timeout=timeout)


@pytest.fixture(scope="module")
def run_result(phantom_2mm, tmp_path_factory):
    out = tmp_path_factory.mktemp("cases") / "case-1"
    result = dpo_score("run", phantom_2mm.paths["ct"], "--out", out, "--reader", "reader-7")
    assert result.returncode == 0, result.stderr
    return out, phantom_2mm, result


@pytest.fixture(scope="module")
def bundle(run_result):
    return run_result[:2]


def test_bundle_holds_every_file_and_its_provenance(bundle):
    out, phantom = bundle
    for name in BUNDLE_FILES + ("report.html",):
        assert (out / name).is_file(), name
    provenance = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
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
    reading = json.loads((out / "reading.json").read_text(encoding="utf-8"))
    rows = list(csv.DictReader(io.StringIO((out / "findings.csv").read_text(encoding="utf-8"))))
    assert [r["id"] for r in rows] == [f["id"] for f in reading["findings"]]
    assert all(r["status"] == "pending" for r in rows)
    table = pandas.read_csv(out / "findings.csv")
    assert list(table["id"]) == [f["id"] for f in reading["findings"]]
    assert np.allclose(table[["x_lps", "y_lps", "z_lps"]].to_numpy(), [f["lps"] for f in reading["findings"]])
    scores = json.loads((out / "scores.json").read_text(encoding="utf-8"))
    recomputed = score_reading(parse_reading(reading))
    assert {k: v for k, v in scores.items() if k != "lobe_volumes_ml"} == json.loads(json.dumps(recomputed))


def test_bundle_markups_load_in_slicer_with_statuses(bundle):
    slicer = pytest.importorskip("slicer", reason="slicer-core is installed by the test setup (make test)")
    from DPOScoringLib.mrml.mrml_logic import DPOScoringMRMLLogic, create_headless_scene

    out, _ = bundle
    scene = create_headless_scene()
    markups = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    storage = scene.AddNewNodeByClass("vtkMRMLMarkupsJsonStorageNode")
    storage.SetFileName(str(out / "candidates.mrk.json"))
    assert storage.ReadData(markups)
    reading = json.loads((out / "reading.json").read_text(encoding="utf-8"))
    records = DPOScoringMRMLLogic(scene).records(markups)
    assert [r["id"] for r in records] == [f["id"] for f in reading["findings"]]
    assert all(r["status"] == "pending" for r in records) and markups.GetNthControlPointLocked(0)
    del slicer


def test_existing_bundle_is_never_overwritten_silently(bundle):
    out, phantom = bundle
    before = (out / "provenance.json").read_text(encoding="utf-8")
    result = dpo_score("run", phantom.paths["ct"], "--out", out, "--quiet")
    assert result.returncode == 2 and "already holds a bundle" in result.stderr
    assert (out / "provenance.json").read_text(encoding="utf-8") == before


def test_run_ends_with_the_scores_summary_and_progress_names_the_stages(run_result):
    out, _, result = run_result
    scores = json.loads((out / "scores.json").read_text(encoding="utf-8"))
    pending = scores["findings"]["pending"]
    assert pending > 0
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"R {scores['right_total']} / L {scores['left_total']} ")
    assert f"PROVISIONAL: reader reader-7, {pending} pending" in first and "complete" not in first
    assert "ILD extent not assessed" in first
    assert "\nnext:\n" in result.stdout and f"review the {pending} pending candidates" in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    stages = [re.match(r"\[\s*\d+%\] ([^:]+): \S", line).group(1) for line in lines]
    assert {"CT", "lungs", "lobes (fissures)", "detection", "report", "bundle"} <= set(stages), lines


def test_quiet_run_prints_nothing(phantom_2mm, tmp_path):
    result = dpo_score("run", phantom_2mm.paths["ct"], "--out", tmp_path / "case", "--quiet")
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    assert (tmp_path / "case" / "report.html").is_file()


def test_report_is_self_contained(bundle):
    out, _ = bundle
    page = (out / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r'<img alt="[^"]*" src="([^"]+)"', page)
    reading = json.loads((out / "reading.json").read_text(encoding="utf-8"))
    assert len(sources) == 4 + len(reading["findings"])  # 3 axial, coronal MIP, gallery (the chart is SVG)
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
                         encoding="utf-8",
                         timeout=120).stdout
    loaded = re.search(r'data-images="(\d+) loaded, (\d+) broken"', dom)
    assert loaded and int(loaded.group(1)) > 5 and loaded.group(2) == "0"
    check_rendered_text(dom, out)
    shot = tmp_path / "report.png"
    subprocess.run(flags + ["--window-size=1200,1600", f"--screenshot={shot}", (out / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (1600, 1200) and pixels.std() > 20  # text, tables and images, not a blank page
    pdf = tmp_path / "report.pdf"
    subprocess.run(flags + ["--no-pdf-header-footer", f"--print-to-pdf={pdf}", (out / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    boxes = {tuple(round(float(v)) for v in box.split()) for box in
             re.findall(rb"/MediaBox\s*\[([^\]]*)\]", pdf.read_bytes())}
    assert boxes == {(0, 0, 595, 842)}  # A4 in points from the print stylesheet (Chromium's default is Letter)


class _Text(HTMLParser):
    """The text a reader sees, per element id and in full (scripts and styles left out)."""

    def __init__(self):
        super().__init__()
        self.parts, self.skip, self.bars = [], 0, {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "style"):
            self.skip += 1
        if tag == "g" and attrs.get("class") == "bar":
            self.bars[attrs["data-lobe"]] = {k[5:]: int(v) for k, v in attrs.items()
                                             if k in ("data-counted", "data-excluded", "data-pending")}
        if tag in ("tr", "p", "div", "li", "figcaption", "h2"):
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)

    @property
    def text(self):
        return re.sub(r"[ \t]+", " ", "".join(self.parts))


def check_rendered_text(dom: str, out):
    """What headless Chromium rendered, against the bundle's own files (re-derived here)."""
    parser = _Text()
    parser.feed(dom)
    text = parser.text
    reading = json.loads((out / "reading.json").read_text(encoding="utf-8"))
    findings = reading["findings"]
    assert f"PROVISIONAL: reader reader-7, {len(findings)} pending" in text  # nothing decided yet
    fissures = json.loads((out / "provenance.json").read_text(encoding="utf-8"))["lobes"]["fissures"]
    support = re.search(r"Fissures supported by the image .*?: (.*?)\.", text, re.S).group(1)
    for item in fissures.values():  # every fissure with the share of it the image supports
        assert f"{item['name']} {item['confidence']:.0%}" in " ".join(support.split())
    assert re.search(r"ILD extent \(0-18\)\s*not assessed", text)
    assert "counted (NNPOL)" in text and "confirmed, not counted: dendriform lobe" in text and "nodular POs" in text
    pending = {code: 0 for code in ("RUL", "RML", "RLL", "LUL", "LING", "LLL")}
    for f in findings:
        if f["kind"] == "nodular" and f.get("short_axis_mm", 0) < 4.0 and f["lobe"] in pending:
            pending[f["lobe"]] += 1
    for f in findings:  # spec section 3: a lobe with dendriform PO counts no nodules (provisionally too)
        if f["kind"] == "dendriform" and f["lobe"] in pending:
            pending[f["lobe"]] = 0
    assert {code: bar["pending"] for code, bar in parser.bars.items()} == pending
    assert all(bar["counted"] == 0 for bar in parser.bars.values())  # nothing confirmed
    assert len(re.findall(r"definition [12]\s*(default|total|lobe|each-lung): ", text)) == 5
    # every overview caption names its slice position and exactly the candidates within 5 mm of it
    captions = re.findall(r"z = ([+-][\d.]+) mm .*?candidates within 5 mm: ([\d, ]+|none)", text)
    assert len(captions) == 3
    for z, listed in captions:
        near = {n for n, f in enumerate(findings, 1) if abs(f["lps"][2] - float(z)) <= 5.0 + 1e-6}
        shown = set() if listed == "none" else {int(v) for v in listed.split(",")}
        assert shown == near, (z, shown, near)
    for number, finding in enumerate(findings, 1):
        assert re.search(rf"\b{number} · {finding['id']} – .*?pending", text), finding["id"]
        assert f"{finding['lobe']} (" in text
    assert "large_calcified" not in text and "def1=default,def2" in text  # code names only as the policy id
