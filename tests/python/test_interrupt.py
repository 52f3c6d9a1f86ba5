"""Ctrl-C during a long fit returns the draws made so far, flagged, within a second, and leaves
the interpreter healthy.

The main test runs the fit in a child interpreter and sends it a real SIGINT from outside (what
Ctrl-C in a terminal does), so that a failure cannot take the test session down.

Every test runs with Python's own SIGINT handler, as an interactive session has it: a suite
started as a background job (`cmd &` in a script) inherits SIGINT ignored, and then no Ctrl-C
could reach the fit at all.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import bglmm
from bglmm import _chains

CHILD = textwrap.dedent("""
    import json, signal, sys, time, warnings
    import numpy as np
    import bglmm

    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in an interactive session

    sampler = sys.argv[1]
    rng = np.random.default_rng(0)
    n = 20_000  # ~0.5 ms per iteration: the full run would take minutes
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    group = np.arange(n) // 10  # 2,000 groups of 10 rows (lmm, glmm)
    counts = rng.poisson(1.5, n).astype(float)

    def run(rows, draws):
        if sampler == "conjugate":
            return bglmm.glm(X[:rows], rng.normal(size=n)[:rows], "gaussian", sigma=1.0,
                             chains=3, draws=draws, warmup=0, seed=5, threads=1)
        if sampler == "lmm":
            return bglmm.lmm(np.log1p(counts[:rows]), X[:rows], None, group[:rows], chains=3,
                             draws=draws, warmup=0, seed=5, threads=1, keep_effects=False)
        if sampler == "glmm":
            # checks on (the default): an interrupted fit still warns InterruptedWarning only
            return bglmm.glmm(counts[:rows], X[:rows], None, group[:rows], "poisson", chains=3,
                              draws=draws, warmup=0, seed=5, threads=1,
                              keep_group_effects=False)
        return bglmm.glm(X[:rows], counts[:rows], "poisson", sampler=sampler, chains=3,
                         draws=draws, warmup=0, seed=5, threads=1)

    print("READY", flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = run(n, 2_000_000 if sampler == "conjugate" else 400_000)
    returned = time.time()
    # the interpreter is healthy: no pending KeyboardInterrupt, and a new fit works
    time.sleep(0.2)
    small = run(60, 20)
    beta = fit.posterior["beta"]
    print(json.dumps({
        "returned": returned,
        "interrupted": bool(fit.interrupted),
        "shape": list(beta.shape),
        "finite": bool(all(np.isfinite(v).all() for v in fit.posterior.values())),
        "warnings": [type(w.message).__name__ for w in caught],
        "messages": [str(w.message) for w in caught],
        "after_ok": bool(np.isfinite(small.posterior["beta"]).all())
        and small.posterior["beta"].shape == (3, 20, 2),
    }), flush=True)
""")


@pytest.fixture(autouse=True)
def interactive_sigint():
    """Python's own SIGINT handler for the test, whatever the runner inherited."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("sampler", ["random_walk", "conjugate", "lmm", "glmm"])
def test_sigint_returns_draws_so_far_within_a_second(sampler):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, sampler], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(1.5)  # let it get well into sampling
        assert proc.poll() is None, "the fit ended before it could be interrupted"
        sent = time.time()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    res = json.loads(out.strip().splitlines()[-1])
    latency = res["returned"] - sent
    assert latency < 1.0, f"took {latency:.2f} s to return after SIGINT"
    assert res["interrupted"]
    # the three chains took turns on the one thread: all three were interrupted mid-way and are
    # kept, cut to one length
    n_chains, n_draws, p = res["shape"]
    assert n_chains == 3 and 0 < n_draws < 400_000 and p == 2
    assert res["finite"]
    assert res["warnings"] == ["InterruptedWarning"], res["messages"]
    # it says how many draws of how many
    assert re.match(rf"sampling was interrupted after {n_draws} of \d+ draws per chain; the "
                    rf"summary uses those 3 chains x {n_draws} draws", res["messages"][0]), \
        res["messages"]
    assert res["after_ok"]


def _sigint_when_chain_starts(monkeypatch, name, chain, delay):
    """Wrap the core call `name` so that SIGINT reaches the main thread `delay` s after chain
    `chain` starts (the chain is the call's position among the calls: the chains start in order)."""
    main = threading.main_thread().ident
    real = getattr(bglmm._core, name)
    timers, calls = [], []

    def wrapped(*args, **kwargs):
        calls.append(None)
        if len(calls) - 1 == chain:
            timers.append(threading.Timer(delay, signal.pthread_kill, (main, signal.SIGINT)))
            timers[-1].start()
        return real(*args, **kwargs)

    monkeypatch.setattr(bglmm._core, name, wrapped)
    return timers


@pytest.fixture(scope="module")
def poisson_rows():
    rng = np.random.default_rng(1)
    n = 5_000
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    return X, rng.poisson(1.5, n).astype(float)


