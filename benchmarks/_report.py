"""The suite's verdicts and tables: targets met or not, and the Markdown it prints."""

import _harness
import numpy as np

COLUMNS = (
    "workload",
    "description",
    "interlace (s)",
    "lme4 (s)",
    "ratio (lme4/interlace)",
    "target",
    "met?",
    "interlace peak memory",
    "lme4 peak memory",
)


# --- verdicts ----------------------------------------------------------------
def ratio(row):
    """lme4's median seconds over interlace's, or None if either is missing."""
    py, r = row.get("interlace"), row.get("lme4")
    if not py or not r or not py.get("median"):
        return None
    return r["median"] / py["median"]


def verdict(target, row):
    """The "met?" cell: "yes", "no (what failed)" or "n/a (why)", against a `Target`."""
    if target is None:
        return "context"
    if row.get("scaled"):
        return "n/a (--quick size)"
    py, r = row.get("interlace"), row.get("lme4")
    if not py:
        return "n/a (interlace failed)"
    failed, missing = [], []
    if target.min_ratio is not None:
        value = ratio(row)
        if value is None:
            missing.append("lme4")
        elif value < target.min_ratio:
            failed.append("ratio")
    if target.max_seconds is not None and py["median"] > target.max_seconds:
        failed.append("time")
    if target.max_share_of_fit is not None and py["share_of_fit"] > target.max_share_of_fit:
        failed.append("share of the fit")
    peak = py.get("peak_bytes")
    if target.max_memory_gb is not None and (peak is None or peak > target.max_memory_gb * 2**30):
        failed.append("memory")
    if target.memory_vs_lme4:
        if not r or not r.get("peak_bytes"):
            missing.append("lme4")
        elif peak is None or peak > r["peak_bytes"]:
            failed.append("memory")
    if failed:
        return f"no ({', '.join(dict.fromkeys(failed))})"
    if missing:
        return "n/a (no lme4 run)"
    return "yes"


def agreement(row):
    """How closely the two fits agree: max|dtheta| and |dREML|, or W3's mean|dslope|."""
    py, r = row.get("interlace"), row.get("lme4")
    if not py or not r:
        return None
    if "slopes" in py and "slopes" in r and len(py["slopes"]) == len(r["slopes"]):
        return {"mean_abs_dslope": float(np.mean(np.abs(np.subtract(py["slopes"], r["slopes"]))))}
    if "theta" not in py or "theta" not in r:
        return None
    same = len(py["theta"]) == len(r["theta"])
    return {
        "max_abs_dtheta": float(np.max(np.abs(np.subtract(py["theta"], r["theta"]))))
        if same
        else None,
        "abs_dreml": abs(py["reml_crit"] - r["reml_crit"]),
    }


# --- cells -------------------------------------------------------------------
def seconds(value):
    """Seconds with three significant digits, never in exponent form."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 0.001:
        return f"{value:.3g}"
    return f"{value:.2g}"


def _time_cell(side, status):
    return seconds(side["median"]) if side else status


def _ratio_cell(value):
    if value is None:
        return "-"
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def _escape(text):
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def table_row(row):
    """The cells of one row, in `COLUMNS` order."""
    py, r = row.get("interlace"), row.get("lme4")
    description = row["description"]
    if row.get("formula"):
        description += f"; `{row['formula']}`"
    return [
        row["key"],
        _escape(description),
        _time_cell(py, row.get("interlace_status", "failed")),
        _time_cell(r, row.get("lme4_status", "not run")),
        _ratio_cell(row.get("ratio")),
        row.get("target_text", "-"),
        row.get("met", "-"),
        _harness.format_bytes(py and py.get("peak_bytes")),
        _harness.format_bytes(r and r.get("peak_bytes")),
    ]


def markdown(header, rows):
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def main_table(rows):
    """The suite's table: one line per row of the run."""
    return markdown(COLUMNS, [table_row(row) for row in rows])


def agreement_table(rows):
    """Agreement of interlace's and lme4's fits, for the rows where both ran; "" if none."""
    lines = []
    for row in rows:
        found = row.get("agreement")
        if not found:
            continue
        if "mean_abs_dslope" in found:
            text = f"mean\\|dslope\\| over the loop's fits {found['mean_abs_dslope']:.1e}"
        else:
            dtheta = found["max_abs_dtheta"]
            text = (
                f"max\\|dtheta\\| {'-' if dtheta is None else format(dtheta, '.1e')}, "
                f"\\|dREML\\| {found['abs_dreml']:.1e}"
            )
        converged = row["interlace"].get("converged")
        lines.append([row["key"], text, "yes" if converged else "no"])
    if not lines:
        return ""
    return markdown(("workload", "interlace vs lme4", "interlace converged"), lines)
