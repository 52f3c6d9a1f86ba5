// Hierarchical normal model: blocked Gibbs sampler and exact grid sampler.
// See bglmm/hierarchical_normal.hpp for the model and the math.
#include "bglmm/hierarchical_normal.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "bglmm/error.hpp"
#include "bglmm/rng/distributions.hpp"

namespace bglmm {
namespace {

bool flat_mu(const HierNormalPrior& p) { return std::isinf(p.mu_sd); }

// Sampling variance of ybar_j given sigma^2.
inline double group_var(const HierNormalData& d, Index j, double sigma2) {
  return d.known_variance ? 1.0 / d.weight[j] : sigma2 / d.count[j];
}

// mu | tau^2, sigma^2, y with theta integrated out: ybar_j ~ N(mu, v_j + tau^2).
double draw_mu_marginal(const HierNormalData& d, const HierNormalPrior& p, double tau2,
                        double sigma2, rng::Rng& rng) {
  double prec = flat_mu(p) ? 0.0 : 1.0 / (p.mu_sd * p.mu_sd);
  double h = flat_mu(p) ? 0.0 : p.mu_mean * prec;
  for (Index j = 0; j < d.groups(); ++j) {
    const double w = 1.0 / (group_var(d, j, sigma2) + tau2);
    prec += w;
    h += w * d.mean[j];
  }
  return h / prec + rng.std_normal() / std::sqrt(prec);
}

void draw_theta(const HierNormalData& d, double mu, double tau2, double sigma2, Vector& theta,
                rng::ChainKey key, std::uint64_t iteration) {
  for (Index j = 0; j < d.groups(); ++j) {
    rng::Rng rng(key, iteration, static_cast<std::uint64_t>(j), rng::Stream::GroupProposal);
    const double w = 1.0 / group_var(d, j, sigma2);
    const double prec = w + 1.0 / tau2;
    const double mean = (w * d.mean[j] + mu / tau2) / prec;
    theta[j] = mean + rng.std_normal() / std::sqrt(prec);
  }
}

void check_prior(const HierNormalData& d, const HierNormalPrior& p) {
  if (!d.known_variance) {
    check_positive("hierarchical normal", "sigma^2 prior shape", p.sigma2_shape);
    check_positive("hierarchical normal", "sigma^2 prior scale", p.sigma2_scale);
  }
  if (!(p.mu_sd > 0.0)) throw std::invalid_argument("hierarchical normal: mu prior sd must be > 0");
  check_finite("hierarchical normal", "mu prior mean", p.mu_mean);
  if (p.tau.kind == steps::ScalePriorKind::Uniform && std::isinf(p.tau.b) && d.groups() < 3)
    throw std::invalid_argument(
        "hierarchical normal: a flat prior on tau needs at least 3 groups for a proper posterior");
}

}  // namespace

HierNormalData make_hier_normal_data(ConstVectorRef y, ConstVectorRef var_known,
                                     ConstIndexVectorRef group_start) {
  const char* fn = "hierarchical normal";
  const Index n = y.size();
  if (n == 0) throw std::invalid_argument("hierarchical normal: no observations");
  check_all_finite(fn, "y", y);
  if (group_start.size() < 2 || group_start[0] != 0 || group_start[group_start.size() - 1] != n)
    throw std::invalid_argument("hierarchical normal: group offsets must run from 0 to N");
  HierNormalData d;
  d.known_variance = var_known.size() > 0;
  if (d.known_variance) {
    check_size_match(fn, "known variances", var_known.size(), "y", n);
    for (Index i = 0; i < n; ++i)
      if (!(var_known[i] > 0.0) || !std::isfinite(var_known[i]))
        throw std::invalid_argument(
            concat("hierarchical normal: known variance of row ", i, " must be positive, got ",
                   var_known[i]));
  }
  const Index m = group_start.size() - 1;
  d.count.resize(m);
  d.mean.resize(m);
  d.weight.resize(m);
  d.n_obs = static_cast<double>(n);
  for (Index j = 0; j < m; ++j) {
    const Index b = static_cast<Index>(group_start[j]), e = static_cast<Index>(group_start[j + 1]);
    if (e <= b) throw std::invalid_argument(concat("hierarchical normal: group ", j, " is empty"));
    d.count[j] = static_cast<double>(e - b);
    double w = 0.0, wy = 0.0;
    for (Index i = b; i < e; ++i) {
      const double wi = d.known_variance ? 1.0 / var_known[i] : 1.0;
      w += wi;
      wy += wi * y[i];
    }
    d.weight[j] = w;
    d.mean[j] = wy / w;
    if (!d.known_variance)
      for (Index i = b; i < e; ++i) d.within_ss += (y[i] - d.mean[j]) * (y[i] - d.mean[j]);
  }
  return d;
}

void hier_normal_sweep(const HierNormalData& d, const HierNormalPrior& p, HierNormalState& s,
                       rng::ChainKey key, std::uint64_t iteration) {
  const Index m = d.groups();
  {
    rng::Rng rng(key, iteration, 0, rng::Stream::Mean);
    s.mu = draw_mu_marginal(d, p, s.tau2, s.sigma2, rng);
  }
  draw_theta(d, s.mu, s.tau2, s.sigma2, s.theta, key, iteration);
  double ss = 0.0;
  for (Index j = 0; j < m; ++j) ss += (s.theta[j] - s.mu) * (s.theta[j] - s.mu);
  {
    rng::Rng rng(key, iteration, 0, rng::Stream::Hyper);
    s.tau2 = steps::draw_variance(p.tau, ss, static_cast<double>(m), s.tau2, rng);
    if (!(s.tau2 > 0.0) || !std::isfinite(s.tau2))
      throw NumericalError(concat("hierarchical normal: tau^2 draw ", s.tau2, " at iteration ",
                                  iteration));
  }
  if (!d.known_variance) {
    double ssr = d.within_ss;
    for (Index j = 0; j < m; ++j) ssr += d.count[j] * (d.mean[j] - s.theta[j]) * (d.mean[j] - s.theta[j]);
    rng::Rng rng(key, iteration, 0, rng::Stream::Dispersion);
    s.sigma2 = rng::inv_gamma_rng(p.sigma2_shape + 0.5 * d.n_obs, p.sigma2_scale + 0.5 * ssr, rng);
  }
}

HierNormalResult run_hier_normal_gibbs(const HierNormalData& d, const HierNormalPrior& p,
                                       const HierNormalConfig& cfg, rng::ChainKey key,
                                       const RunControl& control) {
  check_prior(d, p);
  if (cfg.draws < 0 || cfg.warmup < 0 || cfg.thin < 1)
    throw std::invalid_argument("hierarchical normal: need draws >= 0, warmup >= 0, thin >= 1");
  const Index m = d.groups();
  HierNormalState s;
  s.theta = d.mean;
  // Dispersed start: tau^2 and sigma^2 at the spread of the group means / rows times a
  // random factor in (1/3, 3).
  {
    rng::Rng rng(key, 0, 0, rng::Stream::Init);
    const double spread = m > 1 ? (d.mean.array() - d.mean.mean()).square().sum() /
                                      static_cast<double>(m - 1)
                                : 1.0;
    const double f1 = std::exp((2.0 * rng.uniform() - 1.0) * std::log(3.0));
    const double f2 = std::exp((2.0 * rng.uniform() - 1.0) * std::log(3.0));
    s.tau2 = std::max(spread, 1e-8 * (1.0 + d.mean.squaredNorm())) * f1;
    if (p.tau.kind == steps::ScalePriorKind::Uniform && s.tau2 >= p.tau.b * p.tau.b)
      s.tau2 = 0.25 * p.tau.b * p.tau.b;
    s.sigma2 = d.known_variance ? 1.0
                                : std::max(d.within_ss / std::max(1.0, d.n_obs - static_cast<double>(m)),
                                           1e-8 * (1.0 + spread)) * f2;
    s.mu = d.mean.mean();
  }
  HierNormalResult out;
  out.theta.setZero(cfg.draws, m);
  out.mu.setZero(cfg.draws);
  out.tau.setZero(cfg.draws);
  if (!d.known_variance) out.sigma.setZero(cfg.draws);
  const std::int64_t total = cfg.warmup + cfg.draws * cfg.thin;
  Poller poller(control, total);
  std::int64_t stored = 0;
  for (std::int64_t t = 0; t < total; ++t) {
    hier_normal_sweep(d, p, s, key, static_cast<std::uint64_t>(t) + 1);
    if (t >= cfg.warmup && (t - cfg.warmup + 1) % cfg.thin == 0) {
      out.theta.row(stored) = s.theta.transpose();
      out.mu[stored] = s.mu;
      out.tau[stored] = std::sqrt(s.tau2);
      if (!d.known_variance) out.sigma[stored] = std::sqrt(s.sigma2);
      ++stored;
    }
    if (poller.poll(t + 1)) {
      out.interrupted = t + 1 < total;
      if (out.interrupted) break;
    }
  }
  out.draws_done = stored;
  return out;
}

double hier_normal_log_marginal_tau(const HierNormalData& d, const HierNormalPrior& p,
                                    double tau) {
  if (!d.known_variance)
    throw std::invalid_argument(
        "hierarchical normal: the marginal of tau is available with known variances only");
  const double lp = steps::scale_prior_log_density(p.tau, tau);
  if (!std::isfinite(lp)) return lp;
  const double t2 = tau * tau;
  double prec = flat_mu(p) ? 0.0 : 1.0 / (p.mu_sd * p.mu_sd);
  double h = flat_mu(p) ? 0.0 : p.mu_mean * prec;
  double log_det = 0.0;
  for (Index j = 0; j < d.groups(); ++j) {
    const double v = 1.0 / d.weight[j] + t2;
    prec += 1.0 / v;
    h += d.mean[j] / v;
    log_det += std::log(v);
  }
  // Centre the quadratic form at the precision-weighted mean for accuracy.
  const double mu_hat = h / prec;
  double centred = flat_mu(p) ? 0.0
                              : (p.mu_mean - mu_hat) * (p.mu_mean - mu_hat) / (p.mu_sd * p.mu_sd);
  for (Index j = 0; j < d.groups(); ++j) {
    const double v = 1.0 / d.weight[j] + t2;
    centred += (d.mean[j] - mu_hat) * (d.mean[j] - mu_hat) / v;
  }
  return lp - 0.5 * log_det - 0.5 * std::log(prec) - 0.5 * centred;
}

HierNormalResult run_hier_normal_exact(const HierNormalData& d, const HierNormalPrior& p,
                                       const HierNormalConfig& cfg, rng::ChainKey key) {
  check_prior(d, p);
  if (!d.known_variance)
    throw std::invalid_argument(
        "hierarchical normal: the exact sampler needs known variances (sigma or se)");
  if (cfg.grid_points < 100) throw std::invalid_argument("exact sampler: grid_points must be >= 100");
  const Index m = d.groups();
  // Grid on u in (0, 1) with tau = c u / (1 - u): covers (0, inf); c = the spread of the data.
  double spread = 0.0;
  for (Index j = 0; j < m; ++j) spread += 1.0 / d.weight[j];
  spread /= static_cast<double>(m);
  if (m > 1)
    spread += (d.mean.array() - d.mean.mean()).square().sum() / static_cast<double>(m - 1);
  const double c = std::sqrt(spread);
  const int n_grid = cfg.grid_points;
  const double upper_u =
      (p.tau.kind == steps::ScalePriorKind::Uniform && std::isfinite(p.tau.b)) ? p.tau.b / (c + p.tau.b)
                                                                               : 1.0;
  const double du = upper_u / n_grid;
  std::vector<double> logw(static_cast<std::size_t>(n_grid));
  double max_lw = -std::numeric_limits<double>::infinity();
  for (int k = 0; k < n_grid; ++k) {
    const double u = (k + 0.5) * du;
    const double tau = c * u / (1.0 - u);
    const double lw = hier_normal_log_marginal_tau(d, p, tau) + std::log(c) - 2.0 * std::log1p(-u);
    logw[static_cast<std::size_t>(k)] = lw;
    max_lw = std::max(max_lw, lw);
  }
  if (!std::isfinite(max_lw)) throw NumericalError("exact sampler: the marginal of tau is not finite");
  std::vector<double> cdf(static_cast<std::size_t>(n_grid));
  double total = 0.0;
  for (int k = 0; k < n_grid; ++k) {
    total += std::exp(logw[static_cast<std::size_t>(k)] - max_lw);
    cdf[static_cast<std::size_t>(k)] = total;
  }
  HierNormalResult out;
  out.theta.setZero(cfg.draws, m);
  out.mu.setZero(cfg.draws);
  out.tau.setZero(cfg.draws);
  Vector theta(m);
  for (std::int64_t s = 0; s < cfg.draws; ++s) {
    rng::Rng rng(key, static_cast<std::uint64_t>(s), 0, rng::Stream::Hyper);
    const double target = rng.uniform() * total;
    const auto it = std::lower_bound(cdf.begin(), cdf.end(), target);
    const auto k = static_cast<int>(std::min<std::ptrdiff_t>(it - cdf.begin(), n_grid - 1));
    const double u = (k + rng.uniform()) * du;  // uniform within the cell
    const double tau = c * u / (1.0 - u);
    const double t2 = tau * tau;
    rng::Rng mu_rng(key, static_cast<std::uint64_t>(s), 0, rng::Stream::Mean);
    const double mu = draw_mu_marginal(d, p, t2, 1.0, mu_rng);
    draw_theta(d, mu, t2, 1.0, theta, key, static_cast<std::uint64_t>(s));
    out.theta.row(s) = theta.transpose();
    out.mu[s] = mu;
    out.tau[s] = tau;
  }
  out.draws_done = cfg.draws;
  return out;
}

}  // namespace bglmm
