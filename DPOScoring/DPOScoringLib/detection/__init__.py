"""Ossification candidates: detector, measurements, pleura geometry, reader points, files, runs."""
