"""Cutting maps into patches and stitching patch predictions back (NumPy or torch arrays)."""
