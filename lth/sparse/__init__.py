"""Sparse training algorithms (GMP, SET, RigL) and sparse layouts (layer densities, N:M)."""
