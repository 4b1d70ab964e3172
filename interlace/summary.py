"""lme4/lmerTest-style summary of a fit: text, HTML and the tables as DataFrames."""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd


def r_name(name: str) -> str:
    """lme4's display name of an effect (``Intercept`` -> ``(Intercept)``)."""
    return "(Intercept)" if name == "Intercept" else name


def _signif_stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    for cut, star in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return star
    return ""


def _decimals(values: np.ndarray, significant: int = 4) -> int:
    """Decimals that show the smallest non-zero magnitude with ``significant`` digits."""
    finite = np.abs(values[np.isfinite(values) & (values != 0)])
    if finite.size == 0:
        return 3
    return int(min(8, max(0, significant - 1 - np.floor(np.log10(finite.min())))))


def _format_p(p: float) -> str:
    if not np.isfinite(p):
        return "NA"
    if p < 2e-16:
        return "< 2e-16"
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.2e}"


def convergence_lines(result) -> list[str]:
    """lme4's lines on convergence below a summary (``.prt.warn``): none when the fit
    converged off the boundary; else the optimiser's convergence code, then the
    singular-fit note and the convergence check's failures (max|grad|, the Hessian).

    Examples
    --------
    >>> import interlace, warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff2"))
    >>> convergence_lines(m)
    ['optimizer (auto-compiled) convergence code: 0 (OK)', 'boundary (singular) fit: see interlace.isSingular']
    """
    record = result.optimization
    messages = ["boundary (singular) fit: see interlace.isSingular"] if result.is_singular else []
    check = getattr(record, "check", None)
    if check is not None:
        messages += list(check.messages)
    elif not result.converged:
        messages.append(record.message)
    code = getattr(record, "optimizer_code", 0)
    if not messages and code == 0:
        return []
    own = getattr(record, "optimizer_message", "") or record.message
    return [f"optimizer ({record.optimizer}) convergence code: {code} ({'OK' if code == 0 else own})", *messages]


