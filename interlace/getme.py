"""lme4's ``getME(m, name)``: the pieces of a fitted model by lme4's names.

Everything is in lme4's order: the random-effects terms as lme4 orders them, and within
a term level by level, the term's effects within a level (``Z``'s columns, ``b``, ``u``
and ``Lambda``'s rows). Matrices are scipy sparse (CSC) where lme4's are sparse.

``L`` is the lower Cholesky factor of ``Lambda' Z' W Z Lambda + I`` (W the prior
weights of a linear model, the working weights at the conditional mode of a generalized
one), in lme4's column order: lme4's own ``L`` is the same factor of a fill-reducing
permutation of that matrix, so the two differ by that permutation (L L' is the same
matrix either way).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import InterlaceError

NAMES = ("X", "y", "Z", "Zt", "Lambda", "Lambdat", "L", "theta", "beta", "b", "u", "lower", "flist", "cnms", "Gp",
         "n_rtrms", "sigma", "REML", "devcomp")
"""The names ``get_me`` knows (lme4's)."""


def _design_of(result):
    conditioning = getattr(result, "_conditioning", None)
    return conditioning.design if conditioning is not None else result._fit.design


def _terms(result):
    return _design_of(result).lme4_terms


def random_design(result) -> sp.csc_matrix:
    """Z (n x q): per term, level-major columns, the term's design values."""
    blocks = []
    for term in _terms(result):
        n, k = term.design.shape
        rows = np.repeat(np.arange(n), k)
        columns = (term.group_codes.astype(np.int64)[:, None] * k + np.arange(k)).ravel()
        blocks.append(sp.csc_matrix((term.design.ravel(), (rows, columns)), shape=(n, term.n_levels * k)))
    return sp.hstack(blocks, format="csc") if blocks else sp.csc_matrix((result.nobs, 0))


def relative_factor(result) -> sp.csc_matrix:
    """Lambda (q x q): per term, its relative covariance factor on every level."""
    blocks = [sp.kron(sp.identity(t.n_levels, format="csc"), sp.csc_matrix(t.relative_cov_factor(result.theta)),
                      format="csc") for t in _terms(result)]
    return sp.block_diag(blocks, format="csc") if blocks else sp.csc_matrix((0, 0))


def _conditional_modes(result) -> np.ndarray:
    """b in Z's column order."""
    parts = []
    for term in _terms(result):
        effects = result.random_effects[term.name]
        block = (effects.to_frame() if isinstance(effects, pd.Series) else effects).to_numpy()
        parts.append(block.ravel())
    return np.concatenate(parts) if parts else np.zeros(0)


def _spherical(result) -> np.ndarray:
    """u with b = Lambda u: per level the least-norm solution (0 where a variance is 0)."""
    parts = []
    for term in _terms(result):
        effects = result.random_effects[term.name]
        block = (effects.to_frame() if isinstance(effects, pd.Series) else effects).to_numpy()
        parts.append((block @ np.linalg.pinv(term.relative_cov_factor(result.theta)).T).ravel())
    return np.concatenate(parts) if parts else np.zeros(0)


def _row_weights(result) -> np.ndarray:
    """W of L: prior weights (linear), working weights at the mode (generalized)."""
    if getattr(result, "family", None) is None:
        weights = _design_of(result).fixed.weights
        return np.ones(result.nobs) if weights is None else np.asarray(weights, dtype=np.float64)
    fit = result._fit
    return fit.pirls._working(fit.mode.eta)[1] ** 2


def cholesky_factor(result) -> sp.csc_matrix:
    """L: the lower Cholesky factor of Lambda' Z' W Z Lambda + I, lme4's column order."""
    from .linalg.sparse_cholesky import SparseCholesky

    ZL = (random_design(result) @ relative_factor(result)).tocsc()
    A = (ZL.T @ sp.diags(_row_weights(result)) @ ZL + sp.identity(ZL.shape[1])).tocsc()
    chol = SparseCholesky.analyse(A, ordering="natural")
    if not chol.refactor(A):
        raise InterlaceError("L: Lambda' Z' W Z Lambda + I is not positive definite at the fit's estimates")
    return chol.factor_matrix()


def get_me(result, name: str):
    """lme4's ``getME(m, name)`` (see the module docstring and :data:`NAMES`).

    Parameters
    ----------
    result : CrossedLMEResult or CrossedGLMMResult
    name : str
        ``"X"``, ``"y"``, ``"Z"``, ``"Zt"``, ``"Lambda"``, ``"Lambdat"``, ``"L"``,
        ``"theta"``, ``"beta"``, ``"b"``, ``"u"``, ``"lower"`` (theta's bounds),
        ``"flist"`` (the grouping factors), ``"cnms"`` (each term's effect names),
        ``"Gp"`` (each term's first column in Z, then q), ``"n_rtrms"``, ``"sigma"``,
        ``"REML"`` or ``"devcomp"`` (a dict of n, p, q, nth, and the criterion).

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> m.get_me("Z").shape, m.get_me("Lambda").nnz, m.get_me("Gp").tolist()
    ((180, 36), 54, [0, 36])
    """
    if not isinstance(name, str) or name not in NAMES:
        raise InterlaceError(f"name: expected one of {', '.join(NAMES)}, found {name!r}")
    linear = getattr(result, "family", None) is None
    terms = _terms(result)
    if name == "X":
        return np.asarray(result.model.exog, dtype=np.float64).copy()
    if name == "y":
        return np.asarray(result.model.endog, dtype=np.float64).copy()
    if name in ("Z", "Zt"):
        Z = random_design(result)
        return Z if name == "Z" else Z.T.tocsc()
    if name in ("Lambda", "Lambdat"):
        lam = relative_factor(result)
        return lam if name == "Lambda" else lam.T.tocsc()
    if name == "L":
        return cholesky_factor(result)
    if name == "theta":
        return pd.Series(np.asarray(result.theta, dtype=np.float64), index=list(result.theta_names))
    if name == "beta":
        return result.fe_params.to_numpy().copy()
    if name == "b":
        return _conditional_modes(result)
    if name == "u":
        return _spherical(result)
    if name == "lower":
        return _design_of(result).theta_lower.copy()
    if name == "flist":
        return dict(result.model.groups)
    if name == "cnms":
        from .summary import r_name

        return {t.name: [r_name(c) for c in t.column_names] for t in terms}
    if name == "Gp":
        return np.concatenate([[0], np.cumsum([t.n_effects for t in terms])]).astype(np.int64)
    if name == "n_rtrms":
        return len(terms)
    if name == "sigma":
        return float(np.sqrt(result.scale)) if linear else 1.0
    if name == "REML":
        return linear and result.method == "REML"
    X = np.asarray(result.model.exog)
    return {"n": int(result.nobs), "p": int(X.shape[1]), "q": int(sum(t.n_effects for t in terms)),
            "nth": len(result.theta), "REML": bool(linear and result.method == "REML"),
            "deviance" if not (linear and result.method == "REML") else "REMLcrit": float(-2.0 * result.llf)}
