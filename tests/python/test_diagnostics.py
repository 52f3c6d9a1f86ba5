"""bglmm.diagnostics (rank-normalised split R-hat, bulk / tail ESS, MCSE of the mean on NumPy)
against ArviZ's, the summary table against the one ArviZ builds, and the fit path free of ArviZ
and matplotlib.

ArviZ has two R-hats that differ for an odd number of draws per chain: ``az.rhat`` folds the
split chains around their median (the middle draw left out), ``az.summary`` folds all the draws
around theirs, as the paper does. bglmm's summary always used the latter, and so does
:func:`bglmm.diagnostics.rhat`: odd draw counts are compared with ``az.summary``'s R-hat.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtri

import bglmm
from bglmm import diagnostics as D

RTOL = 1e-6


def _ar1(rng: np.random.Generator, chains: int, draws: int, rho: float) -> np.ndarray:
    x = np.empty((chains, draws))
    e = rng.normal(size=(chains, draws))
    x[:, 0] = e[:, 0] / np.sqrt(1 - rho**2)
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + e[:, t]
    return x


def _cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20210513)
    with_nan = rng.normal(size=(4, 200))
    with_nan[2, 17] = np.nan
    one_constant = rng.normal(size=(4, 300))
    one_constant[1] = 0.25
    return {
        "iid normal 4x1000": rng.normal(size=(4, 1000)),
        "AR(1) 0.9 4x1000": _ar1(rng, 4, 1000, 0.9),
        "AR(1) 0.99 2x2000": _ar1(rng, 2, 2000, 0.99),
        "shifted means 4x500": rng.normal(size=(4, 500)) + np.array([[0.0], [0.3], [-0.2], [1.0]]),
        "cauchy 4x500": rng.standard_cauchy(size=(4, 500)),
        "t(1.5) AR 3x400": _ar1(rng, 3, 400, 0.5) + rng.standard_t(1.5, size=(3, 400)),
        "ties 4x250": rng.poisson(1.0, size=(4, 250)).astype(float),
        "binary 2x300": (rng.random((2, 300)) < 0.2).astype(float),
        "constant 4x100": np.full((4, 100), 3.0),
        "one constant chain 4x300": one_constant,
        "NaN 4x200": with_nan,
        "one chain 1x1000": _ar1(rng, 1, 1000, 0.6),
        "odd draws 3x101": _ar1(rng, 3, 101, 0.5),
        "odd draws 4x333": rng.normal(size=(4, 333)) + np.array([[0.0], [0.0], [0.0], [0.5]]),
        "odd draws 2x5": rng.normal(size=(2, 5)),
        "minimum 2x4": rng.normal(size=(2, 4)),
        "too short 4x3": rng.normal(size=(4, 3)),
        "many chains 8x40": _ar1(rng, 8, 40, 0.3),
    }


CASES = _cases()


@pytest.fixture(autouse=True)
def _quiet_arviz():
    """ArviZ logs 'Shape validation failed' / 'Array contains NaN-value' where it returns NaN."""
    log = logging.getLogger("arviz")
    level = log.level
    log.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    log.setLevel(level)


def _assert_close(mine: float, theirs: float, what: str) -> None:
    if np.isnan(theirs):
        assert np.isnan(mine), (what, mine, theirs)
    else:
        assert mine == pytest.approx(theirs, rel=RTOL), (what, mine, theirs)


def _arviz_summary_row(x: np.ndarray) -> pd.Series:
    return az.summary(x, kind="diagnostics", round_to="none").iloc[0]


@pytest.mark.parametrize("case", list(CASES))
def test_ess_and_mcse_agree_with_arviz(case):
    x = CASES[case]
    _assert_close(D.ess_bulk(x), float(az.ess(x, method="bulk")), "ess_bulk")
    _assert_close(D.ess_tail(x), float(az.ess(x, method="tail")), "ess_tail")
    _assert_close(D.ess_mean(x), float(az.ess(x, method="mean")), "ess_mean")
    _assert_close(D.mcse_mean(x), float(az.mcse(x, method="mean")), "mcse_mean")


@pytest.mark.parametrize("case", list(CASES))
def test_rhat_agrees_with_arviz(case):
    x = CASES[case]
    mine = D.rhat(x)
    _assert_close(mine, float(_arviz_summary_row(x)["r_hat"]), "r_hat (az.summary)")
    if x.shape[1] % 2 == 0:  # az.rhat's folding differs only for odd draw counts
        _assert_close(mine, float(az.rhat(x, method="rank")), "r_hat (az.rhat)")


@pytest.mark.parametrize("case", list(CASES))
def test_summary_diagnostics_agree_with_arviz_summary(case):
    x = CASES[case]
    row = _arviz_summary_row(x)
    for name, mine in zip(("mcse_mean", "ess_bulk", "ess_tail", "r_hat"),
                          D.summary_diagnostics(x)):
        _assert_close(mine, float(row[name]), name)


def test_one_dimensional_draws_are_one_chain():
    x = CASES["one chain 1x1000"]
    assert D.ess_bulk(x[0]) == D.ess_bulk(x)
    assert np.isnan(D.rhat(x[0]))


def test_draws_of_more_than_one_quantity_are_refused():
    with pytest.raises(ValueError, match="chain, draw"):
        D.rhat(np.zeros((2, 10, 3)))


def test_undefined_cases():
    assert np.isnan(D.rhat(CASES["one chain 1x1000"]))  # R-hat needs two chains
    for f in (D.rhat, D.ess_bulk, D.ess_tail, D.mcse_mean):
        assert np.isnan(f(CASES["NaN 4x200"]))
        assert np.isnan(f(CASES["too short 4x3"]))
    assert np.isnan(D.rhat(CASES["constant 4x100"]))
    assert D.ess_bulk(CASES["constant 4x100"]) == 400  # as ArviZ: all draws
    assert D.mcse_mean(CASES["constant 4x100"]) == 0


# ---- negative controls ----------------------------------------------------------------------


def test_a_shifted_chain_is_flagged():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 1000))
    assert D.rhat(x) < 1.01
    x[3] += 0.5
    assert D.rhat(x) > 1.01


def test_a_wider_chain_is_flagged_by_the_tail_rhat():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 1000))
    x[0] *= 3.0  # same location: the folded draws see it
    assert D.rhat(x) > 1.01


def test_strong_autocorrelation_gives_a_small_ess():
    rng = np.random.default_rng(3)
    iid = rng.normal(size=(4, 1000))
    sticky = _ar1(rng, 4, 1000, 0.99)
    assert D.ess_bulk(iid) > 0.8 * iid.size
    assert D.ess_bulk(sticky) < 0.05 * sticky.size
    assert D.ess_tail(sticky) < 0.1 * sticky.size
    assert D.mcse_mean(sticky) > 3 * np.std(sticky) / np.sqrt(sticky.size)


# ---- the normal quantile function -------------------------------------------------------------


def test_normal_quantile_matches_scipy():
    p = np.concatenate([np.linspace(1e-9, 1 - 1e-9, 100_001), np.logspace(-300, -1, 500),
                        1 - np.logspace(-15, -1, 200)])
    assert np.allclose(D.normal_quantile(p), ndtri(p), rtol=1e-12, atol=1e-12)
    edge = np.array([0.0, 1.0, 0.5, -0.1, 1.1, np.nan])
    np.testing.assert_array_equal(D.normal_quantile(edge), ndtri(edge))


def test_rank_normalize_averages_ties():
    x = np.array([[3.0, 1.0, 3.0, 2.0]])
    ranks = np.array([3.5, 1.0, 3.5, 2.0])
    np.testing.assert_allclose(D.rank_normalize(x)[0], ndtri((ranks - 0.375) / 4.25), rtol=1e-14)


# ---- the summary table ------------------------------------------------------------------------


def _arviz_summary(fit: bglmm.Fit, prob: float = 0.95) -> pd.DataFrame:
    """The summary as ArviZ builds it (bglmm's summary before it computed its own)."""
    names = list(fit.summary_vars)
    lo, hi = (1 - prob) / 2, (1 + prob) / 2
    idata = az.from_dict(posterior={k: fit.posterior[k] for k in names}, coords=fit.coords,
                         dims={k: v for k, v in fit.dims.items() if k in names})
    stat_funcs = {"mean": np.mean, "sd": lambda x: np.std(x, ddof=1),
                  f"{100 * lo:g}%": lambda x: np.quantile(x, lo), "50%": np.median,
                  f"{100 * hi:g}%": lambda x: np.quantile(x, hi)}
    stats = az.summary(idata, kind="stats", stat_funcs=stat_funcs, extend=False, round_to="none")
    diag = az.summary(idata, kind="diagnostics", round_to="none")
    out = stats.join(diag[["mcse_mean", "ess_bulk", "ess_tail", "r_hat"]])
    for col in ("ess_bulk", "ess_tail"):
        out[col] = np.floor(out[col].astype(float)).astype("Int64")
    return out


def _assert_same_table(mine: pd.DataFrame, theirs: pd.DataFrame) -> None:
    """Same rows, columns (a subclass may append its own, as GlmFit's acceptance) and values."""
    assert list(mine.index) == list(theirs.index)
    assert list(mine.columns[:len(theirs.columns)]) == list(theirs.columns)
    mine = mine[theirs.columns]
    assert (mine.dtypes == theirs.dtypes).all(), (mine.dtypes, theirs.dtypes)
    for col in mine.columns:
        a = mine[col].to_numpy(dtype=float, na_value=np.nan)
        b = theirs[col].to_numpy(dtype=float, na_value=np.nan)
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=col)


