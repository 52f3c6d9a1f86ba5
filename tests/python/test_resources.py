"""Resources: the GIL is released while sampling, and memory stays bounded over repeated fits."""

from __future__ import annotations

import gc
import os
import threading
import time

import numpy as np
import pytest

import bglmm
from bglmm import testing


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc/self/statm; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - non-Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _poisson_data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    return X, rng.poisson(np.exp(0.3 + 0.2 * X[:, 1])).astype(float)


def _fit_glm(X, y):
    bglmm.glm(X, y, "poisson", chains=1, draws=3000, warmup=0, seed=1, threads=1, check=False)


def _fit_lmm(X, y):
    bglmm.lmm(np.log1p(y), X, None, np.arange(len(y)) // 10, chains=1, draws=1500, warmup=0,
              seed=1, threads=1, keep_effects=False, check=False)


def _fit_glmm(X, y):
    bglmm.glmm(y, X, None, np.arange(len(y)) // 10, "poisson", chains=1, draws=400, warmup=0,
               seed=1, threads=1, check=False, keep_group_effects=False)


@pytest.mark.parametrize("fit_fn", [_fit_glm, _fit_lmm, _fit_glmm], ids=["glm", "lmm", "glmm"])
def test_gil_released_during_fit(fit_fn):
    # A pure-Python thread keeps counting while a fit runs in another thread. If the fit held
    # the GIL, the counter would stall for the whole C++ run; with it released, the counter only
    # pauses for the OS scheduler and Python's 5 ms switch interval. We record when the counter
    # advances and require (a) many advances during the fit and (b) no stall longer than 50% of
    # the fit's duration (the machine may be loaded, so no tighter bound).
    X, y = _poisson_data(20_000)
    stop = threading.Event()
    stamps: list[float] = []

    def count():
        i = 0
        while not stop.is_set():
            i += 1
            if i % 2000 == 0:
                stamps.append(time.perf_counter())

    fit_times: list[float] = []

    def run_fit():
        fit_times.append(time.perf_counter())
        fit_fn(X, y)
        fit_times.append(time.perf_counter())

    counter = threading.Thread(target=count)
    counter.start()
    worker = threading.Thread(target=run_fit)
    worker.start()
    worker.join()
    stop.set()
    counter.join()
    start, end = fit_times
    duration = end - start
    inside = [t for t in stamps if start <= t <= end]
    assert duration > 0.2, "fit too short to measure"
    assert len(inside) >= 20, f"only {len(inside)} counter advances in a {duration:.2f} s fit"
    gaps = np.diff([start, *inside, end])
    assert gaps.max() < 0.5 * duration, f"counter stalled {gaps.max():.2f} s of {duration:.2f} s"


def test_two_fits_in_threads_match_serial_fits():
    # Two fits in parallel threads (GIL released) give the same draws as one after the other.
    X, y = _poisson_data(3000, seed=1)
    kwargs = {"chains": 2, "draws": 100, "warmup": 100, "threads": 1, "check": False}
    serial = [bglmm.glm(X, y, "poisson", seed=s, **kwargs).draws for s in (1, 2)]
    out: dict[int, np.ndarray] = {}

    def run(s):
        out[s] = bglmm.glm(X, y, "poisson", seed=s, **kwargs).draws

    threads = [threading.Thread(target=run, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert np.array_equal(out[1], serial[0]) and np.array_equal(out[2], serial[1])


def _rss_growth(make_fit, repeats=100, warm=10):
    for _ in range(warm):
        make_fit()
    gc.collect()
    before = rss_bytes()
    for _ in range(repeats):
        make_fit()
    gc.collect()
    return rss_bytes() - before


def test_no_leak_over_100_fits_with_large_data():
    # Each fit copies ~1 MB of data (20,000 rows) into the core and returns its draws; if any of
    # it leaked, 100 fits would grow RSS by ~100 MB. Allow 8 MB for allocator noise.
    X, y = _poisson_data(20_000, seed=2)

    def make_fit():
        fit = bglmm.glm(X, y, "poisson", chains=1, draws=20, warmup=20, seed=3, threads=1,
                        check=False)
        fit._log_likelihood()  # also exercise the pointwise log-likelihood path (20 x 20,000)

    growth = _rss_growth(make_fit)
    assert growth < 8 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB over 100 fits"


def test_no_leak_over_100_fits_with_many_iterations():
    # 100 fits x 2 chains x 2,000 iterations = 400,000 sampler iterations: a leak of even one
    # small heap block (>= 32 bytes) per iteration would grow RSS by >= 12 MB. Allow 8 MB.
    X, y = _poisson_data(30, seed=3)
    Xs = np.column_stack([X, X[:, 1] ** 2])

    def make_fit():
        kw = {"seed": 4, "threads": 1, "check": False}  # the sampler's memory only
        bglmm.glm(Xs, y, "poisson", chains=2, draws=1000, warmup=1000, **kw)
        bglmm.glm(Xs, y, "gaussian", sigma=1.0, chains=1, draws=1000, **kw)
        bglmm.glm(Xs, y, "gaussian", chains=1, draws=1000, **kw)

    growth = _rss_growth(make_fit)
    assert growth < 8 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB over 100 fits"


def test_no_leak_over_100_fits_of_the_hierarchical_samplers():
    # 100 rounds of a hierarchical normal, an LMM and a GLMM fit (~1,000 sweeps each over 40
    # groups): a per-sweep or per-group leak of one heap block would grow RSS by >= 8 MB.
    hn = testing.simulate_hierarchical_normal(40, 0.0, 1.0, sigma=1.0, rows=2, seed=1).data
    sim = testing.simulate_glmm(40, 3, [0.2, 0.1], 0.3, "poisson", n_random=1, seed=2).data

    def make_fit():
        bglmm.hierarchical_normal(hn["y"], hn["group"], chains=1, draws=500, warmup=500, seed=1,
                                  check=False)
        bglmm.lmm(np.log1p(sim["y"]), sim["X"], None, sim["group"], chains=1, draws=300,
                  warmup=300, seed=1, threads=1, check=False)
        bglmm.glmm(sim["y"], sim["X"], None, sim["group"], "poisson", chains=1, draws=100,
                   warmup=100, seed=1, threads=1, check=False)

    growth = _rss_growth(make_fit, repeats=100, warm=5)
    assert growth < 8 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB over 100 rounds"
