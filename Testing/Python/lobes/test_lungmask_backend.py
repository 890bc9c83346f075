"""The lungmask backend, run for real through lungmask's own loading and inference code with
state dicts of its own network that the test creates (the published weights cannot be
downloaded here), and the missing-weights error."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DPOScoringLib.common.errors import DPOInputError
from DPOScoringLib.lobes import lungmask_backend
from DPOScoringLib.lobes.lungmask_backend import WEIGHT_FILES, find_weights, run_lungmask

torch = pytest.importorskip("torch", reason="torch is installed by the test setup (make test)")
resunet = pytest.importorskip("lungmask.resunet", reason="lungmask is installed by the test setup")


def make_weights(folder, ltrc_class: int, r231_class: int = 1) -> None:
    """Save state dicts of lungmask's UNet whose last layer always votes for one class."""
    for model, n_classes, winner in (("LTRCLobes", 6, ltrc_class), ("R231", 3, r231_class)):
        torch.manual_seed(0)
        net = resunet.UNet(n_classes=n_classes, padding=True, depth=5, up_mode="upsample", batch_norm=True,
                           residual=False)
        state = net.state_dict()
        state["last.weight"].zero_()
        state["last.bias"].fill_(-10.0)
        state["last.bias"][winner] = 10.0
        torch.save(state, folder / lungmask_backend.WEIGHT_FILES[model][0])


@pytest.fixture(scope="module")
def small_ct():
    """A small chest-like CT: body, two air-filled lungs."""
    array = np.full((3, 96, 96), -1000, dtype=np.int16)
    array[:, 10:86, 8:88] = 40
    array[:, 20:76, 14:44] = -850
    array[:, 20:76, 52:82] = -850
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((3.0, 3.0, 3.0))
    return image


def test_lungmask_runs_and_left_upper_lobe_is_split_into_lingula(tmp_path, small_ct):
    make_weights(tmp_path, ltrc_class=1)  # lungmask's 1: left upper lobe including the lingula
    # a 9 mm tall toy: the lingular boundary is given at mid-height (the anatomical template, in
    # mm, would put the whole toy on one side of it, as it should: nothing is scaled to fill)
    mid = [[x, y, 4.0] for x in (0.0, 150.0, 280.0) for y in (0.0, 280.0)]
    result = run_lungmask(small_ct, tmp_path, device="cpu", lingular_points=np.array(mid))
    assert set(np.unique(result.raw)) <= {0, 1} and (result.raw == 1).any()
    assert set(np.unique(result.lobes)) <= {0, 4, 5}
    assert np.array_equal(result.lobes > 0, result.raw == 1)
    assert (result.lobes == 4).any() and (result.lobes == 5).any()
    assert len(result.lingular_points) >= 3
    assert result.provenance["models"] == ["LTRCLobes", "R231"] and result.provenance["device"] == "cpu"


def test_lungmask_labels_map_to_spec_values(tmp_path, small_ct):
    make_weights(tmp_path, ltrc_class=4)  # lungmask's 4: right middle lobe
    result = run_lungmask(small_ct, tmp_path, device="cpu")
    assert (result.raw == 4).any()
    assert set(np.unique(result.lobes)) <= {0, 2}
    assert np.array_equal(result.lobes == 2, result.raw == 4)


def test_missing_weights_error_names_files_and_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("DPO_LUNGMASK_WEIGHTS", str(tmp_path / "nowhere"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(DPOInputError) as caught:
        find_weights(tmp_path / "given")
    message = str(caught.value)
    for filename, url in WEIGHT_FILES.values():
        assert filename in message and url in message
    assert str(tmp_path / "given") in message and "DPO_LUNGMASK_WEIGHTS" in message


def test_cli_missing_weights_fails_fast(tmp_path, small_ct):
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(small_ct, str(path))
    env = {"TORCH_HOME": str(tmp_path / "torch"), "PATH": "/usr/bin:/bin"}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "DPOScoringLib", "lobes", str(path), "--method", "lungmask",
                             "--weights", str(tmp_path), "--out", str(tmp_path / "lobes.nrrd"), "--quiet"],
                            capture_output=True, text=True, encoding="utf-8", timeout=60, env=env)
    elapsed = time.monotonic() - started
    assert result.returncode == 2 and "unet_ltrclobes-3a07043d.pth" in result.stderr
    assert "Traceback" not in result.stderr and elapsed < 10.0