@pytest.fixture(scope="module")
def fits() -> dict[str, bglmm.Fit]:
    cbpp = bglmm.datasets.load("cbpp")
    sleep = bglmm.datasets.load("sleepstudy")
    short = dict(chains=2, draws=150, warmup=150, seed=4, threads=1, progress=False, check=False)
    rng = np.random.default_rng(5)
    X = np.column_stack([np.ones(60), rng.normal(size=60)])
    y = rng.poisson(np.exp(0.2 + 0.4 * X[:, 1])).astype(float)
    return {
        "cbpp": bglmm.fit("cbind(incidence, size - incidence) ~ C(period) + (1 | herd)", cbpp,
                          family="binomial", **short),
        "sleepstudy": bglmm.fit("Reaction ~ Days + (1 + Days | Subject)", sleep, **short),
        "odd draws": bglmm.fit("Reaction ~ Days + (1 | Subject)", sleep,
                               **{**short, "draws": 75}),
        "one chain": bglmm.fit("Reaction ~ Days + (1 | Subject)", sleep,
                               **{**short, "chains": 1}),
        "three draws": bglmm.fit("Reaction ~ Days", sleep, **{**short, "draws": 3}),
        "glm arrays": bglmm.glm(X, y, family="poisson", chains=2, draws=150, warmup=150, seed=2,
                                threads=1, progress=False, check=False),
    }


