// bglmm/lmm_sampler.hpp — Gibbs sampler of the linear mixed model with one grouping factor
//   y = X beta + Z b + e,  b_j ~ N_q(0, Sigma) iid,  e ~ N(0, sigma^2 I),
//   beta ~ N(m0, V0),  Sigma ~ IW(nu0, S0) (q = 1: optionally any steps::ScalePrior on the SD),
//   sigma^2 ~ IG(a0, b0).
// One sweep:
//  1. (beta, b) | Sigma, sigma^2, y jointly: beta from its marginal with b integrated out,
//     X'V^-1X = (X'X - sum_j A_j'A_j) / sigma^2, A_j = L_j^-1 Z_j'X_j, L_j L_j' = M_j =
//     Z_j'Z_j + sigma^2 Sigma^-1 (Woodbury), then b_j | beta ~ N(M_j^-1 Z_j'(y_j - X_j beta),
//     sigma^2 M_j^-1) through the same factor L_j. Blocking removes the beta-b correlation
//     that slows a plain Gibbs sampler when Z shares columns with X.
//  2. sigma^2 | beta, b ~ IG(a0 + N/2, b0 + SSR/2), SSR from the precomputed cross-products.
//  3. Sigma | b ~ IW(nu0 + m, S0 + sum_j b_j b_j') by Bartlett (or the scale step for q = 1).
// Per-group work runs in parallel over fixed chunks of groups; chunk partial sums are added in
// chunk order, so draws do not depend on the thread count. Draws are keyed by
// (iteration, group, stream).
#pragma once
#include <cstdint>
#include <vector>

#include "bglmm/control.hpp"
#include "bglmm/grouped.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/covariance.hpp"
#include "bglmm/steps/scale_prior.hpp"
#include "bglmm/types.hpp"

namespace bglmm {

// Cross-products that never change, computed once (y means y - offset).
struct LmmModel {
  GroupedData data;      // the rows (used for the residual fallback)
  Index n = 0, m = 0, p = 0, q = 0;
  std::vector<double> ztz;  // m blocks of q x q (row-major)
  std::vector<double> ztx;  // m blocks of q x p (row-major)
  std::vector<double> zty;  // m blocks of q
  Matrix xtx;
  Vector xty;
  double yty = 0.0;
  Vector z_mean_square;  // per column of Z: sum z^2 / N (for the starting values)
};

LmmModel make_lmm_model(const GroupedData& data, int threads);

struct LmmPrior {
  Vector beta_mean;     // m0
  Matrix beta_cov;      // V0
  double sigma2_shape = 1.0;  // a0
  double sigma2_scale = 1.0;  // b0
  bool use_scale_prior = false;  // q = 1 only: the SD of b has `sd_prior`
  steps::ScalePrior sd_prior;
  steps::InverseWishartPrior cov_prior;  // nu0, S0
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
};

// Scratch space reused by every sweep (no allocation in the hot loop).
struct LmmWorkspace {
  std::vector<double> chol;       // m blocks of q x q: L_j of M_j
  std::vector<double> chunk_aa;   // per chunk p x p
  std::vector<double> chunk_ac;   // per chunk p
  std::vector<double> chunk_bb;   // per chunk q x q
  std::vector<double> chunk_ssr;  // per chunk
  std::vector<double> group_scratch;  // per chunk scratch (q*p + 3q)
  std::int64_t n_chunks = 0;
  std::int64_t fallbacks = 0;
  explicit LmmWorkspace(const LmmModel& model);
};

// Dispersed starting values from the Init stream.
LmmState lmm_initial_state(const LmmModel& model, const LmmPrior& prior, rng::ChainKey key);

// One sweep at iteration `iteration` (>= 1; 0 is used by the initial state).
void lmm_sweep(const LmmModel& model, const LmmPrior& prior, LmmState& state, LmmWorkspace& ws,
               rng::ChainKey key, std::uint64_t iteration, int threads);

LmmResult run_lmm_chain(const LmmModel& model, const LmmPrior& prior, const LmmConfig& config,
                        rng::ChainKey key, const RunControl& control);

}  // namespace bglmm
