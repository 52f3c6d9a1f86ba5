"""GLMM benchmarks B1, B2, B2x, B3, B3nb, B3w, B3zip, B3zif, B4ord (bglmm.glmm, Laplace kernel). One command prints
the table:

    python benchmarks/bench_glmm.py                 # all cases, 1 and 2 threads
    python benchmarks/bench_glmm.py --cases B1 B3   # a subset

B1: hierarchical logistic regression, m = 1,000 groups x 20 observations, x ~ N(0, 1), fixed
    effects (-0.5, 1.0), correlated random intercept and slope with SDs (1.0, 0.5) and
    correlation 0.3; 4 chains x 1,000 draws after 1,000 warm-up.
B2: the same with m = 10,000 (4 x 400 draws after 200 warm-up); B2x: m = 100,000 (2 x 400
    draws after 100 warm-up): their target is min ESS >= 400 in under 60 s, so the run lengths
    are chosen for that; group effects not stored.
B3: poisson random intercept, m = 2,000 x 10, intercept 0.5, slope 0.3 (fixed), SD 0.7.
B3nb: the same design with negative-binomial counts, phi = 2 (var = mu + mu^2 / 2), fitted with
    family="negbinomial" (phi sampled, default Gamma(0.01, 0.01) prior); its min ESS includes phi.
B3w: B3 with case weights (1, 2 or 3 per row, at random): the cost of the weighting (the block
    forms multiply their terms, scores and Fisher weights by the weights) against B3's.
B3zip: the same design with a structural zero in 20% of the rows, fitted with
    family="zero_inflated_poisson" (zi sampled, default Beta(1, 1)); its min ESS includes zi.
B3zif: B3zip with zi depending on a row covariate w ~ N(0, 1), logit zi = -1.6 + 0.8 w, fitted
    with that zi formula (zi_X = [1, w]); its min ESS includes both zi coefficients.
B4ord: ordered ratings, m = 1,000 groups x 20, 5 categories: P(y <= k) = logistic(c_k - eta),
    cutpoints (-2, -0.5, 0.5, 2), eta = 0.5 x + b_j, SD 0.8; family="cumulative" (logit), default
    priors; its min ESS includes the four cutpoints. (No log-likelihood pass yardstick: the
    cumulative family needs its cutpoints, which that hook does not take.)

Each (case, threads) runs in its own process so that its peak memory (ru_maxrss) is its own.
Columns: wall time of the fit (all chains, warm-up included), minimum bulk ESS over the fixed
effects and the covariance parameters (SDs, correlation), ESS per second, peak RSS, the cost of
one sweep in ns per observation (one chain; chains run concurrently, each with its share of the
threads), the cost of one vectorised log-likelihood pass in ns per observation with the same
threads per chain, their ratio, and the speed-up of 2 threads over 1.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

CASES = {
    "B1": dict(family="bernoulli", m=1000, k=20, chains=4, draws=1000, warmup=1000, keep=True),
    "B2": dict(family="bernoulli", m=10000, k=20, chains=4, draws=400, warmup=200, keep=False),
    "B2x": dict(family="bernoulli", m=100000, k=20, chains=2, draws=400, warmup=100, keep=False),
    "B3": dict(family="poisson", m=2000, k=10, chains=4, draws=1000, warmup=1000, keep=True),
    "B3nb": dict(family="negbinomial", m=2000, k=10, chains=4, draws=1000, warmup=1000, keep=True),
    "B3w": dict(family="poisson", m=2000, k=10, chains=4, draws=1000, warmup=1000, keep=True,
                weights=True),
    "B3zip": dict(family="zero_inflated_poisson", m=2000, k=10, chains=4, draws=1000, warmup=1000,
                  keep=True),
    "B3zif": dict(family="zero_inflated_poisson", m=2000, k=10, chains=4, draws=1000, warmup=1000,
                  keep=True, zi_formula=True),
    "B4ord": dict(family="cumulative", m=1000, k=20, chains=4, draws=1000, warmup=1000, keep=True),
}


def zi_design(case: str) -> np.ndarray | None:
    """B3zif's zi design [1, w], w ~ N(0, 1) per row (None for the other cases)."""
    c = CASES[case]
    if not c.get("zi_formula"):
        return None
    w = np.random.default_rng(11).normal(size=c["m"] * c["k"])
    return np.column_stack([np.ones_like(w), w])