@dataclass(frozen=True)
class Summary:
    """A fit's summary.

    Attributes
    ----------
    header : list of str
        The lines above the tables (method, formula, criterion, counts).
    residuals : pandas.Series
        Quantiles of the scaled residuals.
    random_effects : pandas.DataFrame
        Groups, Name, Variance, Std.Dev. and Corr columns (lme4's ``VarCorr``).
    fixed_effects : pandas.DataFrame
        Estimate, Std. Error, df, t value, Pr(>|t|) (a generalized fit: Estimate,
        Std. Error, z value, Pr(>|z|)).
    fe_correlation : pandas.DataFrame
        Correlation of the fixed effects.
    footer : list of str
    """

    header: list[str]
    residuals: pd.Series
    random_effects: pd.DataFrame
    fixed_effects: pd.DataFrame
    fe_correlation: pd.DataFrame
    footer: list[str]

    @classmethod
    def from_result(cls, result) -> Summary:
        """Build the summary of a :class:`~interlace.result.CrossedLMEResult`."""
        method = result.method
        header = [
            f"Linear mixed model fit by {'REML' if method == 'REML' else 'maximum likelihood'}. "
            f"t-tests use {'Kenward-Roger' if result.df_method == 'kenward-roger' else 'Satterthwaite'}'s method",
            f"Formula: {result.model.formula}",
            "",
        ]
        if method == "REML":
            header.append(f"REML criterion at convergence: {result.deviance:.1f}")
        else:
            header.append(f"{'AIC':>9} {'BIC':>9} {'logLik':>9} {'deviance':>9} {'df.resid':>9}")
            header.append(
                f"{result.aic:9.1f} {result.bic:9.1f} {result.llf:9.1f} {result.deviance:9.1f} "
                f"{result.nobs - result.nparams:9d}"
            )
        sigma = float(np.sqrt(result.scale))
        scaled = result.resid / sigma
        residuals = pd.Series(np.quantile(scaled, [0, 0.25, 0.5, 0.75, 1.0]),
                              index=["Min", "1Q", "Median", "3Q", "Max"])
        fe = pd.DataFrame({
            "Estimate": result.fe_params,
            "Std. Error": result.fe_bse,
            "df": result.fe_df,
            "t value": result.fe_tvalues,
            "Pr(>|t|)": result.fe_pvalues,
        })
        return cls._assemble(header, residuals, result, fe, residual_row=(result.scale, sigma))

    @classmethod
    def _assemble(cls, header: list[str], residuals: pd.Series, result, fe: pd.DataFrame,
                  residual_row: tuple[float, float] | None) -> Summary:
        rows = []
        for group, comp in result.variance_components.items():
            if isinstance(comp, float):
                rows.append((group, r_name(result.random_effects[group].name), comp, np.sqrt(comp), []))
                continue
            names = list(comp.index)
            cov = comp.to_numpy()
            sd = np.sqrt(np.diag(cov))
            for i, nm in enumerate(names):
                keys = [f"{group}:{names[j]},{nm}" for j in range(i)]
                corrs = [result.correlation_params.get(key, np.nan) for key in keys]
                if not any(key in result.correlation_params for key in keys):
                    corrs = []  # separate (uncorrelated) lme4 terms: no Corr entries
                rows.append((group if i == 0 else "", r_name(nm), cov[i, i], sd[i], corrs))
        if residual_row is not None:
            rows.append(("Residual", "", residual_row[0], residual_row[1], []))
        max_corr = max((len(r[4]) for r in rows), default=0)
        re_table = pd.DataFrame({
            "Groups": [r[0] for r in rows],
            "Name": [r[1] for r in rows],
            "Variance": [r[2] for r in rows],
            "Std.Dev.": [r[3] for r in rows],
        })
        for c in range(max_corr):
            re_table[f"Corr{c + 1}" if max_corr > 1 else "Corr"] = [
                r[4][c] if c < len(r[4]) and np.isfinite(r[4][c]) else np.nan for r in rows
            ]
        fe.index = [r_name(n) for n in fe.index]
        sd = np.sqrt(np.diag(result.fe_cov))
        with np.errstate(invalid="ignore", divide="ignore"):  # a zero SD (a failed fit): NaN correlations
            corr = result.fe_cov / np.outer(sd, sd)
        fe_corr = pd.DataFrame(corr, index=fe.index, columns=fe.index)
        groups = ", ".join(f"{g}, {n}" for g, n in result.ngroups.items())
        footer = [f"Number of obs: {result.nobs}, groups:  {groups}"]
        if result.n_dropped:
            footer.append(f"({result.n_dropped} observation{'s' if result.n_dropped > 1 else ''} "
                          "deleted due to missingness)")
        return cls(header, residuals, re_table, fe, fe_corr, footer + convergence_lines(result))

    @classmethod
    def from_glmm_result(cls, result) -> Summary:
        """Build the summary of a :class:`~interlace.glmm_result.CrossedGLMMResult`, in
        glmer's layout (its ``deviance`` column is -2 llf, as glmer prints it)."""
        family = result.family
        header = [
            f"Generalized linear mixed model fit by maximum likelihood ({result.approximation})",
            f" Family: {family.name}  ( {family.link.name} )",
            f"Formula: {result.model.formula}",
            "",
            f"{'AIC':>9} {'BIC':>9} {'logLik':>9} {'deviance':>9} {'df.resid':>9}",
            f"{result.aic:9.1f} {result.bic:9.1f} {result.llf:9.1f} {-2.0 * result.llf:9.1f} "
            f"{result.nobs - result.nparams:9d}",
        ]
        residuals = pd.Series(np.quantile(result.resid_pearson, [0, 0.25, 0.5, 0.75, 1.0]),
                              index=["Min", "1Q", "Median", "3Q", "Max"])
        fe = pd.DataFrame({
            "Estimate": result.fe_params,
            "Std. Error": result.fe_bse,
            "z value": result.fe_zvalues,
            "Pr(>|z|)": result.fe_pvalues,
        })
        return cls._assemble(header, residuals, result, fe, residual_row=None)

    def _re_text(self) -> list[str]:
        t = self.random_effects
        corr_cols = [c for c in t.columns if c.startswith("Corr")]
        cells = [["Groups", "Name", "Variance", "Std.Dev."] + (["Corr"] + [""] * (len(corr_cols) - 1) if corr_cols else [])]
        for _, row in t.iterrows():
            line = [row["Groups"], row["Name"], f"{row['Variance']:.4g}", f"{row['Std.Dev.']:.4g}"]
            for c in corr_cols:
                v = row[c]
                line.append("" if pd.isna(v) else f"{v:.2f}")
            cells.append(line)
        widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
        out = []
        for r in cells:
            parts = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
            parts += [r[i].rjust(widths[i]) for i in range(2, len(r))]
            out.append(" " + " ".join(parts).rstrip())
        return out

    def _fe_text(self) -> list[str]:
        fe = self.fixed_effects
        if fe.empty:
            return ["No fixed effect coefficients"]
        statistic, p_column = fe.columns[-2], fe.columns[-1]  # t value and Pr(>|t|), or z's
        cells = [["", *fe.columns, ""]]
        est_dec = _decimals(fe["Std. Error"].to_numpy())
        for name, row in fe.iterrows():
            cells.append([
                name, f"{row['Estimate']:.{est_dec}f}", f"{row['Std. Error']:.{est_dec}f}",
                *([f"{row['df']:.3f}"] if "df" in fe.columns else []),
                f"{row[statistic]:.3f}", _format_p(row[p_column]), _signif_stars(row[p_column]),
            ])
        n = len(cells[0])
        widths = [max(len(r[i]) for r in cells) for i in range(n)]
        out = []
        for r in cells:
            out.append((r[0].ljust(widths[0]) + " " + " ".join(r[i].rjust(widths[i]) for i in range(1, n - 1))
                        + " " + r[n - 1].ljust(widths[n - 1])).rstrip())
        out.append("---")
        out.append("Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1")
        return out

    def __str__(self) -> str:
        lines = list(self.header)
        lines += ["", "Scaled residuals: ",
                  " ".join(f"{k:>8}" for k in self.residuals.index),
                  " ".join(f"{v:8.4f}" for v in self.residuals.to_numpy()),
                  "", "Random effects:"]
        lines += self._re_text()
        lines += self.footer[:1]
        lines += ["", "Fixed effects:"]
        lines += self._fe_text()
        if len(self.fe_correlation) > 1:
            lines += ["", "Correlation of Fixed Effects:"]
            short = ["(Intr)" if n == "(Intercept)" else n[:6] for n in self.fe_correlation.index]
            corr = self.fe_correlation.to_numpy()
            width = max(len(n) for n in self.fe_correlation.index)
            lines.append(" " * width + " " + " ".join(f"{s:>6}" for s in short[:-1]))
            for i, name in enumerate(self.fe_correlation.index[1:], start=1):
                lines.append(name.ljust(width) + " " + " ".join(f"{corr[i, j]:6.3f}" for j in range(i)))
        lines += self.footer[1:]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        parts = [f"<p>{html.escape(line)}</p>" for line in self.header if line]
        parts.append("<h4>Random effects</h4>")
        parts.append(self.random_effects.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep=""))
        parts.append(f"<p>{html.escape(self.footer[0])}</p>")
        parts.append("<h4>Fixed effects</h4>")
        parts.append(self.fixed_effects.to_html(float_format=lambda v: f"{v:.4g}"))
        parts += [f"<p>{html.escape(line)}</p>" for line in self.footer[1:]]
        return "<div class='interlace-summary'>" + "\n".join(parts) + "</div>"
