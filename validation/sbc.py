"""Simulation-based calibration, full size: ``python validation/sbc.py --replications 500``.

For every case of ``bglmm.testing.sbc_cases()`` (each family x link x sampler), draw parameters
from the prior and data from the model, fit, and record the rank of each true parameter among
L thinned posterior draws (Talts et al. 2018). Prints, per scalar parameter, the chi-square
statistic of the rank histogram (20 bins), its p-value, the directed z-scores of the rank mean
(bias) and variance (posterior too narrow > 0, too wide < 0), and a verdict at a Bonferroni level
over all statistics printed. Exit status 1 if any parameter fails.

The cases include those with covariance priors of the default family (LKJ(2) + Half-Student-t(3)
SDs; ``bglmm.testing.default_prior_sbc_cases()``, select them with ``--cases default-prior``).
``--negative-controls`` adds deliberately wrong cases (``bglmm.testing.
wrong_default_prior_sbc_cases()``: the fit's SD prior scales halved; ``bglmm.testing.
wrong_cumulative_sbc_cases()``: a cumulative GLM fitted with its cutpoints' prior sd halved),
each of which must be flagged: they are printed with the verdict "flagged" / "MISSED" and count
as failures only when missed.

The cumulative ordinal family's cases (``bglmm.testing.cumulative_sbc_cases()``; its GLMM case
runs here only, not in the test suite) need >= 600 replications for the GLMM:
``python validation/sbc.py --cases cumulative --replications 600 --negative-controls``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

import numpy as np
from scipy import stats

from bglmm import testing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replications", type=int, default=500)
    ap.add_argument("--draws", type=int, default=39, help="L thinned draws per fit (L+1 ranks)")
    ap.add_argument("--bins", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", default=".*", help="regular expression on case names")
    ap.add_argument("--alpha", type=float, default=0.01, help="family-wise level")
    ap.add_argument("--negative-controls", action="store_true",
                    help="also run the deliberately wrong cases, which must be flagged")
    args = ap.parse_args(argv)

    cases = [c for c in testing.sbc_cases() if re.search(args.cases, c.name)]
    wrong_cases = testing.wrong_default_prior_sbc_cases() + testing.wrong_cumulative_sbc_cases()
    wrong = [c.name for c in wrong_cases]
    if args.negative_controls:
        cases += [c for c in wrong_cases if re.search(args.cases, c.name)]
    results = []
    t_all = time.perf_counter()
    for case in cases:
        t0 = time.perf_counter()
        ranks = testing.sbc_ranks(case, args.replications, args.draws, seed=args.seed)
        rows = testing.rank_uniformity(ranks, args.draws, bins=args.bins)
        elapsed = time.perf_counter() - t0
        for r in rows:
            results.append((case.name, r, elapsed))
        print(f"# {case.name}: {len(rows)} parameters, {elapsed:.1f} s", file=sys.stderr, flush=True)

    n_tests = 3 * sum(name not in wrong for name, _, _ in results)
    per_test = args.alpha / max(n_tests, 1)
    z_crit = float(stats.norm.isf(per_test / 2))
    width = max([len(name) for name, _, _ in results] + [4])
    header = (f"{'case':<{width}} {'param':<10} {'chi2':>7} {'dof':>4} {'p':>9} {'z_mean':>7} "
              f"{'z_var':>7}  verdict")
    print(f"SBC: {args.replications} replications, L = {args.draws}, {args.bins} bins; "
          f"Bonferroni over {n_tests} statistics at family-wise {args.alpha}: p < {per_test:.1e} "
          f"or |z| > {z_crit:.2f} fails")
    print(header)
    print("-" * len(header))
    failed = 0
    flagged: dict[str, bool] = {}
    for name, r, _ in results:
        bad = r["p_value"] < per_test or abs(r["z_mean"]) > z_crit or abs(r["z_var"]) > z_crit
        if name in wrong:
            flagged[name] = flagged.get(name, False) or bad
            verdict = "flagged" if bad else "-"
        else:
            failed += bad
            verdict = "FAIL" if bad else "ok"
        print(f"{name:<{width}} {r['name']:<10} {r['statistic']:7.1f} {r['dof']:4d} "
              f"{r['p_value']:9.3g} {r['z_mean']:7.2f} {r['z_var']:7.2f}  {verdict}")
    for name, hit in flagged.items():
        print(f"negative control {name}: {'flagged' if hit else 'MISSED'}")
        failed += not hit
    print("-" * len(header))
    print(f"{'case':<{width}} {'params':>6} {'min p':>9} {'max|z_mean|':>12} {'max|z_var|':>11} "
          f"{'time':>7}")
    for case in cases:
        rows = [(r, t) for name, r, t in results if name == case.name]
        print(f"{case.name:<{width}} {len(rows):6d} {min(r['p_value'] for r, _ in rows):9.3g} "
              f"{max(abs(r['z_mean']) for r, _ in rows):12.2f} "
              f"{max(abs(r['z_var']) for r, _ in rows):11.2f} {rows[0][1]:6.0f}s")
    results = [t for t in results if t[0] not in wrong]
    pvals = np.array([r["p_value"] for _, r, _ in results])
    print("-" * len(header))
    summary = f"{len(cases) - len(flagged)} cases, {len(results)} parameters, {failed} failing"
    if pvals.size:
        summary += (f"; smallest chi-square p = {pvals.min():.3g}; KS test of all chi-square "
                    f"p-values vs U(0,1): p = {stats.kstest(pvals, 'uniform').pvalue:.3g}")
    print(f"{summary}; {time.perf_counter() - t_all:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
