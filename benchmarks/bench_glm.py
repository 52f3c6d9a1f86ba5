"""Benchmark: Bayesian logistic regression, N = 10^6 observations, p = 10 coefficients.

Prints one row per configuration: sampler, chains, threads, wall time, minimum bulk ESS over
the coefficients, ESS per second, and the peak resident memory of the process that ran it.
Each configuration runs in a fresh subprocess so that peak memory is its own.

    python benchmarks/bench_glm.py                 # the full table
    python benchmarks/bench_glm.py --n 100000      # smaller data
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def simulate(n: int, p: int, seed: int = 2026):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    beta = np.linspace(-1.0, 1.0, p) * 0.5
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-X @ beta))).astype(float)
    return X, y


def run_one(args: argparse.Namespace) -> dict:
    import bglmm
    from bglmm.results import import_arviz

    az = import_arviz()
    X, y = simulate(args.n, args.p)
    start = time.perf_counter()
    fit = bglmm.glm(X, y, family="bernoulli", prior=bglmm.priors.Normal(0, 10),
                    chains=args.chains, draws=args.draws, warmup=args.warmup, seed=1,
                    threads=args.threads, sampler=args.sampler, check=False)  # timed: no checks
    wall = time.perf_counter() - start
    ess = az.ess(az.convert_to_dataset({"beta": fit.draws}), method="bulk")["beta"].values
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"sampler": args.sampler, "chains": args.chains, "threads": args.threads,
            "wall_s": wall, "min_ess_bulk": float(ess.min()), "ess_per_s": float(ess.min()) / wall,
            "peak_mb": peak_mb, "acceptance": float(np.mean(fit.acceptance_rate))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--p", type=int, default=10)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sampler", default="random_walk")
    parser.add_argument("--chains", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args)))
        return
    configs = [(s, c, t) for s in ("random_walk", "independence") for c in (1, 4) for t in (1, 2)]
    print(f"logistic GLM, N = {args.n:,}, p = {args.p}, {args.draws} draws after {args.warmup} warm-up per chain")
    header = f"{'sampler':<13}{'chains':>7}{'threads':>8}{'wall s':>9}{'min ESS':>9}{'ESS/s':>9}{'peak MB':>9}{'accept':>8}"
    print(header)
    print("-" * len(header))
    for sampler, chains, threads in configs:
        cmd = [sys.executable, __file__, "--one", "--n", str(args.n), "--p", str(args.p),
               "--draws", str(args.draws), "--warmup", str(args.warmup), "--sampler", sampler,
               "--chains", str(chains), "--threads", str(threads)]
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(f"{sampler:<13}{chains:>7}{threads:>8}{out['wall_s']:>9.1f}{out['min_ess_bulk']:>9.0f}"
              f"{out['ess_per_s']:>9.1f}{out['peak_mb']:>9.0f}{out['acceptance']:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
