"""The workloads W1-W12 of the performance spec, and G1-G5 of the GLMM spec, one
definition each.

A `Workload` holds what the suite needs to run one row of its table: the data (a
bundled lme4 dataset, a `Simulation` by the spec's recipe, or the `Crossed` design
of W3), the formula, a size label, how it is timed (``kind``), its target and when
lme4 runs. The recipe is in ``shared/spec/performance.md`` (the GLMM one in
``shared/spec/glmm.md``); `Simulation.frame` follows it draw for draw
(``numpy.random.default_rng(1)``). `WORKLOADS` are ``run_suite.py``'s,
`GLMM_WORKLOADS` ``run_glmm.py``'s.

Grouping columns of generated data are written as integer codes and turned into
factors with levels in numeric order on both sides (`read_frame` in Python,
``factor(d$g1)`` in R), so interlace and lme4 see the same levels in the same order.

numpy and pandas are imported inside the functions, so that ``run_suite.py`` can pin
the BLAS threads before anything imports numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

SIM_FORMULA = "y ~ x + (1 | g1) + (1 | g2)"
SLOPE_FORMULA = "y ~ x + (1 + x | g1) + (1 | g2)"
SLEEP_FORMULA = "Reaction ~ Days + (Days | Subject)"
INSTEVAL_FORMULA = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)"
GLMM_VARIANTS = ("binomial", "poisson")
"""`Simulation` variants with a GLMM response."""


# --- data ------------------------------------------------------------------
@dataclass(frozen=True)
class Simulation:
    """Two crossed factors by the spec's recipe; ``variant`` "plain", "slope", "sparse" or
    "singular" (g2's effects truly zero: drawn as in "plain", then multiplied by 0), or
    "binomial" or "poisson": the GLMM recipe of ``shared/spec/glmm.md``, the same draws
    up to the effects, then ``eta = -0.5 + 0.5 x + u1[g1] + u2[g2]`` and ``y`` drawn
    from the family (0/1, or counts).

    ``quick`` is how much ``--quick`` divides the rows and the level counts by.
    """

    n: int
    n1: int
    n2: int
    variant: str = "plain"
    quick: int = 10
    seed: int = 1
    factors: tuple[str, ...] = ("g1", "g2")

    def scaled(self, quick):
        """This simulation, or with ``quick`` its ``--quick`` size (n, n1, n2 divided)."""
        if not quick:
            return self
        return replace(
            self, n=self.n // self.quick, n1=self.n1 // self.quick, n2=self.n2 // self.quick
        )

    @property
    def size(self):
        """E.g. ``"n = 1e5, 5,000 x 1,000 levels"``."""
        return f"n = {_count(self.n)}, {self.n1:,} x {self.n2:,} levels"

    def frame(self):
        """The simulated frame: ``y``, ``x`` and integer codes ``g1``, ``g2``."""
        import numpy as np
        import pandas as pd

        n, n1, n2 = self.n, self.n1, self.n2
        rng = np.random.default_rng(self.seed)  # the draw order is the spec's: keep it
        g1 = rng.integers(0, n1, n)
        if self.variant == "sparse":  # each g1 level meets about 20 neighbouring g2 levels
            g2 = (g1 * n2 // n1 + rng.integers(-10, 10, n)) % n2
        else:
            g2 = rng.integers(0, n2, n)
        x = rng.standard_normal(n)
        u1 = rng.standard_normal(n1) * 1.0
        u2 = rng.standard_normal(n2) * (0.0 if self.variant == "singular" else 0.5)
        if self.variant in GLMM_VARIANTS:
            eta = -0.5 + 0.5 * x + u1[g1] + u2[g2]
            y = (
                rng.binomial(1, 1 / (1 + np.exp(-eta)))
                if self.variant == "binomial"
                else rng.poisson(np.exp(eta))
            )
            return pd.DataFrame({"y": y, "x": x, "g1": g1, "g2": g2})
        y = 1 + 0.5 * x + u1[g1] + u2[g2] + rng.standard_normal(n)
        if self.variant == "slope":
            b1 = rng.standard_normal(n1) * 0.3
            y += b1[g1] * x
        return pd.DataFrame({"y": y, "x": x, "g1": g1, "g2": g2})


@dataclass(frozen=True)
class Crossed:
    """W3's design: ``n_subj`` subjects x ``n_item`` items, fully crossed, one row each."""

    n_subj: int = 30
    n_item: int = 20
    seed: int = 1
    factors: tuple[str, ...] = ("subj", "item")

    def scaled(self, quick):
        """Unchanged: W3 is small already."""
        return self

    @property
    def size(self):
        """E.g. ``"30 x 20 crossed, 600 rows"``."""
        return f"{self.n_subj} x {self.n_item} crossed, {self.n_subj * self.n_item} rows"

    def frame(self):
        """The W3 frame: ``y``, ``x`` and integer codes ``subj``, ``item``."""
        import numpy as np
        import pandas as pd

        subj = np.repeat(np.arange(self.n_subj), self.n_item)
        item = np.tile(np.arange(self.n_item), self.n_subj)
        rng = np.random.default_rng(self.seed)  # the draw order matters: keep it
        x = rng.standard_normal(len(subj))
        u_subj = rng.standard_normal(self.n_subj)
        u_item = 0.5 * rng.standard_normal(self.n_item)
        y = 1 + 0.5 * x + u_subj[subj] + u_item[item] + rng.standard_normal(len(subj))
        return pd.DataFrame({"y": y, "x": x, "subj": subj, "item": item})


@dataclass(frozen=True)
class FreshCrossed:
    """W3-LOOP's data: ``n_frames`` new frames of W3's column schema, as a simulation
    study draws them: per frame (seed 1, 2, ...) new x ~ N(0, 1), new subject and
    item effects, and each of the ``n_rows`` rows' subject (of ``n_subj``) and item
    (of ``n_item``) drawn at random. ``frame()`` stacks them with a ``rep`` column;
    ``split`` gives the frames back with ``subj`` and ``item`` as factors."""

    n_frames: int = 1000
    n_subj: int = 30
    n_item: int = 20
    n_rows: int = 600
    factors: tuple[str, ...] = ()  # made factors frame by frame (`split`)

    def scaled(self, quick):
        """100 frames with ``--quick``."""
        return replace(self, n_frames=100) if quick else self

    @property
    def size(self):
        """E.g. ``"1,000 frames of 600 rows, 30 x 20 levels"``."""
        return f"{self.n_frames:,} frames of {self.n_rows} rows, {self.n_subj} x {self.n_item} levels"

    def one(self, seed):
        """Frame ``seed`` (1, 2, ...): ``y``, ``x`` and the labels ``subj`` ("s0"...) and
        ``item`` ("i0"...)."""
        import numpy as np
        import pandas as pd

        rng = np.random.default_rng(seed)  # the draw order matters: keep it
        subj = rng.integers(0, self.n_subj, self.n_rows)
        item = rng.integers(0, self.n_item, self.n_rows)
        x = rng.standard_normal(self.n_rows)
        u_subj = rng.standard_normal(self.n_subj)
        u_item = 0.5 * rng.standard_normal(self.n_item)
        y = 1 + 0.5 * x + u_subj[subj] + u_item[item] + rng.standard_normal(self.n_rows)
        return pd.DataFrame({"y": y, "x": x, "subj": [f"s{i}" for i in subj],
                             "item": [f"i{i}" for i in item]})

    def frame(self):
        """Every frame, stacked, with its number in ``rep``."""
        import pandas as pd

        return pd.concat([self.one(seed).assign(rep=seed) for seed in range(1, self.n_frames + 1)],
                         ignore_index=True)


def split_frames(frame):
    """The frames of a stacked `FreshCrossed` frame, in ``rep`` order, ``subj`` and
    ``item`` as Categoricals of the labels each frame has (R's ``droplevels``)."""
    import pandas as pd

    out = []
    for _, part in frame.groupby("rep", sort=True):
        part = part.drop(columns="rep").reset_index(drop=True)
        for column in ("subj", "item"):
            part[column] = pd.Categorical(part[column])
        out.append(part)
    return out


def data_suffix(for_r):
    """ ".csv" if R reads the file or pyarrow is missing, else ".parquet" (faster to read)."""
    import importlib.util

    return ".csv" if for_r or importlib.util.find_spec("pyarrow") is None else ".parquet"


def write_frame(frame, path):
    """Write a generated frame: CSV (R reads it too) or, for a ``.parquet`` path, Parquet.

    pandas writes floats in their shortest round-trip form, so both readers get the
    same doubles.
    """
    path = Path(path)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def read_frame(path, factors):
    """Read a frame written by `write_frame`, with `as_factors` applied to ``factors``."""
    import pandas as pd

    path = Path(path)
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, float_precision="round_trip")
    return as_factors(frame, factors)


