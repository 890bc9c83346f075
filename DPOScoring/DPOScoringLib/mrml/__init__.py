"""The Slicer layer: MRML logic (imports slicer and vtk, never qt)."""
