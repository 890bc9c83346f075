"""Static checks that cannot drift: extension metadata, CMake lists, .ui widgets, layering."""

from __future__ import annotations

import ast
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "DPOScoring"
LIB = MODULE / "DPOScoringLib"
MRML_LAYER = {"mrml_logic.py", "mrml_lobes.py", "mrml_workspace.py", "mrml_module_logic.py", "mrml_lobe_layer.py",
              "mrml_lobe_drag.py",
              "slicer_dependencies.py"}  # the only core files allowed to import slicer/vtk


def cmake_list(text: str, name: str) -> list[str]:
    match = re.search(rf"set\({name}\s+(.*?)\)", text, re.S)
    assert match, f"{name} not found"
    return [item.replace("${MODULE_NAME}", "DPOScoring") for item in match.group(1).split()]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_extension_metadata_is_complete():
    text = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    for key in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS",
                "DEPENDS"):
        match = re.search(rf'set\(EXTENSION_{key} "([^"]*)"\)', text)
        assert match and match.group(1).strip(), f"EXTENSION_{key} missing or empty"
    # a category the ExtensionsIndex accepts (ACCEPTED_EXTENSION_CATEGORIES of its
    # scripts/check_description_files.py; SlicerLungCTAnalyzer's), the same in the module
    assert 'set(EXTENSION_CATEGORY "Chest Imaging Platform")' in text
    assert '"Chest Imaging Platform")]' in (MODULE / "DPOScoring.py").read_text(encoding="utf-8")
    assert "cmake_minimum_required(VERSION 3.16.3...3.28.0 FATAL_ERROR)" in text
    assert "add_subdirectory(DPOScoring)" in text
    for key in ("HOMEPAGE", "ICONURL", "SCREENSHOTURLS"):
        assert re.search(rf'set\(EXTENSION_{key} "https://', text)


def test_icons_exist_with_expected_size():
    assert png_size(REPO / "Resources" / "DPOScoring.png") == (128, 128)
    assert png_size(MODULE / "Resources" / "Icons" / "DPOScoring.png")[0] >= 64


def test_every_cmake_listed_file_exists_and_every_script_and_resource_is_listed():
    text = (MODULE / "CMakeLists.txt").read_text(encoding="utf-8")
    scripts = cmake_list(text, "MODULE_PYTHON_SCRIPTS")
    resources = cmake_list(text, "MODULE_PYTHON_RESOURCES")
    for item in scripts + resources:
        assert (MODULE / item).is_file(), f"CMake lists {item}, which does not exist"
    on_disk = {str(p.relative_to(MODULE)) for p in LIB.rglob("*.py")} | {"DPOScoring.py"}
    assert on_disk == set(scripts), f"scripts not listed: {on_disk - set(scripts)}"
    resource_files = {str(p.relative_to(MODULE)) for p in (MODULE / "Resources").rglob("*") if p.is_file()}
    resource_files |= {str(p.relative_to(MODULE)) for p in LIB.rglob("*") if p.is_file()
                       and p.suffix not in (".py", ".pyc")}
    assert resource_files <= set(resources), f"resources not listed: {resource_files - set(resources)}"
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


def test_ui_parses_and_every_widget_the_code_names_exists():
    tree = ET.parse(MODULE / "Resources" / "UI" / "DPOScoring.ui")
    names = {w.get("name") for w in tree.iter("widget")}
    code = (MODULE / "DPOScoring.py").read_text(encoding="utf-8")
    used = set(re.findall(r"self\.ui\.(\w+)", code))
    assert used, "the widget names no ui element"
    assert used <= names, f"named in code but missing in .ui: {used - names}"


def test_ui_parameter_names_match_the_parameter_node():
    tree = ET.parse(MODULE / "Resources" / "UI" / "DPOScoring.ui")
    bound = {prop.find("string").text for prop in tree.iter("property")
             if prop.get("name") == "SlicerParameterName"}
    module = ast.parse((MODULE / "DPOScoring.py").read_text(encoding="utf-8"))
    node_class = next(n for n in module.body if isinstance(n, ast.ClassDef)
                      and n.name == "DPOScoringParameterNode")
    fields = {n.target.id for n in node_class.body if isinstance(n, ast.AnnAssign)}
    assert bound <= fields, f"ui binds unknown parameters: {bound - fields}"


def test_module_has_module_widget_logic_and_test_classes():
    module = ast.parse((MODULE / "DPOScoring.py").read_text(encoding="utf-8"))
    classes = {n.name for n in module.body if isinstance(n, ast.ClassDef)}
    assert {"DPOScoring", "DPOScoringWidget", "DPOScoringLogic", "DPOScoringTest",
            "DPOScoringParameterNode"} <= classes


def imported_top_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(LIB.rglob("*.py")), ids=lambda p: p.name)
def test_core_layering(path):
    imports = imported_top_modules(path)
    assert not imports & {"qt", "ctk", "PythonQt"}, f"{path.name} imports the GUI layer"
    if path.name not in MRML_LAYER:
        assert not imports & {"slicer", "vtk", "mrml"}, f"{path.name} imports Slicer outside the MRML layer"


def test_core_files_stay_short():
    for path in [*LIB.rglob("*.py"), MODULE / "DPOScoring.py"]:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 650, f"{path.name} has {lines} lines"


def test_module_imports_need_only_what_slicer_ships():
    """DPOScoring.py must load in a fresh Slicer, before pip_ensure has installed scipy & co."""
    import subprocess
    import sys

    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('scipy', 'skimage', 'cc3d', 'edt', 'torch', 'lungmask'):\n"
        "            raise ImportError(f'{name} is not in Slicer by default')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import ast, pathlib\n"
        f"tree = ast.parse(pathlib.Path({str(MODULE / 'DPOScoring.py')!r}).read_text(encoding='utf-8'))\n"
        "for node in tree.body:\n"
        "    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('DPOScoringLib'):\n"
        "        importlib = __import__('importlib')\n"
        "        module = importlib.import_module(node.module)\n"
        "        [getattr(module, alias.name) for alias in node.names]\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