def _published_like_weights(tmp_path, monkeypatch, ltrc_class: int = 1) -> dict:
    """State dicts of lungmask's UNet served from a local folder by file:// URLs (a stand-in for
    the GitHub release: no network here), named like torch.hub files with their SHA-256 prefix."""
    import hashlib

    source = tmp_path / "release"
    source.mkdir()
    make_weights(source, ltrc_class)
    table = {}
    for model, (filename, _) in WEIGHT_FILES.items():
        data = (source / filename).read_bytes()
        stem = filename.split("-")[0]
        named = f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}.pth"
        (source / filename).rename(source / named)
        table[model] = (named, (source / named).as_uri())
    monkeypatch.setattr(lungmask_backend, "WEIGHT_FILES", table)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("DPO_LUNGMASK_WEIGHTS", raising=False)
    monkeypatch.delenv("DPO_LUNGMASK_DOWNLOAD", raising=False)
    return table


def test_weights_are_downloaded_on_first_use_into_torch_cache(tmp_path, monkeypatch, small_ct):
    table = _published_like_weights(tmp_path, monkeypatch)
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    result = run_lungmask(small_ct, None, device="cpu", download=True)
    for model, (filename, _) in table.items():
        assert (cache / filename).is_file()
        assert result.provenance["weights"][model] == str(cache / filename)
    assert not list(cache.glob(".*part"))
    assert (result.raw == 1).any()
    # second run: read from the cache, nothing fetched (the source is gone)
    for _, url in table.values():
        Path(url[len("file://"):]).unlink()
    again = run_lungmask(small_ct, None, device="cpu", download=True)
    assert np.array_equal(again.raw, result.raw)


def test_download_needs_consent_and_the_environment_variable_gives_it(tmp_path, monkeypatch, small_ct):
    _published_like_weights(tmp_path, monkeypatch)
    with pytest.raises(DPOInputError, match="--download-weights"):
        run_lungmask(small_ct, None, device="cpu")
    assert not (tmp_path / "torch" / "hub" / "checkpoints").exists()
    monkeypatch.setenv("DPO_LUNGMASK_DOWNLOAD", "1")
    assert run_lungmask(small_ct, None, device="cpu").provenance["device"] == "cpu"


def test_offline_or_corrupt_download_fails_cleanly(tmp_path, monkeypatch, small_ct):
    table = _published_like_weights(tmp_path, monkeypatch)
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    offline = {m: (f, (tmp_path / "unreachable" / f).as_uri()) for m, (f, _) in table.items()}
    monkeypatch.setattr(lungmask_backend, "WEIGHT_FILES", offline)
    with pytest.raises(DPOInputError, match="could not download"):
        run_lungmask(small_ct, None, device="cpu", download=True)
    corrupt = {m: (f.replace("-", "-0"), u) for m, (f, u) in table.items()}  # the hash in the name is wrong
    monkeypatch.setattr(lungmask_backend, "WEIGHT_FILES", corrupt)
    with pytest.raises(DPOInputError, match="not the expected file"):
        run_lungmask(small_ct, None, device="cpu", download=True)
    assert not [p for p in cache.iterdir() if p.is_file()]


def test_device_actually_used_is_recorded(tmp_path, monkeypatch, small_ct):
    make_weights(tmp_path, ltrc_class=1)
    result = run_lungmask(small_ct, tmp_path, device="gpu")
    used = "cuda" if torch.cuda.is_available() else "cpu"
    assert result.provenance["device"] == used and result.provenance["device_requested"] == "gpu"
    assert (used == "cpu") == any("ran on the CPU" in w for w in result.provenance["warnings"])
