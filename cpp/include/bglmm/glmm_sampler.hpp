// bglmm/glmm_sampler.hpp — Metropolis-within-Gibbs for GLMMs with one grouping factor.
// A sweep is the fixed list of steps (see glmm_model.hpp for the model):
//   1. gamma_j | .  for every group, in parallel (steps/group_mh.hpp: Laplace or random walk)
//   2. beta_C | .   exact Gibbs (centred coefficients; steps/fixed_effects.hpp)
//   3. beta_F | .   block Metropolis-Hastings of the free coefficients (steps/fixed_effects.hpp):
//                   Laplace kernel, a Newton (IWLS) proposal that also shifts the random
//                   intercepts; random-walk kernel, a random walk with a scale tuned in warm-up
//   4. Sigma | .    inverse-Wishart Gibbs (steps/covariance.hpp), then (Laplace kernel) an
//                   interweaving step of (beta_C, Sigma) in the non-centred parameterisation
//                   (steps/interweave.hpp), and after warm-up an independence move of
//                   (beta_C, Sigma) that carries each b_j along its approximate posterior
//                   (steps/marginal_move.hpp)
//   5. sigma^2 | .  inverse-gamma Gibbs (gaussian only; steps/glmm_dispersion.hpp)
// The driver owns initialisation, warm-up adaptation, thinning and storage.
#pragma once
#include <cstdint>

#include "bglmm/control.hpp"
#include "bglmm/glmm_model.hpp"
#include "bglmm/rng/philox.hpp"

namespace bglmm {

// Whether the marginal move (steps/marginal_move.hpp) ran after warm-up, and if not, why.
enum class MarginalStatus : int {
  On = 0,            // frozen at the end of warm-up and used in every sampling sweep
  NotRequested = 1,  // random-walk kernel, or marginal_move = false
  NoWarmup = 2,      // warmup = 0: no draws to fit its proposal from
  NotFitted = 3,     // steps::marginal_freeze refused the warm-up draws (too few of them, or
                     // their covariance is singular)
  NotReached = 4,    // the chain stopped (interrupted) before the end of warm-up
};

struct GlmmChainResult {
  RowMatrix beta;                  // kept x p
  RowMatrix sigma;                 // kept x q*q (row-major Sigma)
  RowMatrix b;                     // kept x m*q: b_j = gamma_j - mu (empty if not kept)
  Vector phi;                      // kept (gaussian residual variance, a dispersion), else empty
  Vector phi2;                     // kept (a family's second parameter), else empty
  RowMatrix cutpoints;             // cumulative families: kept x (K - 1), c = theta - beta_0
  RowMatrix zi_coef;               // a zi formula: kept x p_zi, its slopes (else empty)
  double zi_acceptance = 0.0;      // a zi formula: its step's acceptance after warm-up
  Vector log_lik;                  // kept: sum of the log-likelihood kernels
  Vector group_accept_mean;        // kept: mean over groups of the MH acceptance probability
  Vector fixed_accepted;           // kept: 1 if the block step moved (free beta)
  Vector group_acceptance;         // m: acceptance rate over the sampling phase
  Vector group_warmup_acceptance;  // m: acceptance rate over warm-up
  Vector rw_scale;                 // m: frozen c_j (random-walk kernel)
  double fixed_acceptance = 0.0;
  double fixed_warmup_acceptance = 0.0;
  double fixed_scale = 0.0;        // random-walk kernel: frozen c of the block step (else NaN)
  double interweave_acceptance = 0.0;  // NaN when the step did not run
  double marginal_acceptance = 0.0;    // NaN when the move did not run (see marginal_status)
  MarginalStatus marginal_status = MarginalStatus::NotRequested;
  std::int64_t marginal_warmup_draws = 0;  // warm-up draws its proposal was fitted from
  Index marginal_dim = 0;                  // dimension of the (beta_C, L) vector it moves
  Matrix fixed_proposal_cov;       // random-walk kernel: c V_F (else empty)
  std::vector<RowMatrix> extra_sigma;  // per extra block: kept x q_k*q_k (row-major Sigma_k)
  std::vector<RowMatrix> extra_b;      // per extra block: kept x m_k*q_k (empty if not kept)
  Vector extra_level_acceptance;       // per extra block: mean MH acceptance probability of
                                       // its level steps over the sampling phase
  Vector extra_scale_acceptance;       // per extra block: acceptance rate of its scale move
  double warmup_seconds = 0.0;
  double sampling_seconds = 0.0;
  std::int64_t sampling_sweeps = 0;
  int threads_used = 1;
  std::int64_t draws_done = 0;
  bool interrupted = false;
};

// `data` is the chain's own (its offset is re-pointed at the chain's effective offset when
// there are extra blocks).
GlmmChainResult run_glmm_chain(GlmmData data, const GlmmPriors& priors,
                               const GlmmConfig& config, rng::ChainKey key,
                               const RunControl& control);

// Geweke (2004) successive-conditional simulator: from a draw of the prior, alternate one
// sweep (no adaptation) and a fresh y ~ p(y | theta). Rows: iterations; columns: beta (p),
// Sigma (q*q), b_0 (q, group 0), phi, then per extra block Sigma_k (q_k*q_k) and b_{k,0} (q_k),
// then phi2 for a family with a second parameter, then the cutpoints c_k = theta_k - beta_0
// (K - 1) for a cumulative family. The data's y only fixes the layout.
RowMatrix run_glmm_geweke(const GlmmData& data, const GlmmPriors& priors,
                          const GlmmConfig& config, std::int64_t iterations, rng::ChainKey key);

// Pointwise log-likelihood (draws x N) at beta (S x p) and b (S x m*q, non-centred), phi (S),
// phi2 (S, or empty for a family with at most one parameter), the cutpoints (S x (K - 1) for a
// cumulative family, with y the category codes and X's intercept in beta; else empty), and each
// extra block's effects
// extra_b[k] (S x m_k*q_k).
RowMatrix glmm_pointwise_log_lik(const GroupedData& obs, const RowMatrix& beta,
                                 const RowMatrix& b, const Vector& phi, const Vector& phi2,
                                 const RowMatrix& cutpoints,
                                 int threads,
                                 const std::vector<ExtraBlock>& extra = {},
                                 const std::vector<RowMatrix>& extra_b = {});

// Seconds per pass of the plain log-likelihood kernel over all observations at (beta, b),
// the yardstick of a sweep's cost; the fastest of `reps` passes.
double glmm_log_lik_pass_seconds(const GroupedData& obs, const Vector& beta, const RowMatrix& b,
                                 double phi, int reps, int threads);

}  // namespace bglmm