@pytest.mark.parametrize("name", ["cbpp", "sleepstudy", "odd draws", "one chain", "three draws",
                                  "glm arrays"])
def test_summary_is_the_table_arviz_made(fits, name):
    fit = fits[name]
    _assert_same_table(fit.summary(), _arviz_summary(fit))
    _assert_same_table(fit.summary(prob=0.9), _arviz_summary(fit, prob=0.9))


def test_summary_names_elements_as_arviz_does():
    """Scalars, named and unnamed dimensions, with and without coordinates, C order."""
    rng = np.random.default_rng(7)
    fit = bglmm.Fit(
        {"a": rng.normal(size=(3, 40)), "b": rng.normal(size=(3, 40, 3)),
         "c": rng.normal(size=(3, 40, 2, 2)), "d": rng.normal(size=(3, 40, 2)),
         "e": np.where(rng.random((3, 40, 2)) < 0.5, 1.0, 0.0)},
        dims={"b": ["coef"], "c": ["level"], "d": ["step"]},
        coords={"coef": ["Intercept", "x", "x:z"], "level": np.array([10, 20]),
                "step": [0.5, 1.5]},
    )
    _assert_same_table(fit.summary(), _arviz_summary(fit))
    assert list(fit.summary().index[:5]) == ["a", "b[Intercept]", "b[x]", "b[x:z]", "c[10, 0]"]


def test_summary_of_chosen_variables_names_each_element(fits):
    fit = fits["sleepstudy"]
    table = fit.summary(var_names=["Sigma_Subject"])
    assert len(table) == 4 and all(n.startswith("Sigma_Subject[") for n in table.index)
    theirs = az.summary(fit.to_inference_data(), var_names=["Sigma_Subject"], kind="stats")
    assert list(table.index) == list(theirs.index)


# ---- ArviZ and matplotlib stay out of the fit path -------------------------------------------

_HEAVY = ("arviz", "matplotlib", "xarray")


def _imported_in_fresh_process(code: str) -> list[str]:
    probe = textwrap.dedent(code) + textwrap.dedent(f"""
        import sys
        print(" ".join(m for m in {_HEAVY!r} if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


def test_import_bglmm_imports_neither_arviz_nor_matplotlib():
    assert _imported_in_fresh_process("import bglmm") == []


def test_a_fit_and_its_summary_import_neither_arviz_nor_matplotlib():
    code = """
        import warnings
        import bglmm
        cbpp = bglmm.datasets.load("cbpp")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bglmm.ConvergenceWarning)
            fit = bglmm.fit("cbind(incidence, size - incidence) ~ C(period) + (1 | herd)", cbpp,
                            family="binomial", chains=2, draws=100, warmup=100, seed=1,
                            threads=1, progress=False)
        str(fit); fit.summary(); fit.fixef(); fit.check_convergence()
    """
    assert _imported_in_fresh_process(code) == []