def as_factors(frame, factors):
    """Turn the integer-coded ``factors`` columns of ``frame`` into Categoricals, in place.

    Each factor's levels are its distinct codes in numeric order, renamed to strings:
    the order R's ``factor()`` gives the same codes.
    """
    import pandas as pd

    for column in factors:
        frame[column] = pd.Categorical(frame[column]).rename_categories(str)
    return frame


def _count(n):
    """``100000`` as ``"1e5"``, other counts with thousands separators."""
    text = f"{n:.0e}".replace("e+0", "e").replace("e+", "e")
    return text if n >= 10_000 and float(text) == n else f"{n:,}"


# --- targets ---------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """What a workload must reach; every limit given must hold for "met".

    ``min_ratio`` is on lme4's seconds over interlace's; ``max_seconds`` and
    ``max_memory_gb`` bound interlace's median time and peak memory;
    ``memory_vs_lme4`` asks for interlace's peak memory to be no more than lme4's;
    ``max_slowdown`` bounds interlace's median time over its median time on the
    workload's ``regular`` design (W12); ``min_glmm_ratio`` is on the seconds of the
    ``glmm`` package (PyPI) over interlace's (G1-G4, ``run_glmm.py``);
    ``max_share_of_fit`` bounds an attribute's median time over the median time of the
    fits it was read from, in the same process ("attribute" rows).
    """

    text: str
    min_ratio: float | None = None
    max_seconds: float | None = None
    max_memory_gb: float | None = None
    memory_vs_lme4: bool = False
    max_slowdown: float | None = None
    min_glmm_ratio: float | None = None
    max_share_of_fit: float | None = None


# --- workloads -------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """One row of the suite's table.

    ``kind``: "fit" times whole ``interlace.fit(formula, frame)`` calls; "refit" times
    loops of ``n_refits`` ``result.refit(y)`` calls; "cold-start" times fresh processes
    (see ``_coldstart.py``); "busy" times fits as "fit" does, with no thread count
    pinned, once on the quiet machine and once beside a process spinning a core. ``data`` is a bundled dataset's name, a `Simulation` or a
    `Crossed` design. ``lme4`` says when lme4 runs: "yes", "large" (only with
    ``--r-large`` or ``--quick``) or "no", with ``lme4_note`` saying why. With
    ``all_cores`` interlace runs on every core of the machine whatever ``--threads``
    says: a target in seconds (W8), with no single-threaded lme4 beside it. ``regular``
    is a second design that interlace also fits, the same with every variance non-zero:
    the target compares the two times (W12, a singular fit against a regular one).
    ``family`` is None for a linear mixed model, else the GLMM family ("binomial",
    "poisson") that ``run_glmm.py`` fits (G1-G5); there ``lme4`` says when glmer runs.
    "fresh-loop" times loops of ``interlace.fit`` over the frames of a `FreshCrossed`
    (a new frame each time: formula parsed, frame read, result built), against
    ``lmer`` over the same frames. "attribute" times the access of ``attribute`` (e.g. ``"random_effects_se"``) on new
    fits, beside the fits' own time, in one process; with ``busy`` it runs beside a
    process spinning a core. "cold-cache" times a fresh process whose ``NUMBA_CACHE_DIR``
    is a new empty directory, importing interlace and fitting the bundled dataset
    (the very first fit: every kernel it needs compiled). "dask" writes the `Simulation`
    as Parquet partitions and fits it from ``dask.dataframe.read_parquet`` on a
    LocalCluster (``dask_fit.py``); rows whose target has no limit are context, and fit
    the same rows in memory beside it.
    """

    key: str
    description: str
    formula: str
    data: str | Simulation | Crossed | FreshCrossed
    target: Target
    kind: str = "fit"
    lme4: str = "yes"
    lme4_note: str = ""
    all_cores: bool = False
    n_refits: int = 0
    regular: Simulation | None = None
    family: str | None = None
    attribute: str | None = None
    busy: bool = False

    def sized(self, quick):
        """The data at full size, or at ``--quick`` size."""
        return self.data if isinstance(self.data, str) else self.data.scaled(quick)

    def size(self, quick=False):
        """The size label, e.g. ``"n = 1e5, 5,000 x 1,000 levels"``."""
        data = self.sized(quick)
        return DATASET_SIZES.get(data, data) if isinstance(data, str) else data.size

    @property
    def scales(self):
        """True if ``--quick`` changes this workload's size."""
        return isinstance(self.data, (Simulation, FreshCrossed))

    @property
    def factors(self):
        """Grouping columns to turn into factors after reading generated data."""
        return () if isinstance(self.data, str) else self.data.factors


