"""Bad outputs, hostile manifests, bad options and wrong documents (issue 12, points 2, 3, 5):
each refused with exit 2, one line naming the option or file and the problem, no traceback,
and nothing created, changed or removed in or outside --out (see bad_input_harness.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import SimpleITK as sitk
from bad_input_harness import refused, tmpfs
from test_ct_loading import small_ct

from DPOScoringLib.cli.main import example_reading_path


@pytest.fixture
def sandbox(tmp_path):
    folder = tmp_path / "case"
    folder.mkdir()
    return folder


def a_ct(folder: Path, name: str = "ct.nrrd") -> Path:
    path = folder / name
    sitk.WriteImage(small_ct(), str(path))
    return path


def truncated_ct(folder: Path) -> Path:
    path = folder / "cut.nii.gz"
    sitk.WriteImage(small_ct(), str(path))
    path.write_bytes(path.read_bytes()[:400])
    return path


# --- outputs (point 2) -----------------------------------------------------------------------------

def prepared(sandbox: Path, files: dict, argv: list) -> list:
    """Writes ``files`` (path below the sandbox -> text or bytes; a path ending in "/" is a folder)
    and returns ``argv`` with its placeholders filled: CT a readable CT, CUT a truncated one, CTS a
    folder holding one CT, READING the example reading, "./x" the sandbox's x."""
    for name, content in files.items():
        path = sandbox / name
        if name.endswith("/"):
            path.mkdir(parents=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    def ct_folder():
        (sandbox / "cts").mkdir()
        return a_ct(sandbox / "cts").parent

    fill = {"CT": lambda: a_ct(sandbox), "CUT": lambda: truncated_ct(sandbox), "CTS": ct_folder,
            "READING": example_reading_path}
    return [fill[item]() if item in fill else sandbox / item[2:] if item.startswith("./") else item
            for item in argv]


OUTPUTS = [
    # (name, files made first, command line, phrases the one line must hold)
    ("run --out under a regular file", {"notes.txt": "a file"},
     ["run", "CT", "--out", "./notes.txt/bundle", "--quiet"], ["notes.txt is a file, not a folder"]),
    ("run --out is an existing file", {"bundle": "a file where the bundle folder should go"},
     ["run", "CT", "--out", "./bundle", "--quiet"], ["bundle: is a file; a folder is expected"]),
    # checked first: the damaged CT is not even read (its error would come otherwise)
    ("run refuses an existing bundle before reading the CT", {"bundle/scores.json": "{}"},
     ["run", "CUT", "--out", "./bundle", "--quiet"], ["already holds a bundle", "--force"]),
    ("detect --out is a folder", {"out/": None},
     ["detect", "CT", "--out", "./out", "--quiet"], ["out: is a folder; a file name is expected"]),
    ("detect --out exists", {"c.json": "the reader's own file"},
     ["detect", "CUT", "--out", "./c.json", "--quiet"], ["c.json: already exists; not overwritten"]),
    ("detect --out in a missing folder", {},
     ["detect", "CT", "--out", "./nowhere/c.json", "--quiet"], ["folder", "nowhere does not exist"]),
    ("lobes --out exists", {"lobes.nrrd": "older lobes"},
     ["lobes", "CT", "--out", "./lobes.nrrd", "--quiet"], ["lobes.nrrd: already exists"]),
    ("lobes --points-out exists", {"points.json": "{}"},
     ["lobes", "CT", "--out", "./lobes.nrrd", "--points-out", "./points.json", "--quiet"],
     ["points.json: already exists"]),
    ("tally --out exists", {"scores.json": "earlier scores"},
     ["tally", "READING", "--out", "./scores.json"], ["scores.json: already exists"]),
    ("tally --out under a regular file", {"notes.txt": "a file"},
     ["tally", "READING", "--out", "./notes.txt/scores.json"], ["notes.txt is a file, not a folder"]),
    ("demo --out not empty", {"demo/mine.txt": "not the demo's"},
     ["demo", "--out", "./demo", "--quiet"], ["demo: is not empty", "--force"]),
    ("demo --out is a file", {"demo": "a file"}, ["demo", "--out", "./demo", "--quiet"], ["demo: is a file"]),
    ("batch --out is a file", {"out": "a file"}, ["batch", "CTS", "--out", "./out"], ["out: is a file"]),
]


@pytest.mark.parametrize("name,files,argv,phrases", OUTPUTS, ids=[o[0] for o in OUTPUTS])
def test_bad_output_is_refused(sandbox, monkeypatch, name, files, argv, phrases):
    refused(sandbox, prepared(sandbox, files, argv), phrases, monkeypatch)


def test_read_only_output_folder(sandbox, monkeypatch):
    ct = a_ct(sandbox)
    with tmpfs(sandbox / "ro", "ro,size=1m") as folder:
        refused(sandbox, ["run", ct, "--out", folder / "bundle", "--quiet"], ["not writable"], monkeypatch)
        refused(sandbox, ["detect", ct, "--out", folder / "c.json", "--quiet"], ["not writable"], monkeypatch)


def test_disk_too_small_is_refused_before_work(sandbox, monkeypatch):
    """A 1 MB disk cannot take a bundle (estimated from the CT's voxels after loading it)."""
    ct = a_ct(sandbox)
    with tmpfs(sandbox / "small", "size=1m") as folder:
        refused(sandbox, ["run", ct, "--out", folder / "bundle", "--quiet"], ["not enough free space", "MB needed"],
                monkeypatch)
        assert list(folder.iterdir()) == []


# --- manifests (point 3) ---------------------------------------------------------------------------

def manifest(folder: Path, text: str, name: str = "cases.csv") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


MANIFESTS = [
    ("parent traversal", "case_id,path\n../../escaped,ct.nrrd\n", ["line 2", "'../../escaped'", "not a path"]),
    ("bare parent", "case_id,path\n..,ct.nrrd\n", ["line 2", "contains '..'"]),
    ("dots inside", "case_id,path\nx..y,ct.nrrd\n", ["line 2", "contains '..'"]),
    ("absolute path", "case_id,path\n/tmp/escaped,ct.nrrd\n", ["line 2", "path separator"]),
    ("sub-folder", "case_id,path\na/b,ct.nrrd\n", ["line 2", "path separator"]),
    ("windows separator", "case_id,path\n..\\\\x,ct.nrrd\n", ["line 2", "path separator"]),
    ("unsafe characters", "case_id,path\nbad;rm -rf,ct.nrrd\n", ["line 2", "';'", "allowed are"]),
    ("hidden name", "case_id,path\n.hidden,ct.nrrd\n", ["line 2", "starts with a dot"]),
    ("empty case_id", "case_id,path\n,ct.nrrd\n", ["line 2", "is empty"]),
    ("repeated in another case", "case_id,path\nP1,ct.nrrd\np1,ct.nrrd\n", ["line 3", "is repeated"]),
    ("too long", "case_id,path\n" + "x" * 101 + ",ct.nrrd\n", ["line 2", "101 characters"]),
    ("windows device name", "case_id,path\nCON,ct.nrrd\n", ["line 2", "reserved device name"]),
    ("missing columns", "id,file\np1,ct.nrrd\n", ["needs the columns case_id and path"]),
    ("no cases", "case_id,path\n", ["needs the columns case_id and path (and at least one case)"]),
    ("column the batch writes", "case_id,path,status\np1,ct.nrrd,x\n", ["status", "written by the batch"]),
    ("more values than columns", "case_id,path\np1,ct.nrrd,extra\n", ["line 2", "more values"]),
    ("empty path", "case_id,path\np1,\n", ["line 2", "empty path"]),
]


@pytest.mark.parametrize("name,text,phrases", MANIFESTS, ids=[m[0] for m in MANIFESTS])
def test_hostile_or_broken_manifest_is_refused_and_nothing_is_written(sandbox, monkeypatch, name, text, phrases):
    a_ct(sandbox)
    path = manifest(sandbox, text)
    refused(sandbox, ["batch", path, "--out", sandbox / "out", "--workers", "1"], [str(path), *phrases], monkeypatch)
    assert not (sandbox / "out").exists() and not (sandbox.parent / "escaped").exists()


BATCH_INPUTS = [
    # (name, files made first, command line, phrases the one line must hold)
    ("binary manifest", {"cases.csv": b"\x00\x01\x02 not text"},
     ["batch", "./cases.csv", "--out", "./out"], ["is a binary file"]),
    ("CT file given as manifest", {}, ["batch", "CT", "--out", "./out"], ["is a CT file", "dpo-score run"]),
    ("missing manifest", {}, ["batch", "./absent.csv", "--out", "./out"], ["no such folder or manifest"]),
    ("folder without CTs", {"cts/readme.txt": "no CT here"},
     ["batch", "./cts", "--out", "./out"], ["holds no CT files"]),
]


@pytest.mark.parametrize("name,files,argv,phrases", BATCH_INPUTS, ids=[b[0] for b in BATCH_INPUTS])
def test_bad_batch_input_is_refused(sandbox, monkeypatch, name, files, argv, phrases):
    refused(sandbox, prepared(sandbox, files, argv), phrases, monkeypatch)


def test_folder_names_are_mapped_to_safe_case_ids(tmp_path):
    """File names cannot hold separators, but may hold spaces or ';': mapped, original kept."""
    from DPOScoringLib.audit.batch_manifest import case_folder, read_cases
    from DPOScoringLib.common.errors import DPOInputError

    for name in ("patient 1.nrrd", "p;2.nii.gz", "ok-3.mha"):
        (tmp_path / name).write_bytes(b"")
    cases = {c["case_id"]: c for c in read_cases(tmp_path)}
    assert set(cases) == {"patient_1", "p_2", "ok-3"}
    assert cases["patient_1"]["source_name"] == "patient 1.nrrd" and cases["ok-3"]["source_name"] == ""
    assert case_folder(tmp_path / "out", "ok-3") == (tmp_path / "out" / "ok-3").resolve()
    with pytest.raises(DPOInputError, match="'..'"):
        case_folder(tmp_path / "out", "..")
    (tmp_path / "patient_1.nrrd").write_bytes(b"")  # now two files map to one case_id
    with pytest.raises(DPOInputError, match="give the same case_id 'patient_1'"):
        read_cases(tmp_path)


# --- options (point 5) -----------------------------------------------------------------------------

OPTIONS = [
    ("demo --seed -1", ["demo", "--seed", "-1"], ["argument --seed", "-1 is outside 0 to 4294967295"]),
    ("demo --seed 1.5", ["demo", "--seed", "1.5"], ["argument --seed", "not a whole number"]),
    ("detect --seed-hu nan", ["detect", "CT", "--out", "c.json", "--seed-hu", "nan"],
     ["argument --seed-hu", "'nan' is not a finite number"]),
    ("detect --seed-hu inf", ["detect", "CT", "--out", "c.json", "--seed-hu", "inf"], ["argument --seed-hu"]),
    ("detect --seed-hu 50", ["detect", "CT", "--out", "c.json", "--seed-hu", "50"],
     ["argument --seed-hu", "50 is outside 100 to 3071"]),
    ("detect --grow-hu above default seed", ["detect", "CT", "--out", "c.json", "--grow-hu", "400"],
     ["argument --grow-hu", "must be below --seed-hu (300 HU)"]),
    ("detect --grow-hu above --seed-hu", ["detect", "CT", "--out", "c.json", "--seed-hu", "200", "--grow-hu", "250"],
     ["argument --grow-hu", "250 HU must be below --seed-hu (200 HU)"]),
    ("detect --grow-hu -500", ["detect", "CT", "--out", "c.json", "--grow-hu", "-500"], ["argument --grow-hu"]),
    ("batch --workers 0", ["batch", "cts", "--out", "out", "--workers", "0"], ["argument --workers", "0 is outside"]),
    ("batch --workers abc", ["batch", "cts", "--out", "out", "--workers", "abc"],
     ["argument --workers", "'abc' is not a whole number"]),
    ("run import without file", ["run", "CT", "--out", "b", "--lobe-method", "import"],
     ["argument --lobes-from: is required with --lobe-method import"]),
    ("run file without import", ["run", "CT", "--out", "b", "--lobes-from", "x.nrrd"],
     ["argument --lobes-from: is only used with --lobe-method import"]),
    ("lobes --weights with fissures", ["lobes", "CT", "--out", "l.nrrd", "--weights", "w"],
     ["argument --weights: is only used with --method lungmask"]),
    ("lobes --points-out is --out", ["lobes", "CT", "--out", "l.json", "--points-out", "l.json"],
     ["argument --points-out: is the same file as --out"]),
    ("run --reader empty", ["run", "CT", "--out", "b", "--reader", ""], ["argument --reader", "is empty"]),
    ("run --lobe-method unknown", ["run", "CT", "--out", "b", "--lobe-method", "magic"],
     ["argument --lobe-method", "invalid choice"]),
    ("detect without --out", ["detect", "CT"], ["the following arguments are required: --out"]),
]


@pytest.mark.parametrize("name,argv,phrases", OPTIONS, ids=[o[0] for o in OPTIONS])
def test_bad_option_is_refused_by_the_parser(sandbox, monkeypatch, name, argv, phrases):
    refused(sandbox, argv, phrases, monkeypatch)


# --- documents of the wrong kind ------------------------------------------------------------------

def test_deeply_nested_json(sandbox, monkeypatch):
    path = sandbox / "reading.json"
    path.write_text("[" * 100000 + "]" * 100000)
    refused(sandbox, ["tally", path], [str(path), "nested too deeply"], monkeypatch)


def test_candidates_file_passed_to_tally(sandbox, monkeypatch):
    path = sandbox / "candidates.json"
    path.write_text(json.dumps({"schema": "dpo-candidates/1", "candidates": []}))
    refused(sandbox, ["tally", path], [str(path), "is a candidates file (dpo-candidates/1), not a reading"],
            monkeypatch)
