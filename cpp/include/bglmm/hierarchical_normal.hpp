// bglmm/hierarchical_normal.hpp — the hierarchical normal (random-effects) model
//   y_i ~ N(theta_{g(i)}, v_i),  theta_j ~ N(mu, tau^2),  mu ~ N(m0, s0^2) (s0 = inf: flat),
//   tau: a steps::ScalePrior;  v_i = sigma^2 (unknown, sigma^2 ~ IG(a, b)) or known per row.
// Blocked Gibbs sweep (BDA3 §5.4-5.5 conditionals): (mu, theta) | tau^2, sigma^2 as a block —
// mu from its marginal with theta integrated, then theta_j | mu; tau^2 | theta, mu by the
// scale-prior step; sigma^2 | theta ~ IG(a + N/2, b + SSR/2).
// Exact sampler (known variances only): tau from its marginal posterior on a fine grid
// (BDA3 eq. 5.21, generalised to a normal prior on mu), then mu | tau, then theta | mu, tau.
#pragma once
#include <cstdint>
#include <limits>

#include "bglmm/control.hpp"
#include "bglmm/rng/philox.hpp"
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
};

struct HierNormalResult {
  RowMatrix theta;  // kept draws x groups
  Vector mu, tau, sigma;  // sigma empty when the variances are known
  std::int64_t draws_done = 0;
  bool interrupted = false;
};

struct HierNormalState {
  Vector theta;
  double mu = 0.0;
  double tau2 = 1.0;
  double sigma2 = 1.0;
};

// One blocked Gibbs sweep at iteration `iteration`.
void hier_normal_sweep(const HierNormalData& data, const HierNormalPrior& prior,
                       HierNormalState& state, rng::ChainKey key, std::uint64_t iteration);

HierNormalResult run_hier_normal_gibbs(const HierNormalData& data, const HierNormalPrior& prior,
                                       const HierNormalConfig& config, rng::ChainKey key,
                                       const RunControl& control);

HierNormalResult run_hier_normal_exact(const HierNormalData& data, const HierNormalPrior& prior,
                                       const HierNormalConfig& config, rng::ChainKey key);

// log p(tau | y) up to a constant (known variances), for tests and the exact sampler.
double hier_normal_log_marginal_tau(const HierNormalData& data, const HierNormalPrior& prior,
                                    double tau);

}  // namespace bglmm
