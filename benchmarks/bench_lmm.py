"""Benchmark B4: linear mixed model with a correlated random intercept and slope.

    y_ij = -0.5 + 1.0 x_ij + b_j0 + b_j1 x_ij + e_ij,   x ~ N(0, 1), 20 rows per group,
    SD(b0) = 1.0, SD(b1) = 0.5, corr = 0.3, sigma = 1

with m = 1,000 groups and m = 100,000 groups, 1 and 2 threads. Prints wall time (data
preparation + sampling, excluding the simulation of the data), the minimum bulk ESS over the
fixed effects, the two SDs, the correlation and sigma, ESS per second, and the peak resident
memory of the process (each configuration runs in a fresh subprocess, so the peak is its own).

    python benchmarks/bench_lmm.py            # the whole table
    python benchmarks/bench_lmm.py --quick    # m = 1,000 only

Peers on a 2-core machine (B4, m = 1,000): MCMCglmm 29-31 s for min ESS 2,100-2,500 (70-87
ESS/s), NumPyro NUTS ~14 ESS/s, brms 1.6 ESS/s; lme4 REML 0.3 s (a point estimate).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

CONFIGS = {
    # m: (chains, draws, warmup)
    1_000: (4, 2500, 250),
    100_000: (2, 600, 50),
}


def simulate(m: int, n_per: int = 20, seed: int = 2026):
    rng = np.random.default_rng(seed)
    sd, corr = np.array([1.0, 0.5]), 0.3
    cov = np.outer(sd, sd) * np.array([[1.0, corr], [corr, 1.0]])
    b = rng.multivariate_normal(np.zeros(2), cov, size=m)
    g = np.repeat(np.arange(m), n_per)
    x = rng.normal(size=m * n_per)
    y = -0.5 + 1.0 * x + b[g, 0] + b[g, 1] * x + rng.normal(size=m * n_per)
    X = np.column_stack([np.ones_like(x), x])
    return y, X, g


def run_one(m: int, threads: int) -> dict:
    import bglmm
    from bglmm.results import import_arviz

    az = import_arviz()
    chains, draws, warmup = CONFIGS[m]
    y, X, g = simulate(m)
    start = time.perf_counter()
    fit = bglmm.lmm(y, X, X, g, chains=chains, draws=draws, warmup=warmup, seed=1,
                    threads=threads, keep_effects=False, check=False)  # timed: no checks
    wall = time.perf_counter() - start
    names = ["beta", "sd_x0", "sd_x1", "corr_x0__x1", "sigma"]
    ds = az.convert_to_dataset({k: fit.posterior[k] for k in names})
    ess = az.ess(ds, method="bulk")
    per = {k: float(np.min(ess[k].values)) for k in names}
    min_ess = min(per.values())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summ = fit.summary(names)
    return {"m": m, "threads": threads, "chains": chains, "draws": draws, "warmup": warmup,
            "wall_s": wall, "min_ess_bulk": min_ess, "ess_per_s": min_ess / wall,
            "peak_mb": peak_mb, "ess": per, "means": summ["mean"].round(3).to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="m = 1,000 only")
    parser.add_argument("--one", nargs=2, type=int, metavar=("M", "THREADS"),
                        help=argparse.SUPPRESS)  # internal: run one configuration, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one)))
        return
    ms = [1_000] if args.quick else [1_000, 100_000]
    rows = []
    for m in ms:
        for threads in (1, 2):
            out = subprocess.run([sys.executable, __file__, "--one", str(m), str(threads)],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'m':>8} {'threads':>7} {'chains x draws':>15} {'wall s':>8} {'min ESS':>8} "
          f"{'ESS/s':>8} {'peak MB':>8}")
    for r in rows:
        print(f"{r['m']:>8} {r['threads']:>7} {str(r['chains']) + ' x ' + str(r['draws']):>15} "
              f"{r['wall_s']:>8.2f} {r['min_ess_bulk']:>8.0f} {r['ess_per_s']:>8.0f} "
              f"{r['peak_mb']:>8.0f}")
    print()
    for r in rows:
        print(f"m={r['m']} threads={r['threads']}: ESS {json.dumps({k: round(v) for k, v in r['ess'].items()})}")
        print(f"   posterior means {json.dumps(r['means'])}")


if __name__ == "__main__":
    main()
