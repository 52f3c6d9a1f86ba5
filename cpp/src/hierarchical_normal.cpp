// Hierarchical normal model: blocked Gibbs sampler and exact grid sampler.
// See bglmm/hierarchical_normal.hpp for the model and the math.
#include "bglmm/hierarchical_normal.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "bglmm/error.hpp"
#include "bglmm/linalg/mvn.hpp"
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

// log prior of x = (log tau[, log sigma]): the tau prior times d tau / d log tau = tau, and
// IG(a, b) on sigma^2 times d sigma^2 / d log sigma = 2 sigma^2 (drop_jacobian: without both).
double log_prior_x(const HierNormalData& d, const HierNormalPrior& p, const Vector& x,
                   bool drop_jacobian) {
  double lp = steps::scale_prior_log_density(p.tau, std::exp(x[0]));
  if (!std::isfinite(lp)) return -std::numeric_limits<double>::infinity();
  if (!drop_jacobian) lp += x[0];
  if (!d.known_variance) {
    const double ls2 = 2.0 * x[1];
    lp += -(p.sigma2_shape + (drop_jacobian ? 1.0 : 0.0)) * ls2 - p.sigma2_scale * std::exp(-ls2);
  }
  return lp;
}

// Step 0: Metropolis-Hastings on x = (log tau[, log sigma]) targeting p(x | y) with mu and
// theta integrated out (steps/adaptive_mh.hpp: an independence t after warm-up, then one
// random walk; Hyper-stream indices from 1).
void collapsed_move(const HierNormalData& d, const HierNormalPrior& p, HierNormalState& s,
                    steps::AdaptiveProposal& pr, rng::ChainKey key, const HierNormalSweepArgs& a) {
  const Index dim = pr.dim;
  Vector x(dim);
  x[0] = 0.5 * std::log(s.tau2);
  if (!d.known_variance) x[1] = 0.5 * std::log(s.sigma2);
  auto target = [&](const Vector& v) {
    const double lp = log_prior_x(d, p, v, a.drop_jacobian);
    if (!std::isfinite(lp)) return -std::numeric_limits<double>::infinity();
    const double t2 = std::exp(2.0 * v[0]);
    const double s2 = d.known_variance ? 1.0 : std::exp(2.0 * v[1]);
    if (!(t2 > 0.0) || !std::isfinite(t2) || !(s2 > 0.0) || !std::isfinite(s2))
      return -std::numeric_limits<double>::infinity();
    return lp + hier_normal_collapsed_log_lik(d, p, t2, s2);
  };
  double target_cur = target(x);
  if (!std::isfinite(target_cur)) return;
  steps::AdaptiveMhArgs ma;
  ma.key = key;
  ma.iteration = a.iteration;
  ma.adapt = a.adapt;
  ma.warmup = a.warmup;
  ma.random_walks = 1;
  ma.slot_base = 1;
  ma.accept_goal = dim == 1 ? 0.44 : 0.35;
  steps::adaptive_mh(pr, x, target_cur, ma, target, [] {});
  s.tau2 = std::exp(2.0 * x[0]);
  if (!d.known_variance) s.sigma2 = std::exp(2.0 * x[1]);
}

}  // namespace

void check_hier_normal_prior(const HierNormalData& d, const HierNormalPrior& p) {
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

steps::AdaptiveProposal hier_normal_initial_proposal(const HierNormalData& d) {
  Vector step(d.known_variance ? 1 : 2);
  step[0] = 1.0 / std::sqrt(2.0 * static_cast<double>(std::max<Index>(d.groups(), 1)));
  if (!d.known_variance) step[1] = 1.0 / std::sqrt(2.0 * d.n_obs);
  return steps::make_adaptive_proposal(step);
}

void hier_normal_sweep(const HierNormalData& d, const HierNormalPrior& p, HierNormalState& s,
                       steps::AdaptiveProposal& pr, rng::ChainKey key,
                       const HierNormalSweepArgs& a) {
  const Index m = d.groups();
  const std::uint64_t iteration = a.iteration;
  if (a.collapsed) collapsed_move(d, p, s, pr, key, a);
  {
    rng::Rng rng(key, iteration, 0, rng::Stream::Mean);
    s.mu = draw_mu_marginal(d, p, s.tau2, s.sigma2, rng);
  }
  draw_theta(d, s.mu, s.tau2, s.sigma2, s.theta, key, iteration);
  if (!a.scale_gibbs) return;
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
  check_hier_normal_prior(d, p);
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
  steps::AdaptiveProposal proposal = hier_normal_initial_proposal(d);
  HierNormalSweepArgs args;
  args.collapsed = cfg.collapsed;
  args.warmup = cfg.warmup;
  args.drop_jacobian = cfg.drop_jacobian;
  const std::int64_t total = cfg.warmup + cfg.draws * cfg.thin;
  Poller poller(control, total);
  std::int64_t stored = 0;
  for (std::int64_t t = 0; t < total; ++t) {
    args.iteration = static_cast<std::uint64_t>(t) + 1;
    args.adapt = t < cfg.warmup;
    hier_normal_sweep(d, p, s, proposal, key, args);
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
  out.collapsed_accept = proposal.acceptance();
  return out;
}

double hier_normal_collapsed_log_lik(const HierNormalData& d, const HierNormalPrior& p,
                                     double tau2, double sigma2) {
  double prec = flat_mu(p) ? 0.0 : 1.0 / (p.mu_sd * p.mu_sd);
  double h = flat_mu(p) ? 0.0 : p.mu_mean * prec;
  double log_det = 0.0;
  for (Index j = 0; j < d.groups(); ++j) {
    const double v = group_var(d, j, sigma2) + tau2;
    prec += 1.0 / v;
    h += d.mean[j] / v;
    log_det += std::log(v);
  }
  // Centre the quadratic form at the precision-weighted mean for accuracy.
  const double mu_hat = h / prec;
  double centred = flat_mu(p) ? 0.0
                              : (p.mu_mean - mu_hat) * (p.mu_mean - mu_hat) / (p.mu_sd * p.mu_sd);
  for (Index j = 0; j < d.groups(); ++j) {
    const double v = group_var(d, j, sigma2) + tau2;
    centred += (d.mean[j] - mu_hat) * (d.mean[j] - mu_hat) / v;
  }
  double out = -0.5 * (log_det + std::log(prec) + centred);
  if (!d.known_variance)
    out -= 0.5 * ((d.n_obs - static_cast<double>(d.groups())) * std::log(sigma2) +
                  d.within_ss / sigma2);
  return out;
}

double hier_normal_log_marginal_tau(const HierNormalData& d, const HierNormalPrior& p,
                                    double tau) {
  if (!d.known_variance)
    throw std::invalid_argument(
        "hierarchical normal: the marginal of tau is available with known variances only");
  const double lp = steps::scale_prior_log_density(p.tau, tau);
  if (!std::isfinite(lp)) return lp;
  return lp + hier_normal_collapsed_log_lik(d, p, tau * tau, 1.0);
}

HierNormalResult run_hier_normal_exact(const HierNormalData& d, const HierNormalPrior& p,
                                       const HierNormalConfig& cfg, rng::ChainKey key) {
  check_hier_normal_prior(d, p);
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
