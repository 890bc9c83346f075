"""Shared by every layer: errors, progress, safe file writing, lobe anatomy (codes, lungs from lobes)."""