DATASET_SIZES = {
    "sleepstudy": "180 rows, 18 subjects",
    "Penicillin": "144 rows, 24 x 6 levels",
    "InstEval": "73,421 rows, 2,972 x 1,128 (x 14) levels",
    "VerbAgg": "7,584 rows, 316 x 24 levels",
    "grouseticks": "403 rows, 118 x 403 x 63 levels",
}

_LARGE_NOTE = "minutes in lme4: run with --r-large"

WORKLOADS = {
    w.key: w
    for w in (
        Workload(
            "W1",
            "sleepstudy, whole fit() from a frame",
            SLEEP_FORMULA,
            "sleepstudy",
            Target(">= 5x", min_ratio=5.0),
        ),
        Workload(
            "W2",
            "Penicillin",
            "diameter ~ 1 + (1 | plate) + (1 | sample)",
            "Penicillin",
            Target(">= 3x", min_ratio=3.0),
        ),
        Workload(
            "W3",
            "200 refits (time of the loop), responses simulated from the fit",
            "y ~ x + (1 | subj) + (1 | item)",
            Crossed(),
            Target(">= 50x refits/s", min_ratio=50.0),
            kind="refit",
            n_refits=200,
        ),
        Workload(
            "W3-LOOP",
            "fresh fits in a loop: fit(formula, frame) on new frames of W3's schema (new x, "
            "new effects, random subject and item per row), a simulation study's loop",
            "y ~ x + (1 | subj) + (1 | item)",
            FreshCrossed(),
            Target(">= 10x fits/s", min_ratio=10.0),
            kind="fresh-loop",
        ),
        Workload(
            "W4",
            "InstEval, REML",
            INSTEVAL_FORMULA,
            "InstEval",
            Target(">= 30x", min_ratio=30.0),
        ),
        Workload(
            "W4-SE",
            "W4's conditional SDs of the BLUPs (`random_effects_se`), read from new fits, "
            "against those fits' own time",
            INSTEVAL_FORMULA,
            "InstEval",
            Target("<= 0.5x the fit's time", max_share_of_fit=0.5),
            kind="attribute",
            attribute="random_effects_se",
            lme4="no",
            lme4_note="the target compares interlace with its own fit",
        ),
        Workload(
            "W4-SE-BUSY",
            "as W4-SE, beside a process spinning a core (interlace's default threads)",
            INSTEVAL_FORMULA,
            "InstEval",
            Target("<= 0.5x the fit's time", max_share_of_fit=0.5),
            kind="attribute",
            attribute="random_effects_se",
            busy=True,
            lme4="no",
            lme4_note="the target compares interlace with its own fit",
        ),
        Workload(
            "W4-DF",
            "W4's Satterthwaite df (`fe_df`, analytic derivatives), read from new fits",
            INSTEVAL_FORMULA,
            "InstEval",
            Target("< 1 s", max_seconds=1.0),
            kind="attribute",
            attribute="fe_df",
            lme4="no",
            lme4_note="an absolute target",
        ),
        Workload(
            "W5",
            "InstEval, service x dept fixed effects",
            "y ~ service * dept + (1 | s) + (1 | d)",
            "InstEval",
            Target(">= 30x", min_ratio=30.0),
        ),
        Workload(
            "W6",
            "simulated",
            SIM_FORMULA,
            Simulation(100_000, 5_000, 1_000, quick=10),
            Target(">= 30x", min_ratio=30.0),
        ),
        Workload(
            "W6-BUSY",
            "W6 while another process spins a core (a busy-loop process started beside the "
            "fit), interlace's default threads (none pinned), against W6 on the quiet machine "
            "with the same threads in the same run",
            SIM_FORMULA,
            Simulation(100_000, 5_000, 1_000, quick=10),
            Target("busy / quiet <= 1.5x", max_slowdown=1.5),
            kind="busy",
            lme4="no",
            lme4_note="the target compares interlace with itself on the quiet machine",
        ),
        Workload(
            "W7",
            "simulated",
            SIM_FORMULA,
            Simulation(1_000_000, 5_000, 1_000, quick=100),
            Target(">= 30x, memory <= lme4's", min_ratio=30.0, memory_vs_lme4=True),
            lme4="large",
            lme4_note=_LARGE_NOTE,
        ),
        Workload(
            "W8",
            "simulated",
            SIM_FORMULA,
            Simulation(10_000_000, 100_000, 10_000, quick=100),
            Target("< 45 s on 2 cores, < 8 GB", max_seconds=45.0, max_memory_gb=8.0),
            lme4="no",
            lme4_note="lme4 would likely take hours at 1e7 rows",
            all_cores=True,
        ),
        Workload(
            "W8-1",
            "as W8, on one core",
            SIM_FORMULA,
            Simulation(10_000_000, 100_000, 10_000, quick=100),
            Target("< 120 s, < 8 GB", max_seconds=120.0, max_memory_gb=8.0),
            lme4="no",
            lme4_note="lme4 would likely take hours at 1e7 rows",
        ),
        Workload(
            "W9",
            "simulated, slope variant",
            SLOPE_FORMULA,
            Simulation(100_000, 5_000, 1_000, variant="slope", quick=10),
            Target(">= 10x", min_ratio=10.0),
        ),
        Workload(
            "W10",
            "cold start: new process, import interlace + fit sleepstudy "
            "(Numba cache warm) vs Rscript -e 'library(lme4); lmer(...)'",
            SLEEP_FORMULA,
            "sleepstudy",
            Target("<= Rscript", min_ratio=1.0),
            kind="cold-start",
        ),
        Workload(
            "W10-INSTEVAL",
            "cold cache: a new process, NUMBA_CACHE_DIR an empty directory, imports interlace "
            "and fits InstEval: the very first fit, kernels compiled",
            INSTEVAL_FORMULA,
            "InstEval",
            Target("< 8 s", max_seconds=8.0),
            kind="cold-cache",
            lme4="no",
            lme4_note="an absolute target",
        ),
        Workload(
            "W11",
            "simulated, sparse co-occurrence (about 20 g2 levels per g1 level)",
            SIM_FORMULA,
            Simulation(1_000_000, 50_000, 50_000, variant="sparse", quick=100),
            Target("< 60 s, < 4 GB, memory <= lme4's", max_seconds=60.0, max_memory_gb=4.0,
                   memory_vs_lme4=True),
            lme4="large",
            lme4_note=_LARGE_NOTE,
        ),
        Workload(
            "W12",
            "singular: simulated with g2's variance truly zero (its estimate is 0), "
            "against the same design with it non-zero",
            SIM_FORMULA,
            Simulation(60_000, 3_000, 600, variant="singular", quick=10),
            Target("<= 2x the regular fit's time", max_slowdown=2.0),
            lme4="no",
            lme4_note="the target compares interlace with itself on the regular design",
            regular=Simulation(60_000, 3_000, 600, quick=10),
        ),
        Workload(
            "W12-DASK",
            "from Dask: the recipe written as Parquet partitions of 1e6 rows (~3 GB), "
            "`interlace.fit(formula, dd.read_parquet(...))` on a LocalCluster of this machine's "
            "cores (one worker process a core); the driver's peak memory (benchmarks/dask_fit.py)",
            SIM_FORMULA,
            Simulation(100_000_000, 100_000, 10_000, quick=100),
            Target("driver < 2 GB", max_memory_gb=2.0),
            kind="dask",
            lme4="no",
            lme4_note="lme4 needs the table in memory",
        ),
        Workload(
            "W12-DASK-1E7",
            "W8's design (1e7 rows) written as Parquet and fitted from Dask as W12-DASK, beside "
            "the same rows fitted in memory (pandas): the overhead a row",
            SIM_FORMULA,
            Simulation(10_000_000, 100_000, 10_000, quick=100),
            Target("context: Dask against in memory"),
            kind="dask",
            lme4="no",
            lme4_note="the row compares interlace from Dask with interlace in memory",
        ),
    )
}
"""Every workload, by key, in the order the table lists them."""

