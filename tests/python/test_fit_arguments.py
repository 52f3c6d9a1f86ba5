"""Keyword arguments bglmm.fit does not take: a TypeError naming fit() and the argument meant,
before any data preparation or sampling."""

from __future__ import annotations

import pytest

import bglmm
from bglmm.cli import main

RATS = "weight ~ day + (1 | rat)"
SMALL = dict(chains=1, draws=20, warmup=20, threads=1, progress=False, check=False)


@pytest.fixture(scope="module")
def rats():
    return bglmm.datasets.load("rats")


@pytest.mark.parametrize("key, meant", [
    ("iter", "use draws or warmup"),
    ("cores", "use threads"),
    ("n_jobs", "use threads"),
    ("n_chains", "use chains"),
    ("random_state", "use seed"),
    ("tune", "use warmup"),
    ("prior", "use priors"),
    ("weight", "did you mean weights?"),
    ("seeed", "did you mean seed?"),
    ("warmpu", "did you mean warmup?"),
])
def test_unknown_keyword_names_fit_and_the_argument_meant(rats, key, meant):
    with pytest.raises(TypeError) as err:
        bglmm.fit(RATS, rats, **{key: 1}, **SMALL)
    text = str(err.value)
    assert text.startswith(f"fit() got an unexpected keyword argument {key!r}")
    assert meant in text
    assert "lmm()" not in text and "glmm()" not in text


def test_bad_keyword_is_reported_before_the_data_is_read(rats):
    # a formula that cannot be built: the keyword error comes first
    with pytest.raises(TypeError, match="fit.. got an unexpected keyword argument 'cores'"):
        bglmm.fit("weight ~ nonexistent", rats, cores=2)


def test_option_of_another_sampler_names_the_sampler_that_fits(rats):
    # interweave is a GLMM-sampler option; a gaussian (1 | g) model is fitted by lmm()
    with pytest.raises(TypeError, match=r"'interweave' is an option of another sampler, not of "
                                        r"lmm\(\)"):
        bglmm.fit(RATS, rats, interweave=True, **SMALL)


def test_sampler_options_still_pass(rats):
    f = bglmm.fit(RATS, rats, collapsed=False, **SMALL)  # an option of lmm()
    assert f.n_draws == 20


def test_cli_suggests_the_option_meant(tmp_path, capsys):
    csv = tmp_path / "rats.csv"
    bglmm.datasets.load("rats").to_csv(csv, index=False)
    for token, meant in [("--iter", "--draws or --warmup"), ("--cores", "--threads"),
                         ("--sede", "did you mean --seed")]:
        with pytest.raises(SystemExit) as code:
            main(["fit", str(csv), "--formula", RATS, token, "5"])
        assert code.value.code == 2
        err = capsys.readouterr().err
        assert f"unrecognized arguments: {token} 5" in err and meant in err
