"""Numba kernels: arrays and scalars in, arrays out; no statistics here.

Submodules
----------
crossprod
    Cross-product blocks (Z'Z, Z'X, ...) built straight from integer group codes.
blockdiag
    Per-level factorisation of the leading block-diagonal block.
products
    Z b and Z' r products for fitted values and solves.
"""
