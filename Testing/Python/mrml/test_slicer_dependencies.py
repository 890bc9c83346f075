"""The dependency installer in Slicer 5.8/5.10 (no ``slicer.packaging``: ``slicer.util.pip_install``
after a consent dialog, tested pins) and 5.12 (``slicer.packaging.pip_ensure``). Slicer's
application cannot run here, so its two APIs are FAKES named as such, with the signatures of
Base/Python/slicer/util.py (v5.8.0) and packaging.py (v5.12.0); the "install" of the fake writes
an importable module, so the check after installing is real."""

from __future__ import annotations

import sys
import types

import pytest

from DPOScoringLib.mrml.slicer_dependencies import InstallDeclined, ensure, missing, protected_pins

PACKAGE = "dpo-fake-package-for-test"  # not on PyPI; imported as dpo_fake_package_for_test


def fake_slicer_5_8(site, answer=True):
    """FAKE of Slicer 5.8's slicer module: util.pip_install(requirements) and a consent dialog."""
    calls = []

    def pip_install(requirements):
        calls.append(("pip_install", list(requirements)))
        (site / "dpo_fake_package_for_test.py").write_text("VALUE = 1\n")

    def confirm(text, windowTitle=None, **kwargs):
        calls.append(("confirm", text))
        return answer

    module = types.ModuleType("FakeSlicer58")
    module.util = types.SimpleNamespace(pip_install=pip_install, confirmOkCancelDisplay=confirm)
    return module, calls


def fake_slicer_5_12(site):
    """FAKE of Slicer 5.12's slicer module: packaging.pip_ensure(requirements, constraints=...)."""
    calls = []

    def pip_ensure(requirements, constraints=None, skip_packages=None, prompt_install=True, prompt_restart=True,
                   requester=None, skip_in_testing=True, show_progress=True):
        calls.append(("pip_ensure", list(requirements), constraints, requester, prompt_install, skip_in_testing))
        (site / "dpo_fake_package_for_test.py").write_text("VALUE = 1\n")

    module = types.ModuleType("FakeSlicer512")
    module.packaging = types.SimpleNamespace(pip_ensure=pip_ensure)
    module.util = types.SimpleNamespace(pip_install=lambda *a: calls.append(("pip_install", a)))
    return module, calls


@pytest.fixture()
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    sys.modules.pop("dpo_fake_package_for_test", None)


def test_nothing_is_installed_when_everything_imports(tmp_path):
    slicer58, calls = fake_slicer_5_8(tmp_path)
    assert ensure(["numpy>=1.20", "scikit-image>=0.21"], "DPO Scoring", tmp_path, slicer_module=slicer58) is None
    assert calls == []


def test_slicer_5_8_asks_then_pip_installs_only_what_is_missing_with_pins(site, tmp_path):
    pins = tmp_path / "pins.txt"
    pins.write_text("# tested\ndpo-fake-package-for-test==1.0\n")
    slicer58, calls = fake_slicer_5_8(site)
    assert missing([f"{PACKAGE}>=1", "numpy"]) == [f"{PACKAGE}>=1"]
    how = ensure([f"{PACKAGE}>=1", "numpy"], "DPO Scoring", tmp_path, pins, slicer_module=slicer58)
    assert how == "pip_install"
    assert calls[0][0] == "confirm" and PACKAGE in calls[0][1]
    assert calls[1][0] == "pip_install" and calls[1][1][:1] == [f"{PACKAGE}>=1"]
    constraints = calls[1][1][calls[1][1].index("-c") + 1]
    lines = open(constraints).read().split()
    assert f"{PACKAGE}==1.0" in lines
    assert any(line.startswith("numpy==") for line in lines)  # Slicer's numpy pinned as installed
    assert set(protected_pins()) <= set(lines)


def test_slicer_5_8_declined_installs_nothing(site, tmp_path):
    slicer58, calls = fake_slicer_5_8(site, answer=False)
    with pytest.raises(InstallDeclined, match="declined"):
        ensure([PACKAGE], "DPO Scoring", tmp_path, slicer_module=slicer58)
    assert [c[0] for c in calls] == ["confirm"]


def test_slicer_5_12_uses_pip_ensure_with_the_constraints(site, tmp_path):
    slicer512, calls = fake_slicer_5_12(site)
    assert ensure([PACKAGE], "DPO Scoring", tmp_path, slicer_module=slicer512) == "pip_ensure"
    assert len(calls) == 1 and calls[0][0] == "pip_ensure" and calls[0][1] == [PACKAGE]
    assert calls[0][2].endswith("constraints.txt") and calls[0][3] == "DPO Scoring"
    assert calls[0][4] is True and calls[0][5] is True  # asks the user; skipped in Slicer's testing mode


def test_the_self_test_installs_without_asking(site, tmp_path):
    slicer512, calls = fake_slicer_5_12(site)
    ensure([PACKAGE], "DPO Scoring", tmp_path, slicer_module=slicer512, testing=True)
    assert calls[0][4] is False and calls[0][5] is False  # no dialog, and not skipped in testing mode
    sys.modules.pop("dpo_fake_package_for_test", None)
    (site / "dpo_fake_package_for_test.py").unlink()
    slicer58, calls58 = fake_slicer_5_8(site, answer=False)
    assert ensure([PACKAGE], "DPO Scoring", tmp_path, slicer_module=slicer58, testing=True) == "pip_install"
    assert [c[0] for c in calls58] == ["pip_install"]


def test_the_real_slicer_core_has_no_packaging_module_like_5_8(tmp_path):
    """slicer-core (MRML only) has no slicer.packaging: the 5.8 path is chosen for the real module."""
    slicer = pytest.importorskip("slicer", reason="slicer-core is installed by the test setup (make test)")
    from DPOScoringLib.mrml.slicer_dependencies import _packaging

    assert _packaging(slicer) is None


def test_requirements_and_pins_of_the_module():
    from DPOScoringLib.mrml.mrml_module_logic import RESOURCES
    from DPOScoringLib.mrml.slicer_dependencies import distribution_name, requirement_lines

    required = {distribution_name(r) for r in requirement_lines(RESOURCES / "requirements.txt")}
    pinned = {distribution_name(r): r for r in requirement_lines(RESOURCES / "constraints.txt")}
    assert required >= {"scikit-image", "connected-components-3d", "edt"}
    assert set(pinned) == required - {"scipy"}  # scipy ships with Slicer 5.8-5.12 (Slicer_USE_SCIPY)
    assert all("==" in r for r in pinned.values())
    assert not required & {"numpy", "SimpleITK"}  # never replaced
