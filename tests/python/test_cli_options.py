"""Command-line options: --out checked before fitting, --sep and delimiter sniffing,
--version, --priors in a simple syntax."""

from __future__ import annotations

import os

import pytest

import bglmm
from bglmm import priors as P
from bglmm.cli import _parse_priors, main

FAST = ["--chains", "1", "--draws", "30", "--warmup", "30", "--seed", "1", "--threads", "1",
        "--quiet"]
FORMULA = "weight ~ day + (1 | rat)"


@pytest.fixture()
def rats_csv(tmp_path):
    path = tmp_path / "rats.csv"
    bglmm.datasets.load("rats").to_csv(path, index=False)
    return path


def test_out_in_a_missing_directory_fails_before_fitting(rats_csv, tmp_path, capsys, monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("fitted although --out cannot be written")

    monkeypatch.setattr(bglmm, "fit", no_fit)
    rc = main(["fit", str(rats_csv), "-f", FORMULA, "--out", str(tmp_path / "nope" / "fit.nc")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    rc = main(["fit", str(rats_csv), "-f", FORMULA, "--out", str(tmp_path)])
    assert rc == 2 and "is a directory" in capsys.readouterr().err
    rc = main(["demo", "--out", str(tmp_path / "nope" / "fit.nc")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_out_in_a_read_only_directory_fails_before_fitting(rats_csv, tmp_path, capsys,
                                                           monkeypatch):
    # The permission bits are simulated: as root every directory is writable.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
        False if str(path).startswith(str(locked)) and mode & os.W_OK
        else real_access(path, mode, **kw)))
    monkeypatch.setattr(bglmm, "fit", lambda *a, **k: pytest.fail("fitted although --out is read-only"))
    rc = main(["fit", str(rats_csv), "-f", FORMULA, "--out", str(locked / "fit.nc")])
    assert rc == 2 and "no permission" in capsys.readouterr().err


@pytest.mark.parametrize("sep, given", [(";", None), ("\t", None), ("|", None), (";", ";"),
                                        ("\t", "\\t"), ("\t", "tab")])
def test_separator_given_or_sniffed(tmp_path, capsys, sep, given):
    path = tmp_path / "rats.txt"
    bglmm.datasets.load("rats").to_csv(path, index=False, sep=sep)
    args = ["fit", str(path), "-f", FORMULA, *FAST] + (["--sep", given] if given else [])
    with pytest.warns(bglmm.ConvergenceWarning):
        rc = main(args)
    assert rc == 0 and "sd_rat__Intercept" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as code:
        main(["--version"])
    assert code.value.code == 0 and capsys.readouterr().out.strip() == f"bglmm {bglmm.__version__}"


def test_priors_syntax():
    got = _parse_priors("b = normal(0, 2.5); sd=half_t(3, 0, 2.5); cor = lkj(2); "
                        "sigma = inv_gamma(1, 0.5) ; herd = half_normal(1);")
    assert got == {"beta": P.Normal(0.0, 2.5), "sd": P.HalfStudentT(3.0, 2.5), "cor": P.LKJ(2.0),
                   "sigma": P.InverseGamma(1.0, 0.5), "herd": P.HalfNormal(1.0)}
    assert _parse_priors("sd = half_cauchy(1)")["sd"] == P.HalfCauchy(1.0)
    assert _parse_priors("sd = uniform(0, 100)")["sd"] == P.UniformSD(100.0)


@pytest.mark.parametrize("text, message", [
    ("b normal(0, 1)", "write key = distribution"),
    ("b = norml(0, 1)", "did you mean normal"),
    ("b = normal(0)", "takes 2 number"),
    ("sd = half_t(3, 1, 2)", "location 0"),
    ("b = normal(0, x)", "must be numbers"),
    ("sd = half_normal(-1)", "positive"),
    ("b = __import__('os')", "unknown distribution"),
])
def test_priors_syntax_errors(text, message):
    with pytest.raises(ValueError, match=message):
        _parse_priors(text)


def test_priors_reach_the_fit(rats_csv, capsys, tmp_path):
    out = tmp_path / "fit.nc"
    with pytest.warns(bglmm.ConvergenceWarning):
        rc = main(["fit", str(rats_csv), "-f", FORMULA, *FAST, "--out", str(out),
                   "--priors", "b = normal(0, 7); sd = half_normal(3)"])
    assert rc == 0
    back = bglmm.load(out)
    assert back.priors["beta"] == repr(P.Normal(0.0, 7.0))
    assert back.priors["sd"] == repr(P.HalfNormal(3.0))
    rc = main(["fit", str(rats_csv), "-f", FORMULA, *FAST, "--priors", "b = normal(0)"])
    assert rc == 2 and "--priors" in capsys.readouterr().err


def test_help_documents_priors(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = capsys.readouterr().out
    assert "--priors" in text and "half_t(df, scale)" in text and "--sep" in text
