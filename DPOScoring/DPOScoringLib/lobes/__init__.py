"""Lobe segmentation: fissures (weight-free), lingula split, lungmask backend, lobe files."""
