"""Geweke (2004) joint-distribution tests, full size: ``python validation/geweke.py``.

Runs ``bglmm.testing.glm_geweke`` for every family x link x GLM sampler, and
``bglmm.testing.hierarchical_normal_geweke`` for the hierarchical normal samplers, with long
simulators (default 20,000 marginal-conditional and 20,000 successive-conditional draws), and
prints the z-score of every (functional, moment) pair, with a Bonferroni verdict. Exit status 1 on failure.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

from scipy import stats

from bglmm import testing

GLM_CASES = [("gaussian", None, "conjugate", True), ("gaussian", None, "conjugate", False),
             ("gaussian", None, "random_walk", False), ("gaussian", None, "independence", False),
             ("poisson", None, "random_walk", False), ("poisson", None, "independence", False)]
GLM_CASES += [(fam, link, sampler, False) for fam in ("binomial", "bernoulli")
              for link in ("logit", "probit", "cloglog") for sampler in ("random_walk", "independence")]
# the families with a dispersion (phi ~ Gamma(4, 1), sampled by the slice step)
GLM_CASES += [(fam, link, sampler, False)
              for fam, links in (("negbinomial", ("log",)), ("gamma", ("log",)),
                                 ("beta_binomial", ("logit", "probit", "cloglog")))
              for link in links for sampler in ("random_walk", "independence")]
HIERARCHICAL_CASES = [("hierarchical_normal", "half_normal", "gibbs", False),
                      ("hierarchical_normal", "inverse_gamma", "gibbs", True),
                      ("hierarchical_normal", "half_normal", "exact", False)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--marginal", type=int, default=20_000)
    ap.add_argument("--successive", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", default=".*")
    ap.add_argument("--alpha", type=float, default=0.01, help="family-wise level")
    args = ap.parse_args(argv)
    runs = []
    for fam, link, sampler, unknown in GLM_CASES + HIERARCHICAL_CASES:
        prefix = "" if fam == "hierarchical_normal" else "glm-"
        name = f"{prefix}{fam}-{link or 'default'}-{sampler}" + ("-unknown-sigma" if unknown else "")
        if not re.search(args.cases, name):
            continue
        t0 = time.perf_counter()
        if fam == "hierarchical_normal":
            res = testing.hierarchical_normal_geweke(sampler, tau_prior=link, unknown_sigma=unknown,
                                                     marginal=args.marginal,
                                                     successive=args.successive, seed=args.seed)
        else:
            res = testing.glm_geweke(fam, link, sampler, unknown_sigma=unknown,
                                     marginal=args.marginal, successive=args.successive,
                                     seed=args.seed)
        runs.append((name, res, time.perf_counter() - t0))
        print(f"# {name}: max |z| = {res.max_abs_z:.2f} ({runs[-1][2]:.0f} s)", file=sys.stderr, flush=True)
    n_tests = sum(len(r.z) for _, r, _ in runs)
    z_crit = float(stats.norm.isf(args.alpha / max(n_tests, 1) / 2))
    print(f"Geweke: {args.marginal} marginal-conditional and {args.successive} successive-conditional "
          f"draws per case; Bonferroni over {n_tests} z-scores at family-wise {args.alpha}: |z| > "
          f"{z_crit:.2f} fails")
    failed = 0
    for name, res, secs in runs:
        bad = res.max_abs_z > z_crit
        failed += bad
        print(f"\n{name}  ({secs:.0f} s)  max |z| = {res.max_abs_z:.2f}  {'FAIL' if bad else 'ok'}")
        print(res.table())
    print(f"\n{len(runs)} cases, {failed} failing")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
