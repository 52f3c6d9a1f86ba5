"""plot_trace, plot_forest, plot_ppc and conditional_effects: what each panel shows (axes,
labels, the plotted intervals), on the Agg backend; PNGs are written as a smoke test."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import bglmm  # noqa: E402

SHORT = dict(seed=3, chains=2, draws=100, warmup=100, threads=1, progress=False, check=False)


@pytest.fixture(scope="module")
def fit():
    return bglmm.fit("Reaction ~ Days + (1 + Days | Subject)", bglmm.datasets.load("sleepstudy"),
                     **SHORT)


@pytest.fixture(scope="module")
def cbpp():
    return bglmm.fit("cbind(incidence, size - incidence) ~ factor(period) + (1 | herd)",
                     bglmm.datasets.load("cbpp"), family="binomial", **SHORT)


def _save(axes, path):
    fig = np.ravel(axes)[0].figure
    fig.savefig(path)
    plt.close(fig)
    return path.stat().st_size


def _lines_xy(ax):
    return [np.asarray(line.get_xydata()) for line in ax.get_lines()]


def test_plot_trace_gives_each_parameter_its_own_row_and_scale(fit, tmp_path):
    axes = fit.plot_trace()
    # Intercept, Days, two SDs, the correlation, sigma: one row each
    assert np.shape(axes) == (6, 2)
    titles = [ax.get_title(loc="left") for ax in axes[:, 0]]
    assert titles == ["Intercept", "Days", "sd(Intercept | Subject)", "sd(Days | Subject)",
                      "cor(Intercept, Days | Subject)", "sigma"]
    # the Days trace is on its own scale: its y range is that of its draws, not the intercept's
    days = fit.posterior["beta"][:, :, 1]
    low, high = axes[1, 1].get_ylim()
    assert low <= days.min() and high >= days.max() and high - low < 5 * np.ptp(days)
    assert len(axes[1, 1].get_lines()) == 2  # one line per chain
    assert _save(axes, tmp_path / "trace.png") > 1000


def test_plot_forest_shows_the_summarys_95_percent_intervals(fit, tmp_path):
    axes = fit.plot_forest()
    # the intercepts apart from the slopes: an interval of 10 beside one of 250 stays visible
    assert [ax.get_title(loc="left") for ax in axes] == [
        "intercept", "fixed effects", "group-level SD of the intercept", "group-level SDs",
        "correlations", "sigma"]
    assert [t.get_text() for t in axes[1].get_yticklabels()] == ["Days"]
    assert [t.get_text() for t in axes[4].get_yticklabels()] == [
        "cor(Intercept, Days | Subject)"]
    table = fit.summary()
    for ax, row in zip(axes, ["beta[Intercept]", "beta[Days]", "sd_Subject__Intercept",
                              "sd_Subject__Days", "cor_Subject__Intercept__Days", "sigma"]):
        (seg,) = ax.collections[0].get_segments()
        np.testing.assert_allclose([seg[0][0], seg[1][0]],
                                   table.loc[row, ["2.5%", "97.5%"]].astype(float))
        low, high = ax.get_xlim()
        assert high - low < 3 * (seg[1][0] - seg[0][0])  # the interval fills its panel
    assert "95% central interval" in axes[-1].get_xlabel()
    assert _save(axes, tmp_path / "forest.png") > 1000
    effects = fit.plot_forest(["b_Subject"])  # one panel per term, a row per subject
    assert [ax.get_title(loc="left") for ax in effects] == ["Subject effects: Intercept",
                                                            "Subject effects: Days"]
    assert len(effects[0].get_yticklabels()) == 18
    with pytest.raises(ValueError, match="unknown variable"):
        fit.plot_forest(["nope"])
    with pytest.raises(ValueError, match="prob"):
        fit.plot_forest(prob=95)


def test_plot_ppc_draws_densities_for_a_continuous_response(fit, tmp_path):
    ax = fit.plot_ppc(num_pp_samples=20)[0]
    assert ax.get_xlabel() == "Reaction" and ax.get_ylabel() == "density"
    assert len(ax.get_lines()) == 21 and not ax.patches
    assert _save(ax, tmp_path / "ppc.png") > 1000


def test_plot_ppc_draws_bars_for_counts(cbpp, tmp_path):
    ax = cbpp.plot_ppc(num_pp_samples=50)[0]
    assert ax.get_xlabel() == "incidence (successes)"
    heights = {round(p.get_x() + p.get_width() / 2): p.get_height() for p in ax.patches}
    y = bglmm.datasets.load("cbpp").incidence
    for value, count in y.value_counts().items():
        assert heights[value] == count  # the observed frequency of each count
    assert _save(ax, tmp_path / "ppc_counts.png") > 1000


def test_plot_ppc_bars_for_a_binary_response(tmp_path):
    rng = np.random.default_rng(2)
    d = pd.DataFrame({"x": rng.normal(size=80)})
    d["hit"] = (rng.uniform(size=80) < 1 / (1 + np.exp(-d.x))).astype(int)
    f = bglmm.fit("hit ~ x", d, family="bernoulli", **SHORT)
    ax = f.plot_ppc(num_pp_samples=30)[0]
    assert sorted(round(p.get_x() + p.get_width() / 2) for p in ax.patches) == [0, 1]
    assert ax.get_xlabel() == "hit"


def test_conditional_effects_numeric_and_categorical(fit, cbpp, tmp_path):
    ax = fit.conditional_effects("Days")[0]
    x, mean = _lines_xy(ax)[0].T
    assert ax.get_xlabel() == "Days" and ax.get_ylabel() == "Reaction (expected)"
    np.testing.assert_allclose(x[[0, -1]], [0, 9])
    beta = fit.posterior["beta"].reshape(-1, 2)
    np.testing.assert_allclose(mean, beta[:, 0].mean() + beta[:, 1].mean() * x)
    assert _save(ax, tmp_path / "ce.png") > 1000
    cat = cbpp.conditional_effects("period")[0]
    assert [t.get_text() for t in cat.get_xticklabels()] == ["1", "2", "3", "4"]
    assert cat.get_ylabel() == "incidence (probability per trial)"
    # period 1 is the reference level: its expected probability is inverse-logit(Intercept)
    points = cat.containers[0].lines[0]  # the error bar's data points
    p1 = 1 / (1 + np.exp(-cbpp.posterior["beta"][..., 0]))
    np.testing.assert_allclose(points.get_ydata()[0], p1.mean())
    with pytest.raises(ValueError, match=r"not a predictor column.*\['period'\]"):
        cbpp.conditional_effects("herdd")
    with pytest.raises(ValueError, match="'herd' is a grouping factor"):
        cbpp.conditional_effects("herd")
