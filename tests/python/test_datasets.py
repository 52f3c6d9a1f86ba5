"""The shipped data sets: every one loads, and the lme4 classics have their documented shape,
columns and types."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import bglmm
from bglmm.formula import build_spec

# name: (rows, columns)
SHAPES = {
    "penicillin": (144, ["diameter", "plate", "sample"]),
    "pastes": (60, ["strength", "batch", "cask", "sample"]),
    "verbagg": (7584, ["Anger", "Gender", "item", "resp", "id", "btype", "situ", "mode", "r2"]),
    "insteval": (73421, ["s", "d", "studage", "lectage", "service", "dept", "y"]),
    "grouseticks": (403, ["INDEX", "TICKS", "BROOD", "HEIGHT", "YEAR", "LOCATION", "cHEIGHT"]),
    "quine": (146, ["Eth", "Sex", "Age", "Lrn", "Days"]),
}


def test_every_listed_data_set_loads():
    names = bglmm.datasets.names()
    assert set(SHAPES) <= set(names)
    for name in names:
        df = bglmm.datasets.load(name)
        assert isinstance(df, pd.DataFrame) and len(df) > 0, name


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_rows_and_columns(name):
    rows, columns = SHAPES[name]
    df = bglmm.datasets.load(name)
    assert len(df) == rows
    assert list(df.columns) == columns
    assert not df.isna().any().any()


def test_the_module_table_lists_every_data_set():
    doc = bglmm.datasets.__doc__
    for name in bglmm.datasets.names():
        rows = len(bglmm.datasets.load(name))
        assert re.search(rf"^{name} +{rows} ", doc, flags=re.MULTILINE), name


def test_penicillin_is_crossed():
    df = bglmm.datasets.load("penicillin")
    assert df["plate"].nunique() == 24 and df["sample"].nunique() == 6
    assert (df.groupby(["plate", "sample"]).size() == 1).all()


def test_pastes_is_nested():
    df = bglmm.datasets.load("pastes")
    assert df["batch"].nunique() == 10 and df["sample"].nunique() == 30
    assert (df["sample"] == df["batch"] + ":" + df["cask"]).all()
    assert (df.groupby("sample").size() == 2).all()


def test_verbagg_levels():
    df = bglmm.datasets.load("verbagg")
    assert df["id"].nunique() == 316 and df["item"].nunique() == 24
    assert set(df["resp"]) == {"no", "perhaps", "yes"}
    assert ((df["r2"] == "Y") == (df["resp"] != "no")).all()


def test_insteval_factors_are_categoricals_with_the_source_codes():
    df = bglmm.datasets.load("insteval")
    levels = {"s": 2972, "d": 1128, "dept": 14, "service": 2, "studage": 4, "lectage": 6}
    for column, count in levels.items():
        assert isinstance(df[column].dtype, pd.CategoricalDtype), column
        assert len(df[column].cat.categories) == count, column
        assert df[column].cat.categories.dtype.kind == "i", column  # the integer codes
    assert df["studage"].cat.ordered and df["lectage"].cat.ordered
    assert not df["s"].cat.ordered and not df["dept"].cat.ordered
    assert list(df["studage"].cat.categories) == [2, 4, 6, 8]
    assert list(df["service"].cat.categories) == [0, 1]
    assert df["y"].dtype.kind == "i" and set(df["y"]) == {1, 2, 3, 4, 5}
    # the first rows of the source file: s,d,studage,lectage,service,dept,y = 1,1002,2,2,0,2,5
    first = df.iloc[0]
    assert [first[c] for c in ["s", "d", "studage", "lectage", "service", "dept", "y"]] == \
        [1, 1002, 2, 2, 0, 2, 5]


def test_insteval_factors_work_in_formulas():
    df = bglmm.datasets.load("insteval")
    spec = build_spec("y ~ service + (1 | s) + (1 | d) + (1 | dept)", df)
    assert spec.fixed_names == ["Intercept", "service[1]"]
    assert np.array_equal(spec.X[:, 1], (df["service"] == 1).to_numpy(float))
    assert {b.factor: b.groups.nunique() for b in spec.random} == {"s": 2972, "d": 1128, "dept": 14}


def test_load_returns_a_fresh_copy():
    a = bglmm.datasets.load("pastes")
    a.loc[0, "strength"] = -1.0
    assert bglmm.datasets.load("pastes").loc[0, "strength"] == 62.8
