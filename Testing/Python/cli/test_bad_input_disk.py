"""Fault injection: a disk that fills up while outputs are written (issue 12, point 2).

A real full disk: a small tmpfs mounted here (root only; skipped with the reason where mount is
refused). What must hold: one line naming the output, exit 2 through the CLI, nothing
half-written left behind (no ``.partial`` folder, no ``.part`` file, no truncated
``lobes.nrrd``), and an earlier result untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from bad_input_harness import refused, snapshot

from DPOScoringLib.audit.bundle import write_bundle
from DPOScoringLib.common import safe_files
from DPOScoringLib.common.errors import DPOOutputError
from DPOScoringLib.common.safe_files import atomic_write_bytes


@contextlib.contextmanager
def tmpfs(folder: Path, size: str):
    folder.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                            capture_output=True, text=True, encoding="utf-8")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'not root'})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


class FakeCT:
    """Only what ``write_bundle`` reads from a CT: its image grid and spacing."""

    def __init__(self, shape):
        self.image = sitk.Image(shape[2], shape[1], shape[0], sitk.sitkInt16)
        self.image.SetSpacing((1.0, 1.0, 1.0))
        self.spacing = (1.0, 1.0, 1.0)


def bundle_inputs(shape=(64, 64, 64)):
    rng = np.random.default_rng(3)
    lobes = rng.integers(0, 7, size=shape).astype(np.uint8)  # noise: compresses to ~40 % (the disk fills)
    reading = {"schema": "dpo-reading/1", "findings": []}
    return FakeCT(shape), lobes, reading, {"total": 0}, {"schema": "dpo-provenance/1"}


def test_bundle_on_a_disk_that_fills_leaves_nothing(tmp_path):
    ct, lobes, reading, scores, provenance = bundle_inputs()
    with tmpfs(tmp_path / "disk", "160k") as disk:
        with pytest.raises(DPOOutputError) as caught:
            write_bundle(disk / "bundle", ct, lobes, reading, scores, provenance)
        message = str(caught.value)
        assert message.startswith(str(disk / "bundle")) and "the disk is full" in message
        assert "nothing was left half-written" in message and "\n" not in message
        assert list(disk.iterdir()) == []  # no bundle, no .bundle.partial, no truncated lobes.nrrd


def test_replacing_a_bundle_on_a_full_disk_keeps_the_old_one(tmp_path):
    ct, lobes, reading, scores, provenance = bundle_inputs(shape=(8, 8, 8))
    with tmpfs(tmp_path / "disk", "200k") as disk:
        old = write_bundle(disk / "bundle", ct, lobes, reading, scores, provenance)
        before = snapshot(old)
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * max(free - 32 * 1024, 0))  # leave 32 KB: less than a bundle needs
        big = bundle_inputs()
        with pytest.raises(DPOOutputError, match="the disk is full"):
            write_bundle(disk / "bundle", *big, overwrite=True)
        assert snapshot(old) == before
        assert sorted(p.name for p in disk.iterdir()) == ["bundle", "filler"]


def test_atomic_write_on_a_full_disk_keeps_the_existing_file(tmp_path):
    with tmpfs(tmp_path / "disk", "64k") as disk:
        target = disk / "scores.json"
        target.write_text("the earlier scores")
        with pytest.raises(DPOOutputError, match="scores.json: could not be written \\(the disk is full\\)"):
            atomic_write_bytes(target, os.urandom(200 * 1024), overwrite=True)
        assert target.read_text(encoding="utf-8") == "the earlier scores"
        assert sorted(p.name for p in disk.iterdir()) == ["scores.json"]  # no .part file left


def test_run_on_a_disk_that_fills_while_the_bundle_is_written(tmp_path, monkeypatch):
    """The whole ``dpo-score run`` with the free-space estimate switched off (as if it were too
    low): the disk fills during the bundle write, and the user gets one line, exit 2, nothing left."""
    from DPOScoringLib.synthetic.phantom import PhantomSpec, generate_phantom, write_phantom

    sandbox = tmp_path / "case"
    sandbox.mkdir()
    spec = PhantomSpec(fov_mm=(200.0, 170.0, 90.0), spacing=(1.2, 1.2, 2.5), seed=5, n_po=6)
    ct = write_phantom(generate_phantom(spec), sandbox / "phantom")["ct"]
    monkeypatch.setattr(safe_files, "_check_space", lambda folder, expected, where: None)
    with tmpfs(sandbox / "disk", "100k") as disk:
        line = refused(sandbox, ["run", ct, "--out", disk / "bundle", "--quiet"],
                       [str(disk / "bundle"), "could not be written (the disk is full)", "nothing was left"],
                       monkeypatch)
        assert list(disk.iterdir()) == [], line


def test_file_modes_follow_the_umask(tmp_path):
    """One policy: files get 0666 & ~umask, whichever writer made them (mkstemp alone gives 0600)."""
    ct, lobes, reading, scores, provenance = bundle_inputs(shape=(8, 8, 8))
    previous = os.umask(0o027)
    try:
        bundle = write_bundle(tmp_path / "bundle", ct, lobes, reading, scores, provenance,
                              extra_files={"figures/a.png": b"png", "report.html": b"<html>"})
        single = atomic_write_bytes(tmp_path / "scores.json", json.dumps({}).encode())
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in [*bundle.rglob("*"), single] if p.is_file()}
    assert set(modes) >= {"lobes.nrrd", "lobes.seg.nrrd", "reading.json", "a.png", "report.html", "scores.json"}
    assert set(modes.values()) == {0o640}, modes


def test_demo_on_a_disk_too_small_is_refused_before_any_work(tmp_path, monkeypatch):
    """The demo writes about 16 MB: on a 1 MB disk it says so before building its phantom."""
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    with tmpfs(sandbox / "disk", "1m") as disk:
        message = refused(sandbox, ["demo", "--out", disk / "demo-output", "--quiet"], ["demo-output", "space"],
                          monkeypatch)
        assert not (disk / "demo-output").exists(), message
