"""CT images: loading and file checks, slices, label maps, boxes, body, lungs, airways, contrast."""
