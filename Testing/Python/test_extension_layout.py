"""Static checks that cannot drift: extension metadata, CMake lists, .ui widgets, layering."""

from __future__ import annotations

import ast
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "DPOScoring"
LIB = MODULE / "DPOScoringLib"


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


# The sub-packages of DPOScoringLib, lowest first: each imports only from itself and those before it
# (README, Layout). `synthetic` (the phantom) is for tests, benchmarks and the demo: only `cli` imports it.
LAYERS = ("common", "rules", "ct", "detection", "lobes", "audit", "cohort", "synthetic", "mrml", "cli")
ONLY_IMPORTED_BY = {"synthetic": {"synthetic", "cli"}}
SLICER_LAYER = "mrml"  # the only sub-package allowed to import slicer/vtk; nothing in the core imports qt/ctk


def imports_of(path: Path, lib: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import in a file below ``lib``: absolute ones as
    written, relative ones resolved against the file's package, `from X import name` as X.name."""
    package = list(path.relative_to(lib.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + (node.module.split(".") if node.module else []))
            else:
                module = node.module
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def layering_violations(lib: Path) -> list[str]:
    """Every import in the package tree ``lib`` that breaks the layers above, one line each."""
    problems = []
    on_disk = {p.parent.name for p in lib.glob("*/__init__.py")}
    if on_disk != set(LAYERS):
        problems.append(f"sub-packages {sorted(on_disk)} differ from the layers {list(LAYERS)}")
    for path in sorted(lib.rglob("*.py")):
        rel = path.relative_to(lib)
        own = rel.parts[0] if len(rel.parts) > 1 else None
        for line, name in imports_of(path, lib):
            parts = name.split(".")
            where = f"{rel}:{line} imports {name}"
            if parts[0] in ("qt", "ctk", "PythonQt"):
                problems.append(f"{where}: the GUI layer")
            if parts[0] in ("slicer", "vtk", "mrml") and own != SLICER_LAYER:
                problems.append(f"{where}: Slicer outside {SLICER_LAYER}/")
            if parts[0] != lib.name:
                continue
            if path == lib / "__init__.py":
                problems.append(f"{where}: DPOScoringLib/__init__.py stays import-free")
            target = parts[1] if len(parts) > 1 and parts[1] in LAYERS else None
            if own is None or target is None or target == own:
                continue
            if LAYERS.index(target) > LAYERS.index(own):
                problems.append(f"{where}: {own}/ is below {target}/")
            if target in ONLY_IMPORTED_BY and own not in ONLY_IMPORTED_BY[target]:
                problems.append(f"{where}: only {sorted(ONLY_IMPORTED_BY[target])} import {target}/")
    return problems


def test_layering_holds():
    assert layering_violations(LIB) == []


def test_every_module_lives_in_a_layer():
    loose = sorted(p.name for p in LIB.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert not loose, f"modules outside the sub-packages: {loose}"


def _tree(tmp_path: Path, files: dict) -> Path:
    lib = tmp_path / "DPOScoringLib"
    for layer in LAYERS:
        (lib / layer).mkdir(parents=True)
        (lib / layer / "__init__.py").write_text('"""x"""\n')
    (lib / "__init__.py").write_text('__version__ = "0"\n')
    for name, text in files.items():
        (lib / name).write_text(text)
    return lib


def test_layering_check_catches_a_lower_package_importing_a_higher_one(tmp_path):
    """The checker itself, on synthetic trees: relative and absolute upward imports, Slicer outside
    mrml/, GUI imports, an importing __init__, the phantom outside cli/; and a clean tree passes."""
    clean = _tree(tmp_path / "clean", {
        "ct/a.py": "from ..common.errors import E\nfrom . import b\nfrom .. import __version__\n",
        "cli/m.py": "from ..synthetic import phantom\nfrom DPOScoringLib.ct.a import x\n",
        "mrml/s.py": "import slicer\nimport vtk\n",
    })
    assert layering_violations(clean) == []
    cases = {
        "common/x.py": ("from ..rules.reading import y\n", "common/ is below rules/"),
        "rules/x.py": ("from DPOScoringLib.cli.main import main\n", "rules/ is below cli/"),
        "ct/x.py": ("from ... import nothing\nfrom .. import detection\n", "ct/ is below detection/"),
        "audit/x.py": ("import DPOScoringLib.mrml.mrml_logic\n", "audit/ is below mrml/"),
        "mrml/x.py": ("from ..synthetic.phantom import p\n", "import synthetic/"),
        "detection/x.py": ("import slicer\n", "Slicer outside mrml/"),
        "mrml/y.py": ("import qt\n", "the GUI layer"),
        "__init__.py": ("from .cli import main\n", "stays import-free"),
    }
    for index, (name, (text, message)) in enumerate(cases.items()):
        lib = _tree(tmp_path / str(index), {name: text})
        problems = layering_violations(lib)
        assert any(message in problem for problem in problems), (name, problems)


def test_test_files_mirror_the_packages_and_have_unique_names():
    """Tests live in Testing/Python/<layer>/ (pytest imports them by file name: names are unique)."""
    tests = REPO / "Testing" / "Python"
    folders = {p.parent.name for p in tests.glob("*/test_*.py")}
    assert folders <= set(LAYERS), f"test folders that are no layer: {folders - set(LAYERS)}"
    names = [p.name for p in tests.rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


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
        "        [getattr(module, alias.name) if hasattr(module, alias.name) else\n"
        "         importlib.import_module(node.module + '.' + alias.name) for alias in node.names]\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def test_readme_map_names_every_layer_lowest_first():
    """The "where things are" paragraph of the README's Layout section matches the folders."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Layout"):text.index("## Licence")]
    where = section[:section.index("```")]
    positions = [where.find(f"`{layer}/`") for layer in LAYERS]
    assert -1 not in positions, [layer for layer, at in zip(LAYERS, positions) if at == -1]
    assert positions == sorted(positions), "the map lists the layers out of order"
    assert " ".join(f"{layer}/" for layer in LAYERS) in section
