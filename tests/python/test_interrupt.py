"""Ctrl-C during a long fit returns the draws made so far, flagged, within a second, and leaves
the interpreter healthy.

The main test runs the fit in a child interpreter and sends it a real SIGINT from outside (what
Ctrl-C in a terminal does), so that a failure cannot take the test session down.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import bglmm

CHILD = textwrap.dedent("""
    import json, sys, time, warnings
    import numpy as np
    import bglmm

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
    # interrupted in chain 0: that partial chain is kept, with some draws and fewer than asked
    n_chains, n_draws, p = res["shape"]
    assert n_chains == 1 and 0 < n_draws < 400_000 and p == 2
    assert res["finite"]
    assert res["warnings"] == ["InterruptedWarning"], res["messages"]
    assert res["after_ok"]


def test_sigint_in_process_warns_and_keeps_completed_chains(monkeypatch):
    # In-process variant: SIGINT is sent to the main thread 0.2 s after chain 1 (of 5) starts
    # (each chain takes ~1-2 s; the start is observed by wrapping the core call). The complete
    # chain 0 is kept, the partial chain 1 dropped, and the fit warns with InterruptedWarning.
    rng = np.random.default_rng(1)
    n = 5_000
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = rng.poisson(1.5, n).astype(float)
    main = threading.main_thread().ident
    real = bglmm._core.run_glm_chain
    timers = []

    def wrapped(*args, **kwargs):
        if kwargs.get("chain", args[19] if len(args) > 19 else None) == 1:
            timers.append(threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT)))
            timers[-1].start()
        return real(*args, **kwargs)

    monkeypatch.setattr(bglmm._core, "run_glm_chain", wrapped)
    try:
        with pytest.warns(bglmm.InterruptedWarning, match="interrupted"):
            fit = bglmm.glm(X, y, "poisson", chains=5, draws=20_000, warmup=0, seed=2, threads=1)
    except KeyboardInterrupt:  # pragma: no cover - the failure we test for
        pytest.fail("KeyboardInterrupt escaped the fit instead of stopping it")
    finally:
        for t in timers:
            t.cancel()
    assert len(timers) == 1
    assert fit.interrupted
    assert fit.n_chains == 1 and fit.n_draws == 20_000  # only the complete chain is kept
    assert np.isfinite(fit.draws).all()
    # the kept chain's draws are those of an uninterrupted run (same seed, chain 0)
    monkeypatch.setattr(bglmm._core, "run_glm_chain", real)
    ref = bglmm.glm(X, y, "poisson", chains=1, draws=20_000, warmup=0, seed=2, threads=1)
    assert np.array_equal(fit.draws[0], ref.draws[0])


def test_sigint_handler_is_untouched():
    # The fit must not leave its own SIGINT handler installed.
    before = signal.getsignal(signal.SIGINT)
    bglmm.glm(np.ones((10, 1)), np.arange(10.0), "poisson", chains=1, draws=10, warmup=10, seed=1,
              check=False)
    assert signal.getsignal(signal.SIGINT) is before
