"""DPOScoringLib: GUI-free core of the DPOScoring 3D Slicer extension.

Scores diffuse pulmonary ossification (DPO) on chest CT by the rules of Egashira et al.,
Radiology 2017;284:255-263, as formalised in the project's scoring spec. Nothing in this package
imports Slicer or Qt, except the MRML logic module, which imports ``slicer`` and ``vtk`` only.
"""

__version__ = "0.1.0"
