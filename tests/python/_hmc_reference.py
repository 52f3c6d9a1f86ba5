"""An independent reference sampler for Poisson, negative-binomial, zero-inflated Poisson and
cumulative-link (ordinal) GLMMs with crossed / nested random intercepts: Hamiltonian Monte
Carlo in NumPy on the non-centred parameterisation, with a hand-written gradient. It shares no
code with bglmm's samplers (only NumPy and SciPy's sparse matrices and special functions).

Model (as bglmm.fit parameterises it)::

    eta = offset + X beta + sum_k sd_k z_k[level_k(i)],   y_i ~ Poisson(exp(eta_i))
    beta ~ N(m0, diag(s0)^2),   z_k ~ N(0, 1) iid,   sd_k ~ HalfNormal(scale_k)

or (``NegBinomialCrossedModel``) y_i ~ NB2(mean exp(eta_i), phi), var = mu + mu^2 / phi, with
phi ~ Gamma(a, rate b), or (``ZeroInflatedPoissonCrossedModel``) a structural zero with
probability zi ~ Beta(a, b), otherwise Poisson(exp(eta_i)) (v = logit zi), or
(``CumulativeCrossedModel``) an ordinal y_i in 0..K-1 with P(y_i <= k) = F(c_{k+1} - eta_i)
for a logistic or standard normal CDF F, no intercept in X, and cutpoints c_1 < ... < c_{K-1}
distributed as the order statistics of K-1 iid N(m_c, s_c^2) (v = (c_1, log(c_2 - c_1), ...,
log(c_{K-1} - c_{K-2}))). HMC runs on theta = (beta, u, z[, v]) with u_k = log sd_k and
v = log phi, logit zi or the cutpoints' coordinates (the log density carries the Jacobians).
Several chains run side by side as rows of one array (one sparse product per gradient for all
of them). Warm-up: dual averaging of a shared step size (Hoffman and Gelman 2014, target
acceptance 0.8) and a diagonal metric from the warm-up draws' variances (two windows, as Stan);
each iteration takes a uniformly jittered number of leapfrog steps (no periodicity), with the
Metropolis correction on the exact joint density, so the chain targets the posterior whatever
the tuning: tuning affects efficiency only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse, special


@dataclass
class PoissonCrossedModel:
    y: np.ndarray            # (n,)
    X: np.ndarray            # (n, p)
    codes: list[np.ndarray]  # per factor, (n,) level codes 0..m_k - 1
    beta_mean: np.ndarray    # (p,)
    beta_sd: np.ndarray      # (p,)
    sd_scale: np.ndarray     # (K,) HalfNormal scales
    offset: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, float)
        self.X = np.asarray(self.X, float)
        n, self.p = self.X.shape
        self.m = [int(c.max()) + 1 for c in self.codes]
        self.K = len(self.codes)
        self.off = np.zeros(n) if self.offset is None else np.asarray(self.offset, float)
        # one sparse (n, sum m_k) indicator: row i has a one in each factor's level column
        cols = np.concatenate([c + s for c, s in zip(self.codes, np.cumsum([0] + self.m[:-1]))])
        rows = np.tile(np.arange(n), self.K)
        self.Zs = sparse.csr_matrix((np.ones(cols.size), (rows, cols)), shape=(n, sum(self.m)))
        self.ZsT = self.Zs.T.tocsr()
        self.factor_of = np.repeat(np.arange(self.K), self.m)  # factor of each z entry
        self.dim = self.p + self.K + sum(self.m)

    def split(self, theta: np.ndarray):
        p, K = self.p, self.K
        return theta[:, :p], theta[:, p:p + K], theta[:, p + K:]

    def factor_sums(self, a: np.ndarray) -> np.ndarray:
        """(C, M) -> (C, K): sums over each factor's entries."""
        return np.stack([a[:, self.factor_of == k].sum(axis=1) for k in range(self.K)], axis=1)

    def log_prior_sd(self, u: np.ndarray) -> np.ndarray:
        """log HalfNormal(sd_k | scale_k) + log |d sd / d u| (u = log sd), summed over k."""
        return (-0.5 * (np.exp(u) / self.sd_scale) ** 2 + u).sum(axis=1)

    def logp_grad(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log density (up to a constant) and gradient for each row (chain) of theta (C, dim)."""
        beta, u, z = self.split(theta)
        sd = np.exp(u)
        sd_e = sd[:, self.factor_of]                            # (C, M)
        w = z * sd_e                                            # (C, M): the effects b
        eta = self.off + beta @ self.X.T + (self.Zs @ w.T).T    # (C, n)
        mu = np.exp(np.minimum(eta, 700.0))
        r = self.y - mu
        zb = (beta - self.beta_mean) / self.beta_sd
        lp = (self.y * eta - mu).sum(axis=1) - 0.5 * (zb**2).sum(axis=1) \
            - 0.5 * (z**2).sum(axis=1) + self.log_prior_sd(u)
        g_beta = r @ self.X - zb / self.beta_sd
        g_w = (self.ZsT @ r.T).T                                # (C, M): d loglik / d b
        g_z = g_w * sd_e - z
        g_u = self.factor_sums(g_w * w) - (sd / self.sd_scale) ** 2 + 1.0
        return lp, np.concatenate([g_beta, g_u, g_z], axis=1)


@dataclass
class NegBinomialCrossedModel(PoissonCrossedModel):
    """The same random intercepts with a negative-binomial (NB2) likelihood; log phi is the last
    coordinate of theta."""

    phi_a: float = 1.0  # phi ~ Gamma(phi_a, rate phi_b)
    phi_b: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        self.log_y_factorial = special.gammaln(self.y + 1.0)
        self.dim += 1

    def split(self, theta: np.ndarray):
        beta, u, z = super().split(theta[:, :-1])
        return beta, u, z

    def logp_grad(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        beta, u, z = self.split(theta)
        v = theta[:, -1:]                                       # (C, 1): log phi
        phi = np.exp(v)
        sd = np.exp(u)
        sd_e = sd[:, self.factor_of]
        w = z * sd_e
        eta = self.off + beta @ self.X.T + (self.Zs @ w.T).T    # (C, n)
        y = self.y
        log_mu_phi = np.logaddexp(eta, v)                       # log(mu + phi)
        ll = (special.gammaln(y + phi) - special.gammaln(phi) - self.log_y_factorial
              + y * eta + phi * v - (y + phi) * log_mu_phi)
        frac = np.exp(eta - log_mu_phi)                         # mu / (mu + phi)
        r = y - (y + phi) * frac                                # d ll / d eta
        g_v = (phi * (special.digamma(y + phi) - special.digamma(phi) + v + 1.0 - log_mu_phi
                      - (y + phi) / np.exp(log_mu_phi))).sum(axis=1) + self.phi_a \
            - self.phi_b * phi[:, 0]
        zb = (beta - self.beta_mean) / self.beta_sd
        lp = ll.sum(axis=1) - 0.5 * (zb**2).sum(axis=1) - 0.5 * (z**2).sum(axis=1) \
            + self.log_prior_sd(u) + self.phi_a * v[:, 0] - self.phi_b * phi[:, 0]
        g_beta = r @ self.X - zb / self.beta_sd
        g_w = (self.ZsT @ r.T).T
        g_z = g_w * sd_e - z
        g_u = self.factor_sums(g_w * w) - (sd / self.sd_scale) ** 2 + 1.0
        return lp, np.concatenate([g_beta, g_u, g_z, g_v[:, None]], axis=1)


@dataclass
class ZeroInflatedPoissonCrossedModel(PoissonCrossedModel):
    """The same random intercepts with a zero-inflated Poisson likelihood: a structural zero with
    probability zi, otherwise Poisson(exp(eta)); v = logit zi is the last coordinate of theta,
    zi ~ Beta(zi_a, zi_b)."""

    zi_a: float = 1.0
    zi_b: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.log_y_factorial = special.gammaln(self.y + 1.0)
        self.zero = self.y == 0
        self.dim += 1

    def split(self, theta: np.ndarray):
        return super().split(theta[:, :-1])

    def logp_grad(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        beta, u, z = self.split(theta)
        v = theta[:, -1:]                                       # (C, 1): logit zi
        zi = special.expit(v)
        log_zi, log_1m = -np.logaddexp(0.0, -v), -np.logaddexp(0.0, v)
        sd = np.exp(u)
        sd_e = sd[:, self.factor_of]
        w = z * sd_e
        eta = self.off + beta @ self.X.T + (self.Zs @ w.T).T    # (C, n)
        mu = np.exp(eta)
        count = log_1m + self.y * eta - mu - self.log_y_factorial
        poisson_zero = log_1m - mu                              # log((1 - zi) e^-mu)
        log_p0 = np.logaddexp(log_zi, poisson_zero)
        ll = np.where(self.zero, log_p0, count)
        share = np.exp(poisson_zero - log_p0)                   # P(Poisson zero | y = 0)
        r = np.where(self.zero, -mu * share, self.y - mu)       # d ll / d eta
        g_v = np.where(self.zero, (1.0 - share) * (1.0 - zi) - share * zi, -zi).sum(axis=1) \
            + self.zi_a * (1.0 - zi[:, 0]) - self.zi_b * zi[:, 0]
        zb = (beta - self.beta_mean) / self.beta_sd
        lp = ll.sum(axis=1) - 0.5 * (zb**2).sum(axis=1) - 0.5 * (z**2).sum(axis=1) \
            + self.log_prior_sd(u) + self.zi_a * log_zi[:, 0] + self.zi_b * log_1m[:, 0]
        g_beta = r @ self.X - zb / self.beta_sd
        g_w = (self.ZsT @ r.T).T
        g_z = g_w * sd_e - z
        g_u = self.factor_sums(g_w * w) - (sd / self.sd_scale) ** 2 + 1.0
        return lp, np.concatenate([g_beta, g_u, g_z, g_v[:, None]], axis=1)


@dataclass
class ZeroInflatedPoissonFormulaModel(ZeroInflatedPoissonCrossedModel):
    """The zero-inflated Poisson with the zero-inflation's own linear predictor,
    logit zi_i = v0 + W_i' alpha (W: centred columns, so that zi at the means is
    inv_logit(v0) ~ Beta(zi_a, zi_b); alpha_k ~ N(0, alpha_sd_k^2)). The last 1 + k
    coordinates of theta are (v0, alpha)."""

    W: np.ndarray | None = None          # (n, k)
    alpha_sd: np.ndarray | None = None   # (k,)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.W = np.asarray(self.W, float)
        self.alpha_sd = np.asarray(self.alpha_sd, float)
        self.k_zi = self.W.shape[1]
        self.dim += self.k_zi

    def split(self, theta: np.ndarray):
        return PoissonCrossedModel.split(self, theta[:, :-(1 + self.k_zi)])

    def logp_grad(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = self.k_zi
        beta, u, z = self.split(theta)
        v0, alpha = theta[:, -(1 + k)], theta[:, -k:]           # (C,), (C, k)
        v = v0[:, None] + alpha @ self.W.T                      # (C, n): logit zi_i
        zi = special.expit(v)
        log_zi, log_1m = -np.logaddexp(0.0, -v), -np.logaddexp(0.0, v)
        sd = np.exp(u)
        sd_e = sd[:, self.factor_of]
        w = z * sd_e
        eta = self.off + beta @ self.X.T + (self.Zs @ w.T).T
        mu = np.exp(eta)
        count = log_1m + self.y * eta - mu - self.log_y_factorial
        poisson_zero = log_1m - mu
        log_p0 = np.logaddexp(log_zi, poisson_zero)
        ll = np.where(self.zero, log_p0, count)
        share = np.exp(poisson_zero - log_p0)
        r = np.where(self.zero, -mu * share, self.y - mu)
        g_row = np.where(self.zero, (1.0 - share) * (1.0 - zi) - share * zi, -zi)  # d ll / d v_i
        zi0 = special.expit(v0)
        g_v0 = g_row.sum(axis=1) + self.zi_a * (1.0 - zi0) - self.zi_b * zi0
        g_alpha = g_row @ self.W - alpha / self.alpha_sd**2
        zb = (beta - self.beta_mean) / self.beta_sd
        lp = ll.sum(axis=1) - 0.5 * (zb**2).sum(axis=1) - 0.5 * (z**2).sum(axis=1) \
            + self.log_prior_sd(u) - self.zi_a * np.logaddexp(0.0, -v0) \
            - self.zi_b * np.logaddexp(0.0, v0) - 0.5 * ((alpha / self.alpha_sd) ** 2).sum(axis=1)
        g_beta = r @ self.X - zb / self.beta_sd
        g_w = (self.ZsT @ r.T).T
        g_z = g_w * sd_e - z
        g_u = self.factor_sums(g_w * w) - (sd / self.sd_scale) ** 2 + 1.0
        return lp, np.concatenate([g_beta, g_u, g_z, g_v0[:, None], g_alpha], axis=1)


@dataclass
class CumulativeCrossedModel(PoissonCrossedModel):
    """The same random intercepts with a cumulative-link (ordinal) likelihood::

        P(y_i <= k) = F(c_{k+1} - eta_i),   k = 0..K-2,   F logistic (link "logit") or N(0, 1)
        (link "probit"),

    y holds the categories 0..K-1 (K = n_cat, taken from the data unless given); X must have no
    intercept column (the cutpoints take its place). The cutpoints' prior density is
    prod_k N(c_k; cut_mean, cut_sd^2) on the ordered region (the order statistics of K - 1 iid
    normals). The last K - 1 coordinates of theta are v = (c_1, log(c_2 - c_1), ...,
    log(c_{K-1} - c_{K-2})), with the Jacobian of the log gaps in the log density."""

    link: str = "logit"
    cut_mean: float = 0.0
    cut_sd: float = 5.0
    n_cat: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.link not in ("logit", "probit"):
            raise ValueError(f"link must be 'logit' or 'probit', got {self.link!r}")
        cat = np.asarray(self.y)
        if np.any(cat != np.round(cat)) or cat.min() < 0:
            raise ValueError("y must hold the integer categories 0..K-1")
        self.cat = cat.astype(np.int64)
        self.n_cat = int(self.cat.max()) + 1 if self.n_cat is None else int(self.n_cat)
        if self.n_cat < 2 or self.cat.max() >= self.n_cat:
            raise ValueError("need at least two categories and y < n_cat")
        self.n_cut = self.n_cat - 1
        n = self.cat.size
        # observation i has upper cutpoint c_{y_i + 1} (none for the last category) and lower
        # cutpoint c_{y_i} (none for the first); as 0-based columns of the (n, K - 1) indicators:
        up, lo = self.cat < self.n_cut, self.cat > 0
        self.upper = sparse.csr_matrix((np.ones(up.sum()), (np.flatnonzero(up), self.cat[up])),
                                       shape=(n, self.n_cut))
        self.lower = sparse.csr_matrix((np.ones(lo.sum()), (np.flatnonzero(lo),
                                                             self.cat[lo] - 1)),
                                       shape=(n, self.n_cut))
        self.dim += self.n_cut

    def split(self, theta: np.ndarray):
        return super().split(theta[:, :-self.n_cut])

    def cutpoints(self, v: np.ndarray) -> np.ndarray:
        """(C, K - 1) unconstrained v -> the ordered cutpoints."""
        return np.cumsum(np.concatenate([v[:, :1], np.exp(v[:, 1:])], axis=1), axis=1)

    def log_cdf(self, x: np.ndarray) -> np.ndarray:
        return special.log_expit(x) if self.link == "logit" else special.log_ndtr(x)

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        if self.link == "logit":
            return special.log_expit(x) + special.log_expit(-x)
        return -0.5 * x * x - 0.5 * np.log(2.0 * np.pi)

    def log_prob_between(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """log(F(a) - F(b)) for a > b (either may be infinite), without cancellation."""
        if self.link == "logit":
            # F(a) - F(b) = F(a) F(-b) (1 - e^{b - a}) for the logistic CDF
            return special.log_expit(a) + special.log_expit(-b) + np.log(-np.expm1(b - a))
        # for the normal, take the tail where both are small: F(a) - F(b) = F(-b) - F(-a)
        flip = a + b > 0.0
        hi, lo = np.where(flip, -b, a), np.where(flip, -a, b)
        l_hi = special.log_ndtr(hi)
        return l_hi + np.log(-np.expm1(special.log_ndtr(lo) - l_hi))

    def logp_grad(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        beta, u, z = self.split(theta)
        v = theta[:, -self.n_cut:]                              # (C, K - 1)
        cut = self.cutpoints(v)
        sd = np.exp(u)
        sd_e = sd[:, self.factor_of]
        w = z * sd_e
        eta = self.off + beta @ self.X.T + (self.Zs @ w.T).T    # (C, n)
        C = theta.shape[0]
        padded = np.concatenate([np.full((C, 1), -np.inf), cut, np.full((C, 1), np.inf)], axis=1)
        a = padded[:, self.cat + 1] - eta                       # upper bound, +inf for the last
        b = padded[:, self.cat] - eta                           # lower bound, -inf for the first
        ll = self.log_prob_between(a, b)                        # (C, n)
        dens_a = np.exp(self.log_pdf(a) - ll)                   # f(a) / P(y_i), 0 at a = inf
        dens_b = np.exp(self.log_pdf(b) - ll)
        r = dens_b - dens_a                                     # d ll / d eta
        g_cut = (self.upper.T @ dens_a.T).T - (self.lower.T @ dens_b.T).T  # d ll / d c
        zc = (cut - self.cut_mean) / self.cut_sd
        g_cut = g_cut - zc / self.cut_sd
        # c_k = v_1 + sum_{2 <= j <= k} exp(v_j): d / d v_j = (sum_{k >= j} d / d c_k) dc/dv_j
        g_v = np.cumsum(g_cut[:, ::-1], axis=1)[:, ::-1]
        g_v[:, 1:] = g_v[:, 1:] * np.exp(v[:, 1:]) + 1.0         # + the log-gap Jacobian
        zb = (beta - self.beta_mean) / self.beta_sd
        lp = ll.sum(axis=1) - 0.5 * (zb**2).sum(axis=1) - 0.5 * (z**2).sum(axis=1) \
            + self.log_prior_sd(u) - 0.5 * (zc**2).sum(axis=1) + v[:, 1:].sum(axis=1)
        g_beta = r @ self.X - zb / self.beta_sd
        g_w = (self.ZsT @ r.T).T
        g_z = g_w * sd_e - z
        g_u = self.factor_sums(g_w * w) - (sd / self.sd_scale) ** 2 + 1.0
        return lp, np.concatenate([g_beta, g_u, g_z, g_v], axis=1)


def hmc(model: PoissonCrossedModel, *, chains: int = 4, warmup: int = 1500, draws: int = 2000,
        steps: tuple[int, int] = (8, 24), seed: int = 0) -> dict[str, np.ndarray]:
    """Draws {"beta": (chains, draws, p), "sd": (chains, draws, K)} (and "phi": (chains, draws)
    for the negative binomial, "zi" for the zero-inflated Poisson, "zi_v" (chains, draws, 1 + k)
    for one with a zi formula, the ordered "cutpoint":
    (chains, draws, K - 1) for the cumulative model) and the acceptance rate."""
    rng = np.random.default_rng(seed)
    D = model.dim
    theta = np.concatenate([rng.normal(0, 0.1, (chains, model.p)),
                            np.log(rng.uniform(0.3, 1.0, (chains, model.K))),
                            rng.normal(0, 0.1, (chains, D - model.p - model.K))], axis=1)
    nb = isinstance(model, NegBinomialCrossedModel)
    zip_ = isinstance(model, ZeroInflatedPoissonCrossedModel)
    k_zi = getattr(model, "k_zi", 0)  # a zi formula's slopes (ZeroInflatedPoissonFormulaModel)
    cumulative = isinstance(model, CumulativeCrossedModel)
    if not cumulative:  # the cumulative model has no intercept: its cutpoints take the place
        theta[:, 0] += np.log(model.y.mean() + 0.5)
    if nb or zip_:
        theta[:, -1] = rng.normal(0.0 if nb else -2.0, 0.2, chains)  # phi near 1, zi near 0.12
    if k_zi:  # zi near 0.12 at the means, the slopes near 0
        theta[:, -(1 + k_zi)] = rng.normal(-2.0, 0.2, chains)
        theta[:, -k_zi:] = rng.normal(0.0, 0.1, (chains, k_zi))
    if cumulative:
        # cutpoints at F^-1 of the empirical cumulative proportions (counts + 1/2, so that each
        # gap is positive), jittered
        counts = np.bincount(model.cat, minlength=model.n_cat) + 0.5
        cum = np.cumsum(counts)[:-1] / counts.sum()
        cut0 = special.logit(cum) if model.link == "logit" else special.ndtri(cum)
        v0 = np.concatenate([cut0[:1], np.log(np.diff(cut0))])
        theta[:, -model.n_cut:] = v0 + rng.normal(0.0, 0.1, (chains, model.n_cut))
    lp, grad = model.logp_grad(theta)
    inv_metric = np.ones(D)
    windows = [int(0.15 * warmup), int(0.45 * warmup), int(0.9 * warmup)]  # metric updates

    def restart(eps0: float):
        return {"mu": np.log(10 * eps0), "hbar": 0.0, "logeps": np.log(eps0), "logbar": 0.0,
                "t": 0}

    eps = 0.05
    da = restart(eps)
    keep_beta = np.empty((chains, draws, model.p))
    keep_sd = np.empty((chains, draws, model.K))
    keep_phi = np.empty((chains, draws))
    keep_zi = np.empty((chains, draws, 1 + k_zi))
    if cumulative:
        keep_cut = np.empty((chains, draws, model.n_cut))
    window_draws: list[np.ndarray] = []
    accepted = 0.0
    for it in range(warmup + draws):
        n_steps = int(rng.integers(steps[0], steps[1] + 1))
        mom = rng.standard_normal((chains, D)) / np.sqrt(inv_metric)
        h0 = lp - 0.5 * (mom**2 * inv_metric).sum(axis=1)
        th, g = theta.copy(), grad
        m = mom + 0.5 * eps * g
        for s in range(n_steps):
            th = th + eps * m * inv_metric
            lp_new, g = model.logp_grad(th)
            if s < n_steps - 1:
                m = m + eps * g
        m = m + 0.5 * eps * g
        h1 = lp_new - 0.5 * (m**2 * inv_metric).sum(axis=1)
        log_acc = np.where(np.isfinite(h1), h1 - h0, -np.inf)
        acc_prob = np.exp(np.minimum(log_acc, 0.0))
        take = np.log(rng.uniform(size=chains)) < log_acc
        theta[take], lp[take], grad[take] = th[take], lp_new[take], g[take]
        if it < warmup:
            # dual averaging on the chains' mean acceptance probability
            da["t"] += 1
            t = da["t"]
            da["hbar"] = (1 - 1 / (t + 10)) * da["hbar"] + (0.8 - acc_prob.mean()) / (t + 10)
            da["logeps"] = da["mu"] - np.sqrt(t) / 0.05 * da["hbar"]
            k = t ** -0.75
            da["logbar"] = k * da["logeps"] + (1 - k) * da["logbar"]
            eps = float(np.exp(da["logeps"]))
            if it >= windows[0]:
                window_draws.append(theta.copy())
            if it + 1 in windows[1:]:
                w = np.concatenate(window_draws)
                n_w = w.shape[0]
                inv_metric = (n_w / (n_w + 5.0)) * w.var(axis=0) + 1e-3 * (5.0 / (n_w + 5.0))
                window_draws = []
                da = restart(eps)
            if it + 1 == warmup:
                eps = float(np.exp(da["logbar"]))
        else:
            j = it - warmup
            keep_beta[:, j] = theta[:, :model.p]
            keep_sd[:, j] = np.exp(theta[:, model.p:model.p + model.K])
            keep_phi[:, j] = np.exp(theta[:, -1])
            if k_zi:
                keep_zi[:, j] = theta[:, -(1 + k_zi):]
            if cumulative:
                keep_cut[:, j] = model.cutpoints(theta[:, -model.n_cut:])
            accepted += take.mean()
    out = {"beta": keep_beta, "sd": keep_sd, "acceptance": accepted / draws, "step_size": eps}
    if nb:
        out["phi"] = keep_phi
    if zip_ and k_zi:
        out["zi_v"] = keep_zi  # (logit zi at the means, the slopes)
    elif zip_:
        out["zi"] = keep_phi / (1.0 + keep_phi)  # exp(logit zi) is the odds
    if cumulative:
        out["cutpoint"] = keep_cut
    return out


def compare_medians(a: dict, b: dict, names: list[str], z: float):
    """For each name, the posterior medians of draws a[name] (bglmm) and b[name] (the reference)
    and whether they differ by at most z combined Monte-Carlo standard errors (ArviZ's MCSE of
    the median of each, autocorrelation-aware over the chains): a DataFrame indexed by name."""
    import pandas as pd

    from bglmm.results import import_arviz

    az = import_arviz()
    rows = []
    for name in names:
        ma, mb = float(np.median(a[name])), float(np.median(b[name]))
        sa = float(az.mcse(np.asarray(a[name]), method="median"))
        sb = float(az.mcse(np.asarray(b[name]), method="median"))
        tol = z * np.hypot(sa, sb)
        rows.append({"name": name, "bglmm": ma, "reference": mb, "diff": ma - mb,
                     "mcse_bglmm": sa, "mcse_ref": sb, "tolerance": tol,
                     "ok": abs(ma - mb) <= tol})
    return pd.DataFrame(rows).set_index("name")


def assert_agrees(table, acceptance: float) -> None:
    """Print a compare_medians table (with the reference's HMC acceptance) and assert that every
    row is within its tolerance."""
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"\n(HMC acceptance {acceptance:.2f})\n{table}")
    bad = table[~table["ok"]]
    assert bad.empty, f"bglmm.fit disagrees with the HMC reference:\n{bad}"


def gradient_errors(model: PoissonCrossedModel, theta: np.ndarray, coords: list[int],
                    h: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """The analytic gradient of model.logp_grad at theta (C, dim) for the coordinates `coords`,
    and its central finite differences with step h: two (C, len(coords)) arrays."""
    _, g = model.logp_grad(theta)
    fd = np.empty((theta.shape[0], len(coords)))
    for k, j in enumerate(coords):
        up, down = theta.copy(), theta.copy()
        up[:, j] += h
        down[:, j] -= h
        fd[:, k] = (model.logp_grad(up)[0] - model.logp_grad(down)[0]) / (2 * h)
    return g[:, coords], fd
