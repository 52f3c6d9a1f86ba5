"""Command line: ``bglmm demo`` fits a model on a shipped data set and prints its summary."""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd


def _demo(args: argparse.Namespace) -> int:
    import bglmm

    df = bglmm.datasets.load("sparrows")
    X = pd.DataFrame({"intercept": 1.0, "age": df["age"], "age2": df["age"] ** 2})
    print("bglmm demo: song sparrows, fledged ~ Poisson(exp(b1 + b2 age + b3 age^2)),"
          " prior N(0, 10^2) on each coefficient (Hoff 2009, ch. 10)")
    fit = bglmm.glm(X, df["fledged"], family="poisson", prior=bglmm.priors.Normal(0, 10),
                    chains=args.chains, draws=args.draws, warmup=args.warmup, seed=args.seed,
                    progress=True)
    print(f"sampler: {fit.sampler}; seed {fit.seed}; acceptance "
          f"{np.round(fit.acceptance_rate, 3).tolist()}")
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(fit.summary().round(3))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bglmm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fit a model on a shipped data set and print the summary")
    demo.add_argument("--chains", type=int, default=4)
    demo.add_argument("--draws", type=int, default=2000)
    demo.add_argument("--warmup", type=int, default=1000)
    demo.add_argument("--seed", type=int, default=1)
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