def test_sigint_in_process_keeps_every_chain_cut_to_one_length(monkeypatch, poisson_rows):
    # Five chains on one thread take turns (each hands the thread on every 0.1 s), so when
    # SIGINT reaches the main thread 0.5 s after the last chain started, every chain has made
    # draws: all five are kept, cut to the shortest, and the fit says so.
    X, y = poisson_rows
    timers = _sigint_when_chain_starts(monkeypatch, "run_glm_chain", 4, 0.5)
    try:
        with pytest.warns(bglmm.InterruptedWarning) as caught:
            fit = bglmm.glm(X, y, "poisson", chains=5, draws=200_000, warmup=0, seed=2,
                            threads=1)
    except KeyboardInterrupt:  # pragma: no cover - the failure we test for
        pytest.fail("KeyboardInterrupt escaped the fit instead of stopping it")
    finally:
        for t in timers:
            t.cancel()
    assert len(timers) == 1
    assert fit.interrupted
    assert fit.n_chains == 5 and 0 < fit.n_draws < 200_000
    assert str(caught[0].message) == (
        f"sampling was interrupted after {fit.n_draws} of 200000 draws per chain; the summary "
        f"uses those 5 chains x {fit.n_draws} draws")
    assert np.isfinite(fit.draws).all()
    assert np.isfinite(fit.summary()["r_hat"]).all()
    # the kept draws are the first draws of an uninterrupted run (same seed)
    monkeypatch.undo()
    ref = bglmm.glm(X, y, "poisson", chains=5, draws=fit.n_draws, warmup=0, seed=2, threads=1,
                    check=False)
    assert np.array_equal(fit.draws, ref.draws)


def test_chains_take_turns_when_there_are_more_chains_than_threads():
    # at most `threads` chains run at once, and a waiting chain gets its turn within a report
    turns = _chains.Turns(1)
    order = []
    assert turns.enter(0)

    def second():
        assert turns.enter(1)
        order.append(1)
        turns.leave()

    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.2)
    assert order == []           # chain 1 waits while chain 0 holds the only place
    turns.pass_on(0)             # chain 0 reports progress: chain 1 runs, then chain 0 again
    t.join(timeout=5)
    assert order == [1]
    turns.leave()
    turns.stop()
    assert not turns.enter(2)    # once stopping, a chain that had not started does not start


def test_sigint_with_concurrent_chains_keeps_them_all(monkeypatch, poisson_rows):
    # Two chains run at once (threads=2): both were interrupted mid-way, and both are kept.
    X, y = poisson_rows
    timers = _sigint_when_chain_starts(monkeypatch, "run_glm_chain", 1, 0.5)
    try:
        with pytest.warns(bglmm.InterruptedWarning, match="the summary uses those 2 chains"):
            fit = bglmm.glm(X, y, "poisson", chains=2, draws=200_000, warmup=0, seed=2,
                            threads=2)
    finally:
        for t in timers:
            t.cancel()
    assert fit.n_chains == 2 and 0 < fit.n_draws < 200_000
    assert np.isfinite(fit.summary()["r_hat"]).all()


def _cut_chain(real, chain, keep):
    """A core call whose chain `chain` (by call order) stops after `keep` draws, as a Ctrl-C
    would leave it: every per-draw entry cut to `keep` rows."""
    calls = []

    def run(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(None)
        if len(calls) - 1 != chain:
            return out
        done = int(out["draws_done"])
        for key, value in list(out.items()):
            if isinstance(value, list):
                out[key] = [v[:keep] if len(v) == done else v for v in value]
            elif isinstance(value, np.ndarray) and value.ndim and len(value) == done:
                out[key] = value[:keep]
        out["draws_done"], out["interrupted"] = keep, True
        return out
    return run


SLEEP = "Reaction ~ Days + (Days | Subject)"


@pytest.mark.parametrize("core, call", [
    ("lmm_run", lambda d, **k: bglmm.fit(SLEEP, d, **k)),
    ("run_glmm_chain", lambda d, **k: bglmm.fit(  # two factors: the extra block is cut too
        "np.round(Reaction / 10) ~ Days + (1 | Subject) + (1 | Days)", d, family="poisson", **k)),
    ("hier_normal_run", lambda d, **k: bglmm.hierarchical_normal(
        d.Reaction, d.Subject, sampler="gibbs", **k)),
])
def test_each_sampler_keeps_the_first_draws_of_every_chain(monkeypatch, core, call):
    data = bglmm.datasets.load("sleepstudy")
    args = dict(chains=3, draws=47, warmup=40, seed=3, threads=1, progress=False, check=False)
    ref = call(data, **args)
    monkeypatch.setattr(bglmm._core, core, _cut_chain(getattr(bglmm._core, core), 1, 13))
    # one chain stops after 13 draws; the others finish, and all three are cut to 13
    with pytest.warns(bglmm.InterruptedWarning, match=r"after 13 of 47 draws per chain; the "
                      r"summary uses those 3 chains x 13 draws"):
        fit = call(data, **args)
    assert fit.interrupted and fit.n_chains == 3 and fit.n_draws == 13
    for name, value in fit.posterior.items():
        assert np.array_equal(value, ref.posterior[name][:, :13]), name
    assert np.isfinite(fit.summary()["r_hat"]).all()


def test_sigint_handler_is_untouched():
    # The fit must not leave its own SIGINT handler installed.
    before = signal.getsignal(signal.SIGINT)
    bglmm.glm(np.ones((10, 1)), np.arange(10.0), "poisson", chains=1, draws=10, warmup=10, seed=1,
              check=False)
    assert signal.getsignal(signal.SIGINT) is before
