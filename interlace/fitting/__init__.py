"""The fitting pipeline, shared by the linear and the generalized mixed models.

- :mod:`.model_frame`: the formula and arguments read on the caller's data, rows with
  missing values dropped, the design built (R's model frame).
- :mod:`.conditioning`: the working scale every computation runs on, and its one
  back-transform.
- :mod:`.objective`, :mod:`.gradient`, :mod:`.blocked_gradient`: the linear model's
  profiled deviance and its derivatives on the penalised system
  (:mod:`interlace.linalg`), dense or blocked as :mod:`interlace.linalg.dispatch` decides.
- :mod:`.start`, :mod:`.newton`, :mod:`.optimize`: start values, Newton's method and the
  optimiser with lme4's boundary and convergence checks.
- :mod:`.estimates`: beta, the BLUPs, variance components and fitted values at the optimum.
- :mod:`.linear`: the linear model's fit, from the design to the result.
- :mod:`.response`, :mod:`.pirls`, :mod:`.generalized`: the generalized model's response,
  penalised iteratively reweighted least squares on the same system and kernels, and its fit.
"""
