"""Command line.

``bglmm demo``   fits a hierarchical model on a data set that ships with bglmm and prints the
                 posterior summary.
``bglmm fit data.csv --formula "y ~ x + (1 | g)" --family poisson [--out fit.nc]``
                 fits a formula to a CSV file and prints the summary; ``--sep`` gives the
                 column separator (default: guessed), ``--priors "b = normal(0, 2.5);
                 sd = half_t(3, 0, 2.5)"`` the priors (see ``bglmm fit --help``). The
                 directory of ``--out`` is checked before fitting.
``bglmm --version``  prints the version.

``python -m bglmm ...`` does the same.
"""

from __future__ import annotations

import argparse
import ast
import csv
import difflib
import os
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


class _Parser(argparse.ArgumentParser):
    """argparse, with the option probably meant for an unrecognised one (``--iter``,
    ``--cores``, a typo)."""

    def error(self, message: str):
        if message.startswith("unrecognized arguments"):
            hints = [h for h in map(self._hint, message.split(":", 1)[1].split()) if h]
            if hints:
                message += "; " + "; ".join(hints)
        super().error(message)

    def _hint(self, token: str) -> str | None:
        from ._kwargs import _NOT_YET, alias_hint

        if not token.startswith("--"):
            return None
        name = token[2:].split("=", 1)[0].replace("-", "_")
        if name in _NOT_YET:
            return f"{token}: {_NOT_YET[name]}"
        if alias_hint(name):
            return f"{token}: {alias_hint(name, '--')}"
        close = difflib.get_close_matches(token.split("=", 1)[0], self._long_options(), n=3,
                                          cutoff=0.6)
        return f"{token}: did you mean {' or '.join(close)}?" if close else None

    def _long_options(self) -> list[str]:
        """This parser's --options and its subcommands' (which report unknown ones here)."""
        out = []
        for action in self._actions:
            out += [o for o in action.option_strings if o.startswith("--")]
            if isinstance(action, argparse._SubParsersAction):
                for sub in dict.fromkeys(action.choices.values()):
                    out += sub._long_options()
        return sorted(set(out))


def _print_fit(fit, out: str | None) -> None:
    print(str(fit))
    if out:
        fit.save(out)
        print(f"saved to {out} (read back with bglmm.load)")


def _check_out(out: str | None, command: str) -> str | None:
    """Why the fit could not be saved to `out` (checked before fitting), or None."""
    if not out:
        return None
    folder = os.path.dirname(os.path.abspath(out))
    if os.path.isdir(out):
        return f"bglmm {command}: --out {out!r} is a directory; give a file name such as fit.nc"
    if not os.path.isdir(folder):
        return f"bglmm {command}: --out {out!r}: the directory {folder!r} does not exist"
    if not os.access(folder, os.W_OK) or (os.path.exists(out) and not os.access(out, os.W_OK)):
        return f"bglmm {command}: --out {out!r}: no permission to write there"
    return None


def _demo(args: argparse.Namespace) -> int:
    import bglmm

    problem = _check_out(args.out, "demo")
    if problem:
        print(problem, file=sys.stderr)
        return 2
    demo = DEMOS[args.model]
    print(f"bglmm demo: {demo['title']}")
    print(f">>> bglmm.fit({demo['formula']!r}, bglmm.datasets.load({demo['data']!r}), "
          f"family={demo['family']!r})")
    fit = bglmm.fit(demo["formula"], bglmm.datasets.load(demo["data"]), demo["family"],
                    chains=args.chains, draws=args.draws, warmup=args.warmup, seed=args.seed,
                    progress=not args.quiet)
    _print_fit(fit, args.out)
    return 0


_SEPARATORS = {"\\t": "\t", "tab": "\t", "space": " ", "comma": ",", "semicolon": ";",
               "pipe": "|"}


