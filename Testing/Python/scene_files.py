"""A scene saved as Slicer saves it and opened again, for the headless MRML tests: each node's data
written through its storage node, then the scene file (``vtkMRMLScene::Commit``), and the ``.mrml``
imported into a new scene (``vtkMRMLScene::Import``), as File > Open does. Needs slicer-core."""

from __future__ import annotations

from pathlib import Path


def save_scene(scene, nodes, folder: Path, scene_name: str = "scene.mrml") -> Path:
    """``nodes``: (node, file name) pairs written into ``folder`` through their storage nodes (a
    default one added where missing), then the scene file. Returns the scene file's path."""
    for node, name in nodes:
        if node.GetStorageNode() is None:
            node.AddDefaultStorageNode()
        node.GetStorageNode().SetFileName(str(folder / name))
        assert node.GetStorageNode().WriteData(node), f"{name} was not written"
    scene.SetURL(str(folder / scene_name))
    assert scene.Commit()
    return folder / scene_name


def open_scene(path: Path):
    """A new headless scene with the saved one imported into it."""
    from DPOScoringLib.mrml.mrml_logic import create_headless_scene

    fresh = create_headless_scene()
    fresh.SetURL(str(path))
    assert fresh.Import()
    return fresh
