"""Progress: tqdm.auto (terminal or Jupyter), warm-up and sampling counted separately, and a
notice while the data is prepared when that takes more than a second."""

from __future__ import annotations

import re
import sys
import time
import types

import pytest

import bglmm
from bglmm import _progress

RATS = "weight ~ center(day) + (1 + center(day) | rat)"
ONE = dict(seed=1, chains=2, draws=50, warmup=30, threads=1, check=False)


def _terminal(monkeypatch):
    """Make the (captured) stderr claim to be a terminal; call it in the test's body, where
    capsys's stream is in place."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)


def test_visible_in_a_jupyter_kernel(monkeypatch):
    assert not _progress.visible()  # pytest's stderr: no terminal, no kernel
    kernel = type("ZMQInteractiveShell", (), {})()
    monkeypatch.setitem(sys.modules, "IPython",
                        types.SimpleNamespace(get_ipython=lambda: kernel))
    assert _progress.visible()
    terminal_shell = type("TerminalInteractiveShell", (), {})()
    monkeypatch.setitem(sys.modules, "IPython",
                        types.SimpleNamespace(get_ipython=lambda: terminal_shell))
    assert not _progress.visible()


def test_bar_separates_warmup_and_sampling(monkeypatch, capsys):
    _terminal(monkeypatch)
    bglmm.fit(RATS, bglmm.datasets.load("rats"), progress=True, **ONE)
    err = capsys.readouterr().err
    assert "warm-up" in err
    counts = re.findall(r"warm-up (\d+)/60, sampling (\d+)/100", err)
    assert counts, err[-500:]
    assert ("60", "100") in counts  # the end: every warm-up and sampling iteration
    assert ("30", "50") in counts  # one chain done, one to run (chains in turn: threads=1)


def test_preparation_is_reported_when_slow(capsys, monkeypatch):
    _terminal(monkeypatch)
    import bglmm.api as api

    build = api.build_spec

    def slow_build(*args, **kwargs):
        time.sleep(0.5)
        return build(*args, **kwargs)

    monkeypatch.setattr(api, "build_spec", slow_build)
    monkeypatch.setattr(_progress, "NOTICE_AFTER", 0.1)
    bglmm.fit(RATS, bglmm.datasets.load("rats"), progress=True, **ONE)
    err = capsys.readouterr().err
    assert "preparing the data" in err
    prepared = re.search(r"data prepared in (\d+\.\d) s", err)
    assert prepared and 0.4 <= float(prepared.group(1)) < 5
    assert err.index("data prepared") < err.rindex("sampling")


def test_fast_preparation_and_no_progress_stay_silent(monkeypatch, capsys):
    _terminal(monkeypatch)
    df = bglmm.datasets.load("rats")
    bglmm.fit(RATS, df, progress=True, **ONE)
    assert "preparing" not in capsys.readouterr().err  # well under a second
    bglmm.fit(RATS, df, progress=False, **ONE)
    assert capsys.readouterr().err == ""


def test_array_samplers_show_progress_by_default(monkeypatch, capsys):
    """bglmm.glmm (and glm, lmm, hierarchical_normal) used to be silent unless asked: a 200 s
    fit said nothing. On a terminal they now draw the bar at their defaults."""
    import numpy as np

    _terminal(monkeypatch)
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(10), 5)
    X = np.column_stack([np.ones(50), rng.normal(size=50)])
    y = rng.poisson(np.exp(0.2 + rng.normal(size=10)[g]))
    kw = dict(chains=1, draws=20, warmup=10, seed=1, check=False)
    bglmm.glmm(y, X, X[:, :1], g, family="poisson", **kw)
    assert "sampling" in capsys.readouterr().err
    bglmm.glm(X, y, family="poisson", **kw)
    assert "sampling" in capsys.readouterr().err
    bglmm.lmm(np.log1p(y), X, X[:, :1], g, **kw)
    assert "sampling" in capsys.readouterr().err
    bglmm.glmm(y, X, X[:, :1], g, family="poisson", progress=False, **kw)
    assert "sampling" not in capsys.readouterr().err
