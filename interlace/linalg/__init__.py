"""Linear algebra of the penalised least-squares system.

:mod:`.dispatch` is the one place that decides between the dense path (the whole
system in one dense Cholesky) and the blocked path (the leading term's
block-diagonal block eliminated level by level, the rest dense); :mod:`.system`
holds the cross-products and factors them for a given theta.
"""