IMPORT_TARGET = Target("< 0.5 s", max_seconds=0.5)
COLD_CACHE_TARGET = Target("<= 3x Rscript", min_ratio=1 / 3)
"""W10's cold-cache row: the very first fit within three times the ``Rscript`` line."""
"""W10's second target: ``import interlace`` in a fresh process, start-up subtracted."""


# --- GLMM workloads (run_glmm.py) -------------------------------------------------
def _simulated_glmm(key, family, n, target, **options):
    """A GLMM workload on the spec's recipe: ``n`` rows, 5,000 x 1,000 crossed levels
    (``--quick``: 10x fewer at 1e5 rows, 100x at 1e6), `SIM_FORMULA`, Laplace."""
    return Workload(
        key,
        f"simulated {family}, Laplace",
        SIM_FORMULA,
        Simulation(n, 5_000, 1_000, variant=family, quick=10 if n <= 100_000 else 100),
        target,
        family=family,
        **options,
    )


GLMM_WORKLOADS = {
    w.key: w
    for w in (
        Workload(
            "G1",
            "VerbAgg, binomial (r2: N/Y), Laplace",
            "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
            "VerbAgg",
            Target(">= 40x glmer, faster than glmm", min_ratio=40.0, min_glmm_ratio=1.0),
            family="binomial",
        ),
        Workload(
            "G2",
            "grouseticks, poisson, Laplace",
            "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
            "grouseticks",
            Target(">= 15x glmer, faster than glmm", min_ratio=15.0, min_glmm_ratio=1.0),
            family="poisson",
        ),
        _simulated_glmm(
            "G3",
            "binomial",
            100_000,
            Target(">= 30x glmer, 2x faster than glmm", min_ratio=30.0, min_glmm_ratio=2.0),
        ),
        _simulated_glmm(
            "G4",
            "poisson",
            100_000,
            Target(">= 30x glmer, faster than glmm", min_ratio=30.0, min_glmm_ratio=1.0),
        ),
        _simulated_glmm(
            "G5",
            "binomial",
            1_000_000,
            Target("< 30 s, < 2 GB", max_seconds=30.0, max_memory_gb=2.0),
            lme4="large",
            lme4_note="tens of minutes in glmer at 1e6 rows: run with --with-glmer-g5",
        ),
    )
}
"""The GLMM workloads of ``shared/spec/glmm.md``, by key, in the table's order."""
