"""Classic data sets shipped with bglmm, as pandas DataFrames.

``load(name)`` returns a fresh DataFrame; ``names()`` lists what ships. Values are as in the
sources (no rescaling); layouts changed from wide to long where noted.

Columns are read as the CSV gives them, except where a code stands for a factor: in
``insteval`` the student ``s``, lecturer ``d``, department ``dept`` and ``service`` (0/1) are
unordered categoricals and ``studage`` and ``lectage`` ordered ones (as lme4's factors), their
categories the integer codes of the source — so ``y ~ service + (1 | d)`` treats them as groups
rather than numbers.

===============  =====  ==========================================================================
name             rows   what, and where it comes from
===============  =====  ==========================================================================
sparrows         52     song sparrow offspring (``fledged``) vs. female ``age``; Arcese et al.
                        (1992), Ecology 73; Hoff (2009) §10.1-10.3.
tumors           420    tumor ``count`` by ``mouse`` (21) and intestine ``section`` (20);
                        ``location`` = section/20; Haigis et al. (2004), PNAS 101; Hoff §11.4.
nels             1993   ``mathscore`` and ``ses`` of students in 100 ``school``s (ELS:2002);
                        Hoff ch. 8 and 11.
rats             150    ``weight`` of 30 ``rat``s at ``day`` 8, 15, 22, 29, 36; Gelfand et al.
                        (1990), JASA 85; WinBUGS "Rats".
beetles          8      beetles ``killed`` of ``exposed`` at log10 CS2 ``dose``; Bliss (1935),
                        Ann. Appl. Biol. 22; Dobson & Barnett Table 7.2.
pulp             20     paper brightness ``bright`` by ``operator`` (a-d); Sheldon (1960);
                        Faraway, Extending the Linear Model with R.
nitrofen         50     water flea offspring per brood (``brood1``-``brood3``, ``total``) vs.
                        nitrofen ``conc``; Bailer & Oris (1994); R package boot.
toxo             34     toxoplasmosis ``positive`` of ``tested`` in 34 cities vs. ``rainfall``;
                        Efron (1986), JASA 81; R package VGAM (toxop).
efron_morris     18     1970 batting averages, first 45 at-bats and the rest of the season;
                        Efron & Morris (1975), JASA 70; R package pscl.
cbpp             56     CBPP ``incidence`` of ``size`` by ``herd`` (15) and ``period`` (1-4);
                        Lesnoff et al. (2004); R package lme4.
sleepstudy       180    ``Reaction`` time vs. ``Days`` of sleep deprivation, 18 ``Subject``s;
                        Belenky et al. (2003); R package lme4.
grouseticks      403    ``TICKS`` on red grouse chicks by ``BROOD``, ``LOCATION``, ``YEAR``;
                        Elston et al. (2001), Parasitology 122; R package lme4.
epil             236    epilepsy seizure counts ``y``, 59 patients x 4 periods; Thall & Vail
                        (1990), Biometrics 46; R package MASS.
seeds            21     seeds germinated ``r`` of ``n`` on 21 plates, seed type ``x1``, root
                        extract ``x2``; Crowder (1978), Appl. Statist. 27; WinBUGS "Seeds".
radon            919    Minnesota household ``log_radon`` by ``county`` (85), ``floor``,
                        ``log_uranium``; Gelman & Hill (2007) ch. 12-13.
eight_schools    8      SAT coaching effects ``y`` with standard errors ``sigma``; Rubin (1981);
                        Gelman et al., BDA3 §5.5.
penicillin       144    penicillin assay: inhibition-zone ``diameter`` by ``plate`` (24, a-x) and
                        ``sample`` (6, A-F), every sample on every plate (crossed); Davies &
                        Goldsmith (1972); R package lme4 (Penicillin).
pastes           60     paste ``strength`` by ``batch`` (10, A-J) and ``cask`` (a-c within batch;
                        ``sample`` = batch:cask), two analyses per cask (nested); Davies &
                        Goldsmith (1972); R package lme4 (Pastes).
verbagg          7584   verbal aggression: ``resp`` (no/perhaps/yes; ``r2`` = N/Y) of 316
                        persons (``id``) to 24 ``item``s, with ``Anger``, ``Gender``, ``btype``,
                        ``situ``, ``mode`` (crossed); De Boeck & Wilson (2004); R package lme4
                        (VerbAgg).
insteval         73421  lecture ratings ``y`` (1-5) by student ``s`` (2,972) and lecturer ``d``
                        (1,128) in ``dept`` (14), ``service``, ``studage``, ``lectage``;
                        ETH Zurich; R package lme4 (InstEval). The codes are read as
                        categoricals (see above).
quine            146    days absent from school (``Days``) of Australian children by ethnicity
                        ``Eth`` (A/N), ``Sex``, ``Age`` group (F0-F3), learner status ``Lrn``
                        (AL/SL); Quine (1975), via Aitkin (1978), JRSS A 141; R package MASS
                        (quine), the negative binomial example of ``glm.nb``.
wine             72     bitterness ``rating`` of white wine (1-5, an ordered categorical;
                        ``response`` the underlying 0-100 score) by ``judge`` (9), at ``temp``
                        (cold/warm) and skin ``contact`` (no/yes), two ``bottle`` s per
                        condition; Randall (1989), via R package ordinal (wine), the example of
                        ``clmm``.
===============  =====  ==========================================================================
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

_PACKAGE = "bglmm.datasets"

# Columns that code a factor with integers: (column, ordered) per data set.
_CATEGORICAL: dict[str, list[tuple[str, bool]]] = {
    "insteval": [("s", False), ("d", False), ("studage", True), ("lectage", True),
                 ("service", False), ("dept", False)],
    "wine": [("rating", True), ("judge", False), ("bottle", False)],
}


def names() -> list[str]:
    """Names of the shipped data sets."""
    files = resources.files(_PACKAGE).joinpath("data").iterdir()
    return sorted(f.name[:-4] for f in files if f.name.endswith(".csv"))


def load(name: str) -> pd.DataFrame:
    """Load a shipped data set by name (see the module docstring for sources)."""
    if not isinstance(name, str):
        raise TypeError(f"data set name must be a string, got {type(name).__name__}")
    available = names()
    if name not in available:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(available)}")
    with resources.files(_PACKAGE).joinpath("data", f"{name}.csv").open("r", encoding="utf-8") as f:
        df = pd.read_csv(f)
    for column, ordered in _CATEGORICAL.get(name, []):
        codes = df[column]
        df[column] = pd.Categorical(codes, categories=sorted(codes.unique()), ordered=ordered)
    return df


__all__ = ["load", "names"]