def _sniff_separator(path: str) -> str:
    """The delimiter of a text table, guessed from its first lines (',' when unclear)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        head = handle.read(65536)
    try:
        return csv.Sniffer().sniff(head, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _read_table(path: str, sep: str | None) -> pd.DataFrame:
    sep = _SEPARATORS.get(sep, sep) if sep is not None else _sniff_separator(path)
    return pd.read_csv(path, sep=sep)


def _fit(args: argparse.Namespace) -> int:
    import bglmm

    problem = _check_out(args.out, "fit")
    try:
        priors = _parse_priors(args.priors) if args.priors else None
    except ValueError as err:
        problem = problem or f"bglmm fit: --priors: {err}"
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        data = _read_table(args.data, args.sep)
    except FileNotFoundError:
        print(f"bglmm fit: no such file {args.data!r}", file=sys.stderr)
        return 2
    try:
        fit = bglmm.fit(args.formula, data, args.family, args.link, trials=args.trials,
                        offset=args.offset, se=args.se, weights=args.weights, zi=args.zi,
                        priors=priors,
                        chains=args.chains,
                        draws=args.draws, warmup=args.warmup, thin=args.thin, seed=args.seed,
                        threads=args.threads, progress=not args.quiet)
    except (ValueError, TypeError) as err:
        print(f"bglmm fit: {err}", file=sys.stderr)
        return 2
    _print_fit(fit, args.out)
    return 0


# --priors "b = normal(0, 2.5); sd = half_t(3, 0, 2.5)": distribution -> bglmm.priors object
_DISTRIBUTIONS = {
    "normal": lambda P, a: P.Normal(*_n(a, 2, "normal(mean, sd)")),
    "half_normal": lambda P, a: P.HalfNormal(*_n(a, 1, "half_normal(scale)")),
    "half_t": lambda P, a: P.HalfStudentT(*_t(a, "half_t")),
    "student_t": lambda P, a: P.HalfStudentT(*_t(a, "student_t")),  # brms's, on an SD
    "half_cauchy": lambda P, a: P.HalfCauchy(*_n(a, 1, "half_cauchy(scale)")),
    "inv_gamma": lambda P, a: P.InverseGamma(*_n(a, 2, "inv_gamma(shape, scale)")),
    "uniform": lambda P, a: P.UniformSD(_uniform(a)),
    "lkj": lambda P, a: P.LKJ(*_n(a, 1, "lkj(eta)")),
    "inv_wishart": lambda P, a: P.InverseWishart(*_n(a, (1, 2), "inv_wishart(df[, scale])")),
    "gamma": lambda P, a: P.Gamma(*_n(a, 2, "gamma(shape, rate)")),
    "beta": lambda P, a: P.Beta(*_n(a, 2, "beta(a, b)")),
}
_PRIOR_KEYS = {"b": "beta", "beta": "beta", "sigma": "sigma", "sd": "sd", "cor": "cor",
               "Sigma": "Sigma", "phi": "phi", "shape": "shape", "zi": "zi"}
PRIORS_HELP = (
    'priors as "key = distribution(numbers); ...": key b (fixed effects), sigma (gaussian '
    "residual; inv_gamma on sigma^2), sd (every random-effect SD), cor (correlations), or a "
    "grouping factor's name, or a family's dispersion: phi or shape (gamma(shape, rate)) or zi "
    "(beta(a, b)), or the cumulative family's cutpoints (normal(0, s)); distributions: normal(mean, sd), half_normal(scale), "
    "half_t(df, scale) or half_t(df, 0, scale), half_cauchy(scale), inv_gamma(shape, scale), "
    'uniform(0, upper), lkj(eta), inv_wishart(df[, scale]), gamma(shape, rate), beta(a, b). Example: --priors "b = normal(0, '
    '2.5); sd = half_t(3, 0, 2.5); cor = lkj(2)". Unnamed keys keep bglmm\'s defaults')


def _n(args: list[float], count: int | tuple[int, ...], usage: str) -> list[float]:
    if len(args) not in ((count,) if isinstance(count, int) else count):
        raise ValueError(f"{usage} takes {count if isinstance(count, int) else ' or '.join(map(str, count))} "
                         f"number(s), got {len(args)}")
    return args


def _t(args: list[float], name: str) -> list[float]:
    if len(args) == 3:
        if args[1] != 0:
            raise ValueError(f"{name}(df, location, scale) on an SD needs location 0")
        return [args[0], args[2]]
    return _n(args, 2, f"{name}(df, scale)")


def _uniform(args: list[float]) -> float:
    if len(args) != 2 or args[0] != 0:
        raise ValueError("uniform(0, upper) on an SD: the lower bound is 0")
    return args[1]


def _number(node: ast.AST, text: str) -> float:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_number(node.operand, text)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return float(node.value)
    raise ValueError(f"{text!r}: the arguments must be numbers")


def _parse_priors(text: str) -> dict:
    """{key: bglmm.priors object} from 'b = normal(0, 2.5); sd = half_t(3, 0, 2.5)'."""
    from . import priors as P

    out = {}
    for item in filter(None, (p.strip() for p in text.split(";"))):
        key, eq, rhs = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"{item!r}: write key = distribution(numbers), e.g. b = normal(0, 2.5)")
        try:
            call = ast.parse(rhs.strip(), mode="eval").body
        except SyntaxError:
            call = None
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and not call.keywords):
            raise ValueError(f"{item!r}: the right side must be distribution(numbers), e.g. normal(0, 2.5)")
        name = call.func.id.lower()
        if name not in _DISTRIBUTIONS:
            close = difflib.get_close_matches(name, list(_DISTRIBUTIONS), n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ValueError(f"{item!r}: unknown distribution {name!r}{hint} (known: "
                             f"{', '.join(_DISTRIBUTIONS)})")
        values = [_number(a, item) for a in call.args]
        try:
            out[_PRIOR_KEYS.get(key, key)] = _DISTRIBUTIONS[name](P, values)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{item!r}: {err}") from None
    return out


def _version() -> str:
    from . import __version__

    return __version__


def _mcmc_options(p: argparse.ArgumentParser, draws: int, warmup: int, seed: int | None) -> None:
    p.add_argument("--chains", type=int, default=4, help="number of chains (default 4)")
    p.add_argument("--draws", type=int, default=draws, help=f"draws kept per chain (default {draws})")
    p.add_argument("--warmup", type=int, default=warmup, help=f"warm-up iterations (default {warmup})")
    p.add_argument("--seed", type=int, default=seed, help="random seed")
    p.add_argument("--out", default=None,
                   help="save the fit to this NetCDF file (its directory must exist: checked "
                        "before fitting)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="bglmm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"bglmm {_version()}")
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
                     help="gaussian, poisson, binomial, bernoulli, negbinomial, gamma, "
                          "beta_binomial, zero_inflated_poisson, zero_inflated_negbinomial, "
                          "student or cumulative (ordered ratings: integer categories) "
                          "(default gaussian)")
    fit.add_argument("--link", default=None, help="link function (default: the canonical one)")
    fit.add_argument("--trials", default=None, help="column of binomial trials")
    fit.add_argument("--offset", default=None, help="column added to the linear predictor")
    fit.add_argument("--weights", default=None,
                     help="column of case weights (each row's log-likelihood times its weight)")
    fit.add_argument("--se", default=None, help="column of known standard errors (gaussian)")
    fit.add_argument("--zi", default=None,
                     help='zero-inflated families: a formula of the probability of a structural '
                          'zero, e.g. "~ x"')
    fit.add_argument("--thin", type=int, default=1, help="keep every thin-th draw")
    fit.add_argument("--threads", type=int, default=None, help="threads of the C++ core")
    fit.add_argument("--sep", default=None,
                     help="column separator of the data file, e.g. ';' or '\\t' (tab); default: "
                          "guessed from the first lines (',' when unclear)")
    fit.add_argument("--priors", default=None, help=PRIORS_HELP)
    _mcmc_options(fit, draws=1000, warmup=1000, seed=None)
    fit.set_defaults(func=_fit)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
