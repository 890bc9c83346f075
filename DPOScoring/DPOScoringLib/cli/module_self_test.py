"""The body of the module's in-Slicer self-test (``DPOScoringTest.test_WholeFlowOnPhantom`` in
DPOScoring.py): the module's flow through files on a synthetic CT, as the widget runs it, checked
with the test case's own assertions. Kept here, below the GUI, so that the module file stays the
GUI's wiring; it runs in Slicer (Reload and Test) and headless through the GUI test double.
It lives with the command line because it drives it (``cli.main``) on a synthetic CT
(``synthetic/``), both above the MRML layer.
"""

from __future__ import annotations


def whole_flow_on_phantom(logic, test) -> None:
    """``logic``: the module logic (``DPOScoringLogic``, with its parameter node); ``test``: a
    ``unittest.TestCase``. Lobes by the ``lobes`` command, the panel's fissure confidence, a
    dragged fissure point (the lobes follow, in the same node), detection on those lobes, every
    candidate confirmed, the scores equal to the core's on the saved reading."""
    from ..rules.reading import parse_reading
    from ..rules.scoring import score_reading
    from ..synthetic.phantom import PhantomSpec, generate_phantom, write_phantom
    from .main import main

    folder = logic.newWorkFolder()
    try:
        paths = write_phantom(generate_phantom(PhantomSpec(fov_mm=(200.0, 170.0, 180.0), n_po=12)), folder)
        node = logic.getParameterNode()
        node.inputVolume = logic.mrml.load_volume(paths["ct"])
        arguments, seg, points, provenance = logic.lobeArguments(node, folder)
        test.assertEqual(main(arguments + ["--quiet"]), 0)
        logic.loadLobes(node, seg, points, provenance)
        test.assertIn("Fissures supported by the image", logic.fissureConfidenceText(node))
        lobes, _image = logic.lobeArray(node)
        test.assertEqual(sorted(int(v) for v in set(lobes.ravel()) - {0}), [1, 2, 3, 4, 5, 6])
        # the reader drags the middle of the right horizontal fissure 8 mm up: the lobes follow
        horizontal = logic.mrml.scene.GetFirstNodeByName("DPO fissure RH")
        index, position = horizontal.GetNumberOfControlPoints() // 2, [0.0, 0.0, 0.0]
        horizontal.GetNthControlPointPosition(index, position)
        horizontal.SetNthControlPointPosition(index, position[0], position[1], position[2] + 8.0)
        segmentation = node.lobeSegmentation
        test.assertEqual(logic.recomputeLobesFromPoints(node), "applied")
        moved, _image = logic.lobeArray(node)
        test.assertIs(node.lobeSegmentation, segmentation)
        test.assertGreater(int((moved == 2).sum()), int((lobes == 2).sum()))  # the middle lobe grew
        test.assertIn("moved by the reader", logic.fissureConfidenceText(node))
        arguments, candidates = logic.detectArguments(node, folder)
        test.assertEqual(main(arguments + ["--quiet"]), 0)
        logic.loadCandidates(node, candidates)
        markups = node.candidates
        test.assertGreater(markups.GetNumberOfControlPoints(), 5)
        for index in range(markups.GetNumberOfControlPoints()):
            logic.decide(node, index, "self-test", status="confirmed")
        scores, _table = logic.mrml.update_results(markups)
        test.assertEqual(scores, score_reading(parse_reading(logic.mrml.reading(markups))))
        test.assertTrue(scores["complete"])
    finally:
        logic.removeWorkFolder(folder)
