"""Command line.

``bglmm demo``   fits a hierarchical model on a data set that ships with bglmm and prints the
                 posterior summary.
``bglmm fit data.csv --formula "y ~ x + (1 | g)" --family poisson [--out fit.nc]``
                 fits a formula to a CSV file and prints the summary.

``python -m bglmm ...`` does the same.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

# The demo: the main job of bglmm on shipped data (see README).
DEMOS = {
    "rats": dict(
        data="rats", formula="weight ~ center(day) + (1 + center(day) | rat)", family="gaussian",
        title="rat growth: weight of 30 rats at 5 ages, random intercepts and slopes per rat, "
              "conjugate Gibbs (Gelfand et al. 1990; WinBUGS 'Rats')",
    ),
    "cbpp": dict(
        data="cbpp", formula="cbind(incidence, size - incidence) ~ C(period) + (1 | herd)",
        family="binomial",
        title="CBPP incidence in 15 herds over 4 periods, binomial GLMM with a random intercept "
              "per herd, Metropolis-within-Gibbs (lme4's cbpp)",
    ),
    "sparrows": dict(
        data="sparrows", formula="fledged ~ age + I(age**2)", family="poisson",
        title="song sparrows: offspring fledged ~ Poisson, quadratic in age (Hoff 2009, ch. 10)",
    ),
}
DEFAULT_DEMO = "rats"


def _print_fit(fit, out: str | None) -> None:
    print(str(fit))
    if out:
        fit.save(out)
        print(f"saved to {out} (read back with bglmm.load)")


def _demo(args: argparse.Namespace) -> int:
    import bglmm

    demo = DEMOS[args.model]
    print(f"bglmm demo: {demo['title']}")
    print(f">>> bglmm.fit({demo['formula']!r}, bglmm.datasets.load({demo['data']!r}), "
          f"family={demo['family']!r})")
    fit = bglmm.fit(demo["formula"], bglmm.datasets.load(demo["data"]), demo["family"],
                    chains=args.chains, draws=args.draws, warmup=args.warmup, seed=args.seed,
                    progress=not args.quiet)
    _print_fit(fit, args.out)
    return 0


def _fit(args: argparse.Namespace) -> int:
    import bglmm

    try:
        data = pd.read_csv(args.data)
    except FileNotFoundError:
        print(f"bglmm fit: no such file {args.data!r}", file=sys.stderr)
        return 2
    try:
        fit = bglmm.fit(args.formula, data, args.family, args.link, trials=args.trials,
                        offset=args.offset, se=args.se, chains=args.chains, draws=args.draws,
                        warmup=args.warmup, thin=args.thin, seed=args.seed, threads=args.threads,
                        progress=not args.quiet)
    except (ValueError, TypeError) as err:
        print(f"bglmm fit: {err}", file=sys.stderr)
        return 2
    _print_fit(fit, args.out)
    return 0


def _mcmc_options(p: argparse.ArgumentParser, draws: int, warmup: int, seed: int | None) -> None:
    p.add_argument("--chains", type=int, default=4, help="number of chains (default 4)")
    p.add_argument("--draws", type=int, default=draws, help=f"draws kept per chain (default {draws})")
    p.add_argument("--warmup", type=int, default=warmup, help=f"warm-up iterations (default {warmup})")
    p.add_argument("--seed", type=int, default=seed, help="random seed")
    p.add_argument("--out", default=None, help="save the fit to this NetCDF file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bglmm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="fit a hierarchical model on a shipped data set and print the summary")
    demo.add_argument("model", nargs="?", default=DEFAULT_DEMO, choices=sorted(DEMOS),
                      help=f"which demo (default: {DEFAULT_DEMO})")
    _mcmc_options(demo, draws=1000, warmup=1000, seed=1)
    demo.set_defaults(func=_demo)

    fit = sub.add_parser("fit", help="fit a formula to a CSV file and print the summary")
    fit.add_argument("data", help="CSV file with a header row")
    fit.add_argument("--formula", "-f", required=True, help='e.g. "y ~ x + (1 | g)"')
    fit.add_argument("--family", default="gaussian",
                     help="gaussian, poisson, binomial or bernoulli; without random effects also "
                          "negbinomial, gamma or beta_binomial (default gaussian)")
    fit.add_argument("--link", default=None, help="link function (default: the canonical one)")
    fit.add_argument("--trials", default=None, help="column of binomial trials")
    fit.add_argument("--offset", default=None, help="column added to the linear predictor")
    fit.add_argument("--se", default=None, help="column of known standard errors (gaussian)")
    fit.add_argument("--thin", type=int, default=1, help="keep every thin-th draw")
    fit.add_argument("--threads", type=int, default=None, help="threads of the C++ core")
    _mcmc_options(fit, draws=1000, warmup=1000, seed=None)
    fit.set_defaults(func=_fit)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
