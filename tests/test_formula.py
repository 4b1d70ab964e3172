"""lme4's random-term syntax: parsing, expansion, and the models it must give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.formula.random import parse_random_term, split_formula


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("(1 | g)", [("1", "g")]),
        ("(x | g)", [("1 + x", "g")]),
        ("(1 + x | g)", [("1 + x", "g")]),
        ("(0 + x | g)", [("0 + x", "g")]),
        ("(-1 + x | g)", [("0 + x", "g")]),
        ("(x || g)", [("1", "g"), ("0 + x", "g")]),
        ("(1 | a/b)", [("1", "a"), ("1", "b:a")]),
        ("(1 | a/b/c)", [("1", "a"), ("1", "b:a"), ("1", "c:b:a")]),
        ("(1 | a:b)", [("1", "a:b")]),
    ],
)
def test_random_term_expansion(term, expected):
    assert [(t.expr, t.group_name) for t in parse_random_term(term)] == expected


def test_split_formula_keeps_fixed_part():
    fixed, terms = split_formula("y ~ x * z - 1 + (1 | g) + (0 + x | h)")
    assert fixed == "y ~ x * z - 1"
    assert [t.group_name for t in terms] == ["g", "h"]


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return interlace.load_dataset("sleepstudy")


def test_groups_and_random_arguments_give_the_same_model(sleep):
    a = interlace.fit("Reaction ~ Days + (1 | Subject)", sleep)
    b = interlace.fit("Reaction ~ Days", sleep, groups="Subject")
    c = interlace.fit("Reaction ~ Days", sleep, groups=["Subject"])
    d = interlace.fit("Reaction ~ Days", sleep, random="1 | Subject")
    for other in (b, c, d):
        np.testing.assert_array_equal(other.theta, a.theta)
        assert other.llf == a.llf


def test_uncorrelated_equals_separate_terms(sleep):
    a = interlace.fit("Reaction ~ Days + (Days || Subject)", sleep)
    b = interlace.fit("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert a.correlation_params == {} and list(a.random_effects["Subject"].columns) == ["Intercept", "Days"]


def test_nested_equals_explicit_interaction():
    pastes = interlace.load_dataset("Pastes")
    a = interlace.fit("strength ~ 1 + (1 | batch/cask)", pastes)
    b = interlace.fit("strength ~ 1 + (1 | batch) + (1 | cask:batch)", pastes)
    assert a.llf == pytest.approx(b.llf, abs=1e-9)
    assert set(a.random_effects) == {"batch", "cask:batch"}
    assert a.random_effects["cask:batch"].index[0] == "a:A"


@pytest.mark.filterwarnings("ignore::interlace.SingularFitWarning")
def test_categorical_slope_has_one_column_per_level():
    cake = interlace.load_dataset("cake")
    m = interlace.fit("angle ~ temp + (0 + recipe | replicate)", cake)
    assert list(m.random_effects["replicate"].columns) == ["recipe[A]", "recipe[B]", "recipe[C]"]
    assert len(m.theta) == 6
    m2 = interlace.fit("angle ~ temp + (recipe | replicate)", cake)
    assert list(m2.random_effects["replicate"].columns) == ["Intercept", "recipe[T.B]", "recipe[T.C]"]


def test_categorical_order_sets_the_reference_level():
    cake = interlace.load_dataset("cake")
    reordered = cake.assign(recipe=cake["recipe"].cat.reorder_categories(["C", "A", "B"]))
    m = interlace.fit("angle ~ recipe + (1 | replicate)", reordered)
    assert list(m.fe_params.index) == ["Intercept", "recipe[T.A]", "recipe[T.B]"]
    base = interlace.fit("angle ~ recipe + (1 | replicate)", cake)
    assert m.fe_params["Intercept"] == pytest.approx(base.fe_params["Intercept"] + base.fe_params["recipe[T.C]"], rel=1e-6)


def test_grouping_columns_of_any_dtype_are_factors(sleep):
    as_int = sleep.assign(Subject=sleep["Subject"].astype(str).astype(int))
    as_str = sleep.assign(Subject=sleep["Subject"].astype(str))
    a = interlace.fit("Reaction ~ Days + (1 | Subject)", as_int)
    b = interlace.fit("Reaction ~ Days + (1 | Subject)", as_str)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-10)
    assert a.random_effects["Subject"].index.tolist() == [str(s) for s in sorted(as_int["Subject"].unique())]


def test_two_terms_with_the_same_effect_on_one_factor_are_refused(sleep):
    with pytest.raises(interlace.FormulaError, match=r"appear in more than one term"):
        interlace.fit("Reaction ~ Days + (1 | Subject) + (1 | Subject)", sleep)


def _factors():
    rng = np.random.default_rng(4)
    n = 80
    return pd.DataFrame({
        "y": rng.standard_normal(n), "x": rng.standard_normal(n),
        "a": pd.Categorical(rng.choice(list("zyx"), n), categories=list("zyx")),  # category order, not sorted
        "b": rng.choice(["p", "q", "r"], n), "c": rng.choice(["u", "v"], n),
    })


PLAIN = {
    "Reaction ~ Days": "sleepstudy", "Reaction ~ 1": "sleepstudy", "Reaction ~ 0 + Days": "sleepstudy",
    "Reaction ~ Days + 1": "sleepstudy", "Reaction ~ Subject": "sleepstudy", "Reaction ~ Days * Subject": "sleepstudy",
    "y ~ service * dept": "InstEval", "y ~ service + lectage + studage": "InstEval",
    "y ~ a": "factors", "y ~ a + b": "factors", "y ~ a * b": "factors", "y ~ x * a": "factors",
    "y ~ a * x": "factors", "y ~ b * a": "factors", "y ~ a * b * c": "factors", "y ~ a * b + x": "factors",
    "y ~ x + a:b + a + b": "factors",
}


@pytest.mark.parametrize("formula", sorted(PLAIN))
def test_plain_fixed_part_equals_formulaic(formula):
    # with every interaction's margins present, R's coding is formulaic's
    import pickle

    from formulaic import model_matrix

    from interlace.formula.fixed import PlainColumns, design_for_new_data, fixed_design
    from interlace.formula.treatment import TreatmentColumns

    data = _factors() if PLAIN[formula] == "factors" else interlace.load_dataset(PLAIN[formula])
    plain = fixed_design(formula, data)
    reference = model_matrix(formula, data)
    assert isinstance(plain.model_spec, (PlainColumns, TreatmentColumns))  # built without formulaic
    assert plain.column_names == tuple(reference.rhs.columns)
    np.testing.assert_array_equal(plain.matrix, reference.rhs.to_numpy(dtype=float))
    np.testing.assert_array_equal(plain.response, reference.lhs.iloc[:, 0].to_numpy(dtype=float))
    spec = pickle.loads(pickle.dumps(plain.model_spec))  # bootMer ships it to workers
    new = data.head(5)
    np.testing.assert_array_equal(design_for_new_data(spec, new), reference.rhs.to_numpy(dtype=float)[:5])


def test_formulas_needing_formulaic_are_not_plain():
    from interlace.formula.fixed import PlainColumns, fixed_design
    from interlace.formula.treatment import TreatmentColumns

    data = interlace.load_dataset("sleepstudy")
    for formula in ("log(Reaction) ~ Days", "Reaction ~ Days + I(Days ** 2)", "Reaction ~ Days:Days"):
        spec = fixed_design(formula, data).model_spec
        assert not isinstance(spec, (PlainColumns, TreatmentColumns)), formula


def test_plain_path_refuses_unseen_levels_in_new_data():
    from interlace.formula.fixed import design_for_new_data, fixed_design

    data = _factors()
    design = fixed_design("y ~ x * a", data)
    with pytest.raises(interlace.DataError, match=r"column 'a' has level\(s\) 'w' not seen"):
        design_for_new_data(design.model_spec, data.head(2).assign(a=["w", "z"]))
