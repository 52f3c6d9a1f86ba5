"""The command line: bglmm fit data.csv --formula ..., bglmm demo, python -m bglmm."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import bglmm
from bglmm.cli import main


@pytest.mark.filterwarnings("ignore::bglmm.ConvergenceWarning")  # short chains on purpose
def test_fit_csv_prints_summary_and_saves(tmp_path, capsys):
    csv = tmp_path / "cbpp.csv"
    bglmm.datasets.load("cbpp").to_csv(csv, index=False)
    out = tmp_path / "fit.nc"
    rc = main(["fit", str(csv), "--formula", "incidence ~ C(period) + (1 | herd)",
               "--family", "binomial", "--trials", "size", "--chains", "2", "--draws", "100",
               "--warmup", "100", "--seed", "4", "--threads", "1", "--out", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "sampler: Laplace/IWLS-proposal Metropolis-within-Gibbs" in text
    assert "beta[C(period)[4]]" in text and "sd_herd__Intercept" in text and "r_hat" in text
    back = bglmm.load(out)
    assert back.n_chains == 2 and back.n_draws == 100 and back.seed == 4


@pytest.mark.filterwarnings("ignore::bglmm.ConvergenceWarning")  # short chains on purpose
def test_fit_with_case_weights(tmp_path, capsys):
    data = bglmm.datasets.load("cbpp")
    data["w"] = np.where(np.arange(len(data)) % 4 == 0, 2.0, 1.0)
    csv = tmp_path / "cbpp.csv"
    data.to_csv(csv, index=False)
    out = tmp_path / "fit.nc"
    rc = main(["fit", str(csv), "--formula", "incidence ~ C(period) + (1 | herd)",
               "--family", "binomial", "--trials", "size", "--weights", "w", "--chains", "2",
               "--draws", "50", "--warmup", "50", "--seed", "4", "--threads", "1",
               "--out", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0
    assert f"case weights 'w': sum {data['w'].sum():g} over {len(data)} rows" in text
    back = bglmm.load(out)  # the weights come back with the data columns
    np.testing.assert_array_equal(back.spec.weights, data["w"].to_numpy())
    rc = main(["fit", str(csv), "--formula", "incidence ~ 1 + (1 | herd)", "--family",
               "binomial", "--trials", "size", "--weights", "ww", "--quiet"])
    assert rc == 2 and "weights='ww' is not a column" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::bglmm.ConvergenceWarning")  # short chains on purpose
def test_fit_with_a_zero_inflation_formula(tmp_path, capsys):
    data = bglmm.datasets.load("grouseticks")
    csv = tmp_path / "ticks.csv"
    data.to_csv(csv, index=False)
    rc = main(["fit", str(csv), "--formula", "TICKS ~ cHEIGHT + (1 | BROOD)", "--family", "zip",
               "--zi", "~ cHEIGHT", "--chains", "2", "--draws", "50", "--warmup", "50",
               "--seed", "4", "--threads", "1", "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0 and "zi_beta[Intercept]" in text and "zi_beta[cHEIGHT]" in text
    rc = main(["fit", str(csv), "--formula", "TICKS ~ 1", "--family", "poisson", "--zi", "~ x",
               "--quiet"])
    assert rc == 2 and "zero-inflated" in capsys.readouterr().err


def test_fit_errors_name_the_culprit(tmp_path, capsys):
    csv = tmp_path / "rats.csv"
    bglmm.datasets.load("rats").to_csv(csv, index=False)
    rc = main(["fit", str(csv), "--formula", "weight ~ dy + (1 | rat)", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "'dy'" in err and "did you mean 'day'" in err
    rc = main(["fit", str(tmp_path / "missing.csv"), "--formula", "y ~ x"])
    assert rc == 2 and "no such file" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::bglmm.ConvergenceWarning")  # short chains on purpose
def test_demo_fits_a_hierarchical_model(capsys):
    rc = main(["demo", "--chains", "2", "--draws", "100", "--warmup", "100", "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "random effects (1 + center(day) | rat) (30 rat levels)" in text
    assert "sd_rat__center(day)" in text and "sigma" in text


def test_python_dash_m(tmp_path):
    csv = tmp_path / "sparrows.csv"
    bglmm.datasets.load("sparrows").to_csv(csv, index=False)
    res = subprocess.run(
        [sys.executable, "-m", "bglmm", "fit", str(csv), "-f", "fledged ~ age + I(age**2)",
         "--family", "poisson", "--chains", "2", "--draws", "1000", "--warmup", "500", "--seed",
         "1"],  # long enough to pass the convergence check: nothing on stderr
        capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert "beta[I(age ** 2)]" in res.stdout and res.stderr == ""
    res = subprocess.run([sys.executable, "-m", "bglmm", "--help"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode == 0 and "demo" in res.stdout and "fit" in res.stdout


@pytest.mark.filterwarnings("ignore::bglmm.ConvergenceWarning")  # short chains on purpose
@pytest.mark.filterwarnings("ignore::bglmm.AcceptanceWarning")
def test_readme_quick_start_runs(tmp_path):
    """The README's Python example, word for word except for shorter chains."""
    import re
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    readme = Path(__file__).resolve().parents[2] / "README.md"
    code = re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), re.S)[0]
    assert code.count("seed=1)") == 3
    code = code.replace("seed=1)", "seed=1, chains=2, draws=100, warmup=100, progress=False)")
    namespace: dict = {}
    exec(compile(code, str(readme), "exec"), namespace)  # noqa: S102 (our own README)
    plt.close("all")
    fit = namespace["fit"]
    assert fit.kind == "glmm" and fit.n_draws == 100
    assert "sd_mouse__poly(location, 4)[3]" in fit.summary().index


def test_readme_several_factors_example_runs():
    """The README's several-factors example, word for word (default chains: it is fast), and
    its stated medians."""
    import re
    from pathlib import Path

    readme = Path(__file__).resolve().parents[2] / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), re.S)
    code = next(b for b in blocks if "penicillin" in b)
    namespace: dict = {}
    exec(compile(code, str(readme), "exec"), namespace)  # noqa: S102 (our own README)
    pred = namespace["fit"].predict(namespace["new"], allow_new_levels=True)
    assert pred.shape == (4000, 2) and np.isfinite(pred).all()
    pen = bglmm.fit("diameter ~ 1 + (1 | plate) + (1 | sample)",
                    bglmm.datasets.load("penicillin"), seed=1, progress=False)
    med = pen.summary()["50%"]
    # the README's numbers, to two digits
    assert round(med["sd_plate__Intercept"], 2) == 0.87
    assert round(med["sigma"], 2) == 0.58
    assert abs(med["sd_sample__Intercept"] - 2.25) < 0.1
