"""Installing the Python packages DPOScoringLib needs into Slicer, in Slicer 5.8, 5.10 and 5.12.

* Slicer >= 5.12 has ``slicer.packaging.pip_ensure`` (it asks the user, installs what is missing
  and offers a restart); it is used with our constraints.
* Slicer 5.8 and 5.10 have only ``slicer.util.pip_install``: the missing packages are listed, the
  user is asked (``slicer.util.confirmOkCancelDisplay``) and they are installed with the tested
  versions of ``Resources/constraints.txt``.

Either way Slicer's own numpy, scipy and SimpleITK are pinned to the versions installed (a
constraints file written for the call), so pip can never replace them. Verified against Slicer's
source at tags v5.8.0, v5.10.0 and v5.12.0 (Base/Python/slicer/util.py, packaging.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from importlib import metadata
from pathlib import Path

IMPORT_NAMES = {"scipy": "scipy", "scikit-image": "skimage", "connected-components-3d": "cc3d", "edt": "edt",
                "lungmask": "lungmask"}
PROTECTED = ("numpy", "scipy", "SimpleITK")  # shipped with Slicer: never replaced


class InstallDeclined(RuntimeError):
    """The user said no to installing packages."""


def requirement_lines(path: str | Path) -> list[str]:
    lines = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def distribution_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]


def missing(requirements: list[str]) -> list[str]:
    """The requirements whose module cannot be imported."""
    gone = []
    for requirement in requirements:
        name = distribution_name(requirement)
        if importlib.util.find_spec(IMPORT_NAMES.get(name, name.replace("-", "_"))) is None:
            gone.append(requirement)
    return gone


def protected_pins() -> list[str]:
    """``name==version`` for Slicer's own packages as installed now."""
    pins = []
    for name in PROTECTED:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def write_constraints(folder: str | Path, pinned: str | Path | None) -> Path:
    lines = protected_pins() + (requirement_lines(pinned) if pinned else [])
    path = Path(folder) / "constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _packaging(slicer_module):
    try:
        return importlib.import_module("slicer.packaging") if slicer_module.__name__ == "slicer" \
            else getattr(slicer_module, "packaging", None)
    except ImportError:  # Slicer 5.8 and 5.10
        return None


def ensure(requirements: list[str], requester: str, work_folder: str | Path, pinned: str | Path | None = None,
           slicer_module=None, testing: bool = False) -> str | None:
    """Makes ``requirements`` importable; returns how (``pip_ensure``, ``pip_install``) or None
    when nothing was missing. ``testing``: the self-test installs without asking. Raises
    ``InstallDeclined`` when the user says no."""
    if slicer_module is None:
        import slicer as slicer_module
    constraints = write_constraints(work_folder, pinned)
    packaging = _packaging(slicer_module)
    if packaging is not None and hasattr(packaging, "pip_ensure"):
        if not missing(requirements):
            return None
        packaging.pip_ensure(requirements, constraints=str(constraints), requester=requester,
                             prompt_install=not testing, skip_in_testing=not testing)
        importlib.invalidate_caches()
        return "pip_ensure"
    needed = missing(requirements)
    if not needed:
        return None
    question = (f"{requester} needs these Python packages, which are not installed yet:\n\n  "
                + "\n  ".join(needed) + "\n\nInstall them now (from PyPI, a few minutes)? "
                "Slicer's own numpy, scipy and SimpleITK are kept.")
    if not testing and not slicer_module.util.confirmOkCancelDisplay(question, "Install Python packages"):
        raise InstallDeclined(f"{requester}: installing {', '.join(needed)} was declined")
    slicer_module.util.pip_install([*needed, "-c", str(constraints)])
    importlib.invalidate_caches()
    still = missing(needed)
    if still:
        raise RuntimeError(f"{requester}: {', '.join(still)} still cannot be imported after installing")
    return "pip_install"