def simulate(case: str, seed: int = 20261121):
    c = CASES[case]
    rng = np.random.default_rng(seed)
    m, k = c["m"], c["k"]
    g = np.repeat(np.arange(m), k)
    x = rng.normal(size=m * k)
    if c["family"] == "cumulative":
        import pandas as pd

        eta = 0.5 * x + rng.normal(0, 0.8, m)[g]
        cdf = 1.0 / (1.0 + np.exp(-(np.array([-2.0, -0.5, 0.5, 2.0])[None, :] - eta[:, None])))
        y = 1.0 + (rng.random(m * k)[:, None] > cdf).sum(axis=1)
        return y, pd.DataFrame({"x": x}), ["Intercept"], g
    if c["family"] == "bernoulli":
        sd = np.array([1.0, 0.5])
        cov = np.diag(sd) @ np.array([[1.0, 0.3], [0.3, 1.0]]) @ np.diag(sd)
        b = rng.multivariate_normal(np.zeros(2), cov, size=m)
        eta = -0.5 + b[g, 0] + (1.0 + b[g, 1]) * x
        y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta))).astype(float)
        Z = ["Intercept", "x"]
    else:
        eta = 0.5 + 0.3 * x + rng.normal(0, 0.7, m)[g]
        mu = np.exp(eta)
        if c["family"] == "negbinomial":  # a gamma-Poisson mixture, phi = 2
            mu = rng.gamma(2.0, mu / 2.0)
        y = rng.poisson(mu).astype(float)
        if c["family"] == "zero_inflated_poisson":  # a structural zero with probability 0.2
            W = zi_design(case)
            zi = 0.2 if W is None else 1.0 / (1.0 + np.exp(-(W @ np.array([-1.6, 0.8]))))
            y[rng.random(len(y)) < zi] = 0.0
        Z = ["Intercept"]
    import pandas as pd

    X = pd.DataFrame({"Intercept": 1.0, "x": x})
    return y, X, Z, g


def run_one(case: str, threads: int) -> dict:
    import bglmm
    from bglmm import _core

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    c = CASES[case]
    y, X, Z, g = simulate(case)
    weights = (np.random.default_rng(7).integers(1, 4, size=len(y)).astype(float)
               if c.get("weights") else None)
    t0 = time.perf_counter()
    fit = bglmm.glmm(y, X, Z, g, family=c["family"], weights=weights, chains=c["chains"],
                     draws=c["draws"], warmup=c["warmup"], seed=1, threads=threads,
                     keep_group_effects=c["keep"], check=False, zi_X=zi_design(case))
    wall = time.perf_counter() - t0
    s = fit.summary()
    n = len(y)
    sweep_ns = np.mean([sec / sw for sec, sw in zip(fit.attrs["sampling_seconds"],
                                                     fit.attrs["sampling_sweeps"])]) / n * 1e9
    d = fit._data
    beta = fit.posterior["beta"].mean(axis=(0, 1))
    b = np.zeros((fit.attrs["n_groups"], len(fit.term_names)))
    if fit.family.is_ordinal:
        pass_ns = float("nan")
    else:
        pass_s = _core.glmm_log_lik_pass_seconds(d["X"], d["Z"], d["y"], d["trials"],
                                                 d["offset"], d["group_start"], fit.family.code,
                                                 beta, b, 1.0, 5, fit.attrs["threads_used"])
        pass_ns = pass_s / n * 1e9
    acc = fit.acceptance_summary()
    return {
        "case": case, "threads": threads, "threads_used": fit.attrs["threads_used"],
        "n": n, "groups": c["m"], "chains": c["chains"], "draws": c["draws"], "warmup": c["warmup"],
        "wall_s": wall, "min_ess": float(s["ess_bulk"].min()),
        "min_ess_param": str(s["ess_bulk"].idxmin()), "max_rhat": float(s["r_hat"].max()),
        "ess_per_s": float(s["ess_bulk"].min()) / wall,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "base_mb": base_rss / 1024.0,
        "sweep_ns_per_obs": sweep_ns, "pass_ns_per_obs": pass_ns, "ratio": sweep_ns / pass_ns,
        "group_acc_median": float(acc.group_median.median()),
        "means": {k: float(v) for k, v in s["mean"].items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*",
                    default=["B1", "B3", "B3nb", "B3w", "B3zip", "B3zif", "B4ord", "B2", "B2x"])
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--run-threads", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    if args.run:
        print(json.dumps(run_one(args.run, args.run_threads)))
        return
    rows = []
    for case in args.cases:
        for t in args.threads:
            out = subprocess.run([sys.executable, __file__, "--run", case, "--run-threads", str(t)],
                                 capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"# {case} threads={t}: {row['wall_s']:.1f} s, min ESS {row['min_ess']:.0f} "
                  f"({row['min_ess_param']}), max R-hat {row['max_rhat']:.3f}", file=sys.stderr)
    one = {r["case"]: r["wall_s"] for r in rows if r["threads"] == 1}
    head = (f"{'case':5} {'thr':>3} {'N':>9} {'chains x draws':>14} {'wall s':>8} {'min ESS':>8} "
            f"{'ESS/s':>8} {'peak MB':>8} {'sweep ns/obs':>12} {'pass ns/obs':>11} {'ratio':>6} "
            f"{'speed-up':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        speed = one.get(r["case"], float("nan")) / r["wall_s"]
        print(f"{r['case']:5} {r['threads']:>3} {r['n']:>9} {r['chains']:>5} x {r['draws']:<6} "
              f"{r['wall_s']:>8.1f} {r['min_ess']:>8.0f} {r['ess_per_s']:>8.1f} {r['peak_mb']:>8.0f} "
              f"{r['sweep_ns_per_obs']:>12.1f} {r['pass_ns_per_obs']:>11.1f} {r['ratio']:>6.2f} "
              f"{speed:>8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
