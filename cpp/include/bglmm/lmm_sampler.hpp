// bglmm/lmm_sampler.hpp — sampler of the linear mixed model with one grouping factor
//   y = X beta + Z b + e,  b_j ~ N_q(0, Sigma) iid,  e ~ N(0, sigma^2 I),
//   beta ~ N(m0, V0),  Sigma ~ steps::CovariancePrior (LKJ + SD priors, or inverse-Wishart),
//   sigma^2 ~ IG(a0, b0).
// One sweep:
//  0. (Sigma, sigma^2) | y with beta and b integrated out (collapsed Metropolis-Hastings):
//     the marginal likelihood is closed form from per-group cross-products (below), so the
//     variance components move without the b <-> Sigma dependence that makes Gibbs crawl when
//     a variance component is small or each group carries little information. Moves in
//     x = (unconstrained Sigma coordinates, log sigma): random walk with a covariance learned in
//     warm-up, and after warm-up an independence multivariate-t proposal fitted to the second
//     half of warm-up; both frozen after warm-up.
//  1. (beta, b) | Sigma, sigma^2, y jointly: beta from its marginal with b integrated out,
//     X'V^-1X = (X'X - sum_j A_j'A_j) / sigma^2, A_j = L_j^-1 Z_j'X_j, L_j L_j' = M_j =
//     Z_j'Z_j + sigma^2 Sigma^-1 (Woodbury), then b_j | beta ~ N(M_j^-1 Z_j'(y_j - X_j beta),
//     sigma^2 M_j^-1) through the same factor L_j.
//  2. sigma^2 | beta, b ~ IG(a0 + N/2, b0 + SSR/2), SSR from the precomputed cross-products.
//  3. Sigma | b: steps::covariance_conditional_step (conjugate inverse-Wishart, the SD's step
//     for q = 1, slice sampling in the LKJ coordinates otherwise).
// The collapsed log-likelihood, with c_j = L_j^-1 Z_j'r, P = X'V^-1X + V0^-1,
// h = X'V^-1 r + V0^-1 (m0 - beta_ref) and r = y - X beta_ref (beta_ref the least-squares fit,
// so that the cross-products hold residuals and lose no digits):
//   -1/2 [ (N - m q) log sigma^2 + m log|Sigma| + sum_j log|M_j| + log|P|
//          + (r'r - sum_j c_j'c_j) / sigma^2 + (m0 - beta_ref)'V0^-1(m0 - beta_ref) - h'P^-1 h ].
// Case weights w_i (each row's log-likelihood times w_i): every cross-product above is weighted
// (Z'WZ, X'Wr, r'Wr, ...) and N becomes sum w; nothing else changes.
// Per-group work runs in parallel over fixed chunks of groups; chunk partial sums are added in
// chunk order, so draws do not depend on the thread count. Draws are keyed by
// (iteration, group, stream).
#pragma once
#include <cstdint>
#include <vector>

#include "bglmm/control.hpp"
#include "bglmm/grouped.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/adaptive_mh.hpp"
#include "bglmm/steps/covariance_prior.hpp"
#include "bglmm/types.hpp"

namespace bglmm {

// Cross-products that never change, computed once; r = y - offset - X beta_ref.
struct LmmModel {
  GroupedData data;      // the rows (used for the residual fallback)
  double n = 0.0;        // N, or the sum of the case weights
  Index m = 0, p = 0, q = 0;
  std::vector<double> ztz;  // m blocks of q x q (row-major)
  std::vector<double> ztx;  // m blocks of q x p (row-major)
  std::vector<double> ztr;  // m blocks of q
  Matrix xtx;
  Vector xtr;
  double rtr = 0.0;
  Vector beta_ref;       // least-squares coefficients of y - offset on X (ridged if singular)
  Vector z_mean_square;  // per column of Z: sum z^2 / N (for the starting values)
};

LmmModel make_lmm_model(const GroupedData& data, int threads);

struct LmmPrior {
  Vector beta_mean;     // m0
  Matrix beta_cov;      // V0
  double sigma2_shape = 1.0;  // a0
  double sigma2_scale = 1.0;  // b0
  steps::CovariancePrior cov_prior;
};

void check_lmm_prior(const LmmModel& model, const LmmPrior& prior);

struct LmmState {
  Vector beta;
  RowMatrix b;     // m x q
  Matrix cov;      // Sigma
  double sigma2 = 1.0;
};

struct LmmConfig {
  std::int64_t draws = 1000;
  std::int64_t warmup = 500;
  std::int64_t thin = 1;
  int threads = 0;
  bool keep_effects = true;  // store every kept draw of b (m x q per draw)
  bool collapsed = true;     // step 0 (the collapsed move); off: the plain Gibbs sweep
};

struct LmmResult {
  RowMatrix beta;     // draws x p
  RowMatrix cov;      // draws x q*q (row-major Sigma)
  Vector sigma;       // draws
  RowMatrix b;        // draws x m*q when keep_effects, else empty
  RowMatrix b_mean;   // m x q posterior mean of b over kept draws
  RowMatrix b_sd;     // m x q posterior sd of b over kept draws
  std::int64_t draws_done = 0;
  bool interrupted = false;
  double residual_fallbacks = 0;  // sweeps whose SSR was recomputed from the rows
  double collapsed_accept = 0;    // acceptance rate of the collapsed move after warm-up
};


// Scratch space reused by every sweep (no allocation in the hot loop).
struct LmmWorkspace {
  std::vector<double> chol;       // m blocks of q x q: L_j of M_j
  std::vector<double> chunk_aa;   // per chunk p x p
  std::vector<double> chunk_ac;   // per chunk p
  std::vector<double> chunk_bb;   // per chunk q x q
  std::vector<double> chunk_ssr;  // per chunk
  std::vector<double> chunk_logdet;  // per chunk: sum_j log|M_j|
  std::vector<double> chunk_cc;   // per chunk: sum_j c_j'c_j
  std::vector<std::uint8_t> chunk_ok;  // per chunk: every M_j positive definite
  std::vector<double> chol_alt;   // the factors at a proposed (Sigma, sigma^2)
  std::vector<double> group_scratch;  // per chunk scratch (q*p + 3q)
  std::int64_t n_chunks = 0;
  std::int64_t fallbacks = 0;
  steps::AdaptiveProposal proposal;  // the collapsed move's (steps/adaptive_mh.hpp)
  Matrix beta_prec;               // V0^-1
  explicit LmmWorkspace(const LmmModel& model, const LmmPrior& prior);
};

// Dispersed starting values from the Init stream.
LmmState lmm_initial_state(const LmmModel& model, const LmmPrior& prior, rng::ChainKey key);

// One sweep at iteration `iteration` (>= 1; 0 is used by the initial state). `adapt`: learn
// the collapsed move's proposals (warm-up); `warmup` is the warm-up length.
struct LmmSweepArgs {
  std::uint64_t iteration = 1;
  int threads = 1;
  bool collapsed = true;
  bool adapt = false;
  std::int64_t warmup = 0;
};
void lmm_sweep(const LmmModel& model, const LmmPrior& prior, LmmState& state, LmmWorkspace& ws,
               rng::ChainKey key, const LmmSweepArgs& args);

LmmResult run_lmm_chain(const LmmModel& model, const LmmPrior& prior, const LmmConfig& config,
                        rng::ChainKey key, const RunControl& control);

}  // namespace bglmm
