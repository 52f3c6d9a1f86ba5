"""Several grouping factors through bglmm.fit, and the single-factor rows through both doors.
One command prints the table:

    python benchmarks/bench_factors.py                    # every case, 1 and 2 threads
    python benchmarks/bench_factors.py --cases VerbAgg N1 --threads 2

InstEval  lme4's lecture ratings, 73,421 rows; y ~ service + (1 | s) + (1 | d) + (1 | dept),
          gaussian (2,972 students x 1,128 lecturers x 14 departments, crossed). Peers on this
          machine: lme4's REML point estimate 11.5 s; NumPyro NUTS 4 x 1000, 252 s for min ESS 440.
VerbAgg   lme4's verbal aggression answers, 7,584 rows; r2 ~ Anger + Gender + btype + situ +
          (1 | id) + (1 | item), bernoulli (316 persons x 24 items, crossed). lme4's Laplace fit
          1.7 s; NUTS 4 x 1000, 48-50 s.
C1        synthetic crossed logistic, 10,000 x 1,000 levels, 500,000 rows, (1 | a) + (1 | b),
          SDs 1.0 and 0.5, intercept -0.5.
N1        synthetic nested poisson, 500 schools / 5,000 classes / 100,000 pupils,
          y ~ x + (1 | school/class), SDs 0.5 and 0.3.
B1f, B2f, B2xf, B3f
          bench_glmm.py's single-factor cases through bglmm.fit ("f") and, in the same run,
          through the array door bglmm.glmm ("a"): the ratio of their wall times and peak memory.

Each (case, threads) runs in its own process, so that its peak memory (ru_maxrss) is its own.
Columns: wall time (all chains, warm-up included, data preparation included for fit), minimum
bulk ESS over the fixed effects, SDs, correlations and sigma, ESS per second, peak RSS, and R-hat.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

CASES = {
    "InstEval": dict(chains=2, draws=600, warmup=200),
    "VerbAgg": dict(chains=4, draws=250, warmup=250),
    "C1": dict(chains=2, draws=350, warmup=150),
    "N1": dict(chains=2, draws=600, warmup=200),
}
SINGLE = {"B1": "B1", "B2": "B2", "B2x": "B2x", "B3": "B3"}
for _b in SINGLE:
    CASES[_b + "f"] = {}
    CASES[_b + "a"] = {}


def _c1(seed: int = 1) -> tuple[str, pd.DataFrame, str]:
    rng = np.random.default_rng(seed)
    na, nb, n = 10_000, 1_000, 500_000
    a = rng.integers(0, na, n)
    b = rng.integers(0, nb, n)
    eta = -0.5 + rng.normal(0, 1.0, na)[a] + rng.normal(0, 0.5, nb)[b]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return "y ~ 1 + (1 | a) + (1 | b)", pd.DataFrame({"y": y, "a": a, "b": b}), "bernoulli"


def _n1(seed: int = 1) -> tuple[str, pd.DataFrame, str]:
    rng = np.random.default_rng(seed)
    schools, per_school, per_class = 500, 10, 20
    classes = schools * per_school
    n = classes * per_class
    cls = np.repeat(np.arange(classes), per_class)
    school = cls // per_school
    x = rng.normal(size=n)
    eta = 0.3 + 0.2 * x + rng.normal(0, 0.5, schools)[school] + rng.normal(0, 0.3, classes)[cls]
    y = rng.poisson(np.exp(eta)).astype(float)
    # class labels repeat across schools (0..9 in each): (1 | school/class) must nest them
    return ("y ~ x + (1 | school/class)",
            pd.DataFrame({"y": y, "x": x, "school": school, "class": cls % per_school}), "poisson")


def problem(case: str):
    import bglmm

    if case == "InstEval":
        return ("y ~ service + (1 | s) + (1 | d) + (1 | dept)", bglmm.datasets.load("insteval"),
                "gaussian")
    if case == "VerbAgg":
        return ("r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
                bglmm.datasets.load("verbagg").assign(r2=lambda d: (d.r2 == "Y").astype(float)),
                "bernoulli")
    if case == "C1":
        return _c1()
    if case == "N1":
        return _n1()
    raise KeyError(case)


def reported_min_ess(summary: pd.DataFrame) -> tuple[float, str, float]:
    rows = [r for r in summary.index if r.startswith(("beta[", "sd_", "cor_", "corr_")) or r == "sigma"]
    t = summary.loc[rows]
    worst = t["ess_bulk"].idxmin()
    return float(t["ess_bulk"].min()), str(worst), float(t["r_hat"].max())


def run_one(case: str, threads: int) -> dict:
    import bglmm

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if case[:-1] in SINGLE and case[-1] in "fa":
        import bench_glmm

        name = case[:-1]
        c = bench_glmm.CASES[name]
        y, X, Z, g = bench_glmm.simulate(name)
        mc = dict(chains=c["chains"], draws=c["draws"], warmup=c["warmup"], seed=1,
                  threads=threads, check=False)
        t0 = time.perf_counter()
        if case[-1] == "a":
            fit = bglmm.glmm(y, X, Z, g, family=c["family"], keep_group_effects=c["keep"], **mc)
        else:
            df = pd.DataFrame({"y": y, "x": X["x"], "g": g})
            formula = "y ~ x + (1 + x | g)" if len(Z) == 2 else "y ~ x + (1 | g)"
            # the array benchmark's priors: N(0, 10) fixed effects, its default covariance prior
            fit = bglmm.fit(formula, df, family=c["family"], progress=False,
                            priors={"beta": bglmm.priors.Normal(0.0, 10.0)},
                            keep_group_effects=c["keep"], **mc)
        wall = time.perf_counter() - t0
    else:
        formula, df, family = problem(case)
        c = CASES[case]
        t0 = time.perf_counter()
        fit = bglmm.fit(formula, df, family=family, chains=c["chains"], draws=c["draws"],
                        warmup=c["warmup"], seed=1, threads=threads, progress=False, check=False)
        wall = time.perf_counter() - t0
    ess, worst, rhat = reported_min_ess(fit.summary())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    medians = fit.summary()["50%"]
    return {"case": case, "threads": threads, "wall_s": wall, "min_ess": ess, "worst": worst,
            "ess_per_s": ess / wall, "peak_mb": rss / 1024, "data_mb": base_rss / 1024,
            "r_hat": rhat, "rows": int(len(fit.spec.y)) if getattr(fit, "spec", None) is not None else 0,
            "medians": {k: float(v) for k, v in medians.items() if k.startswith(("sd_", "sigma"))}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*", default=["VerbAgg", "InstEval", "N1", "C1",
                                                   "B1a", "B1f", "B3a", "B3f", "B2a", "B2f",
                                                   "B2xa", "B2xf"])
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--run-threads", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    if args.run:
        print(json.dumps(run_one(args.run, args.run_threads)))
        return
    rows = []
    head = (f"{'case':<9}{'thr':>4}{'rows':>9}{'wall s':>9}{'min ESS':>9}{'ESS/s':>9}"
            f"{'peak MB':>9}{'R-hat':>7}  worst")
    print(head)
    for case in args.cases:
        for t in args.threads:
            out = subprocess.run([sys.executable, __file__, "--run", case, "--run-threads", str(t)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{case:<9}{t:>4}  failed: {out.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(f"{case:<9}{t:>4}{r['rows']:>9}{r['wall_s']:>9.1f}{r['min_ess']:>9.0f}"
                  f"{r['ess_per_s']:>9.1f}{r['peak_mb']:>9.0f}{r['r_hat']:>7.3f}  {r['worst']}",
                  flush=True)
    for r in rows:
        if r["medians"]:
            meds = ", ".join(f"{k} {v:.3f}" for k, v in r["medians"].items())
            print(f"{r['case']} ({r['threads']} thr) medians: {meds}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
