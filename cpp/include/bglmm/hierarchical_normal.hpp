// bglmm/hierarchical_normal.hpp — the hierarchical normal (random-effects) model
//   y_i ~ N(theta_{g(i)}, v_i),  theta_j ~ N(mu, tau^2),  mu ~ N(m0, s0^2) (s0 = inf: flat),
//   tau: a steps::ScalePrior;  v_i = sigma^2 (unknown, sigma^2 ~ IG(a, b)) or known per row.
// Gibbs sweep (BDA3 §5.4-5.5 conditionals):
//  0. (tau, sigma) | y with mu and theta integrated out (collapsed Metropolis-Hastings; on by
//     default): the blocked Gibbs steps below move tau in lock-step with theta when tau is
//     small (eight schools, pure-noise data) and crawl; this move does not look at theta. The
//     marginal likelihood is closed form from the group sufficient statistics:
//       ybar_j | mu, tau, sigma ~ N(mu, v_j + tau^2),  v_j = 1 / w_j (known) or sigma^2 / n_j,
//     with mu integrated under N(m0, s0^2) or flat (P = sum_j 1/(v_j + tau^2) + 1/s0^2,
//     mu_hat = (sum_j ybar_j/(v_j + tau^2) + m0/s0^2) / P):
//       log p(y | tau, sigma) = -1/2 [ sum_j log(v_j + tau^2) + log P
//                                      + sum_j (ybar_j - mu_hat)^2/(v_j + tau^2) + (m0 - mu_hat)^2/s0^2 ]
//                               - (N - m)/2 log sigma^2 - W / (2 sigma^2)   (unknown sigma only;
//     W the within-group sum of squares) + const. It moves x = (log tau[, log sigma]) with a
//     random walk whose covariance is learned in warm-up and, after warm-up, also an
//     independence multivariate-t proposal fitted to the second half of warm-up; both are
//     frozen once warm-up ends. The prior of x carries the Jacobians d tau / d log tau = tau
//     and d sigma^2 / d log sigma = 2 sigma^2.
//  1. (mu, theta) | tau^2, sigma^2 as a block — mu from its marginal with theta integrated,
//     then theta_j | mu (this makes the state consistent after step 0).
//  2. tau^2 | theta, mu by the scale-prior step; sigma^2 | theta ~ IG(a + N/2, b + SSR/2).
// Every draw is keyed by (seed, chain, iteration, stream, index): step 0 uses the Hyper stream
// with indices 1-4, step 2's tau^2 draw index 0.
// Exact sampler (known variances only): tau from its marginal posterior on a fine grid
// (BDA3 eq. 5.21, generalised to a normal prior on mu), then mu | tau, then theta | mu, tau.
#pragma once
#include <cstdint>
#include <limits>

#include "bglmm/control.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/adaptive_mh.hpp"
#include "bglmm/steps/scale_prior.hpp"
#include "bglmm/types.hpp"

namespace bglmm {

// Per-group sufficient statistics. Known variances: w_j = sum 1/v_i, ybar_j = sum(y_i/v_i)/w_j.
// Unknown common variance: n_j, ybar_j and the within-group sum of squares.
struct HierNormalData {
  bool known_variance = false;
  Vector count;      // n_j
  Vector mean;       // ybar_j (precision-weighted when known_variance)
  Vector weight;     // w_j = sum_i 1 / v_i (known_variance)
  double within_ss = 0.0;  // sum_j sum_i (y_i - ybar_j)^2 (unknown variance)
  double n_obs = 0.0;
  Index groups() const { return count.size(); }
};

// y sorted by group; var_known: per-row known variances (empty = unknown common sigma^2).
HierNormalData make_hier_normal_data(ConstVectorRef y, ConstVectorRef var_known,
                                     ConstIndexVectorRef group_start);

struct HierNormalPrior {
  double mu_mean = 0.0;
  double mu_sd = std::numeric_limits<double>::infinity();  // inf: flat prior on mu
  steps::ScalePrior tau;
  double sigma2_shape = 0.0;  // unknown sigma^2 only
  double sigma2_scale = 0.0;
};

struct HierNormalConfig {
  std::int64_t draws = 1000;
  std::int64_t warmup = 500;
  std::int64_t thin = 1;
  int grid_points = 4000;  // exact sampler
  bool collapsed = true;   // Gibbs: step 0 (the collapsed move); off: the plain blocked Gibbs sweep
  bool drop_jacobian = false;  // TESTING ONLY: step 0 forgets the Jacobians of log tau, log sigma
};

struct HierNormalResult {
  RowMatrix theta;  // kept draws x groups
  Vector mu, tau, sigma;  // sigma empty when the variances are known
  std::int64_t draws_done = 0;
  bool interrupted = false;
  double collapsed_accept = 0.0;  // acceptance rate of the collapsed move after warm-up
};

struct HierNormalState {
  Vector theta;
  double mu = 0.0;
  double tau2 = 1.0;
  double sigma2 = 1.0;
};

// The collapsed move's proposals on x = (log tau[, log sigma]) are steps::AdaptiveProposal.


// The starting random walk: steps of about 1 / sqrt(2 m) in log tau and 1 / sqrt(2 N) in
// log sigma (a posterior SD's order when they are well identified; refined in warm-up).
steps::AdaptiveProposal hier_normal_initial_proposal(const HierNormalData& data);

struct HierNormalSweepArgs {
  std::uint64_t iteration = 1;  // >= 1 (0 is used by the initial state)
  bool collapsed = true;        // step 0
  bool scale_gibbs = true;      // step 2 (off, TESTING ONLY: step 0 + 1 alone, to test step 0)
  bool adapt = false;           // learn the proposals (warm-up)
  std::int64_t warmup = 0;      // the warm-up length
  bool drop_jacobian = false;   // TESTING ONLY: see HierNormalConfig
};

// One sweep at args.iteration.
void hier_normal_sweep(const HierNormalData& data, const HierNormalPrior& prior,
                       HierNormalState& state, steps::AdaptiveProposal& proposal, rng::ChainKey key,
                       const HierNormalSweepArgs& args);

// log p(y | tau^2, sigma^2) with mu and theta integrated out, up to a constant (sigma2 is
// ignored with known variances).
double hier_normal_collapsed_log_lik(const HierNormalData& data, const HierNormalPrior& prior,
                                     double tau2, double sigma2);

// Throws std::invalid_argument when the prior does not fit the data.
void check_hier_normal_prior(const HierNormalData& data, const HierNormalPrior& prior);

HierNormalResult run_hier_normal_gibbs(const HierNormalData& data, const HierNormalPrior& prior,
                                       const HierNormalConfig& config, rng::ChainKey key,
                                       const RunControl& control);

HierNormalResult run_hier_normal_exact(const HierNormalData& data, const HierNormalPrior& prior,
                                       const HierNormalConfig& config, rng::ChainKey key);

// log p(tau | y) up to a constant (known variances), for tests and the exact sampler.
double hier_normal_log_marginal_tau(const HierNormalData& data, const HierNormalPrior& prior,
                                    double tau);

}  // namespace bglmm
