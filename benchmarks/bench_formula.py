"""Benchmark: the formula step (bglmm.formula.build_spec) on many groups, against its floor.

The floor is the least any formula layer must do: factorize the grouping column and stack the
fixed and random design columns as float64 arrays. build_spec also parses the formula, checks
for missing values, evaluates the terms with formulae, checks the response and the rank of
each design. Each configuration runs in a fresh subprocess, so that its peak memory is its own;
memory is reported as the peak traced by tracemalloc (numpy and pandas buffers included) in a
second run, and as the growth of the peak resident set over the data already in memory. Times
are the best of --repeat calls after a warm-up call (the first call of build_spec in a process
imports formulae, about 1 s).

    python benchmarks/bench_formula.py                       # the table
    python benchmarks/bench_formula.py --labels int          # integer group labels
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pandas as pd

CONFIGS = [  # (groups, rows per group, formula)
    (20_000, 20, "y ~ x + (1 | g)"),
    (3_000, 20, "y ~ x + (1 + x | g)"),
    (100_000, 20, "y ~ x + (1 + x | g)"),
    (100_000, 20, "y ~ x + (1 | g) + (1 | h)"),
    (100_000, 20, "y ~ x + (1 + x || g)"),
    (10_000, 20, "y ~ x + (1 | g/k)"),
]


def simulate(groups: int, per: int, labels: str, seed: int = 2026) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = groups * per
    g = rng.permutation(np.repeat(np.arange(groups), per))
    d = pd.DataFrame({"g": g, "x": rng.normal(size=n)})
    d["h"] = rng.integers(0, 500, n)  # a second, crossed factor
    d["k"] = rng.integers(0, 5, n)  # labels 0..4 repeated in every g (nested)
    if labels == "str":
        d["g"] = pd.Series(np.char.add("g", g.astype(str)), dtype=object)
    d["y"] = (rng.uniform(size=n) < 0.5).astype(float)
    return d


# the columns of Z of each block, for the floor
Z_COLUMNS = {"y ~ x + (1 | g)": [1], "y ~ x + (1 + x | g)": [2], "y ~ x + (1 | g) + (1 | h)": [1, 1],
             "y ~ x + (1 + x || g)": [1, 1], "y ~ x + (1 | g/k)": [1, 1]}


def floor(d: pd.DataFrame, formula: str) -> tuple:
    """What any formula layer must do: factorize each grouping factor once, stack the columns."""
    n = len(d)
    x = d["x"].to_numpy(dtype=float)
    out = [np.column_stack([np.ones(n), x]), d["y"].to_numpy(dtype=float)]  # X, y
    for factor in ("g", "h"):
        if f"| {factor}" in formula:
            codes, levels = pd.factorize(d[factor], sort=True)
            out += [codes.astype(np.int64), levels]
    if "| g/k)" in formula:  # and the interaction g:k
        cg, _ = pd.factorize(d["g"], sort=True)
        ck, uk = pd.factorize(d["k"], sort=True)
        out += list(pd.factorize(cg * len(uk) + ck, sort=True))
    for q in Z_COLUMNS[formula]:
        out.append(np.column_stack([np.ones(n), x]) if q == 2 else np.ones((n, 1)))
    return tuple(out)


def run_one(groups: int, per: int, formula: str, labels: str, what: str, repeat: int) -> dict:
    from bglmm.formula import build_spec

    d = simulate(groups, per, labels)
    if what == "floor":
        def step(data=d):
            return floor(data, formula)
    else:
        def step(data=d):
            return build_spec(formula, data, "bernoulli")
    start = time.perf_counter()
    step(d.head(100))  # warm-up: imports (formulae imports scipy.interpolate: ~1 s) and caches
    warmup = time.perf_counter() - start
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    walls = []
    for _ in range(repeat):  # the best of `repeat` calls: less noise on a shared machine
        start = time.perf_counter()
        out = step()
        walls.append(time.perf_counter() - start)
        del out
    wall = min(walls)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"wall_s": wall, "warmup_s": warmup, "traced_peak_mb": peak / 1e6,
            "rss_growth_mb": rss1 - rss0, "data_mb": d.memory_usage(deep=True).sum() / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", choices=["str", "int"], default="str")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls (the best is shown)")
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        groups, per, formula, what = args.one
        print(json.dumps(run_one(int(groups), int(per), formula, args.labels, what, args.repeat)))
        return
    print(f"build_spec(formula, data, 'bernoulli'), {args.labels} group labels; floor = factorize + arrays;"
          f" best of {args.repeat} calls after a warm-up call on 100 rows (the first imports formulae)")
    header = (f"{'formula':<28}{'groups':>8}{'rows':>10}{'data MB':>9}{'floor s':>9}{'spec s':>8}"
              f"{'ratio':>7}{'floor MB':>9}{'spec MB':>8}{'RSS+ MB':>8}")
    print(header)
    print("-" * len(header))
    for groups, per, formula in CONFIGS:
        res = {}
        for what in ("floor", "spec"):
            cmd = [sys.executable, __file__, "--labels", args.labels, "--repeat", str(args.repeat),
                   "--one", str(groups), str(per), formula, what]
            res[what] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        f, s = res["floor"], res["spec"]
        print(f"{formula:<28}{groups:>8,}{groups * per:>10,}{s['data_mb']:>9.0f}{f['wall_s']:>9.2f}"
              f"{s['wall_s']:>8.2f}{s['wall_s'] / f['wall_s']:>7.1f}{f['traced_peak_mb']:>9.0f}"
              f"{s['traced_peak_mb']:>8.0f}{s['rss_growth_mb']:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
