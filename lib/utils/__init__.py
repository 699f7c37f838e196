"""Helpers shared by the detection code: box overlaps (Cython), image blobs, timing."""
