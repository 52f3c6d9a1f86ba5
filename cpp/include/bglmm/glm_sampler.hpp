// bglmm/glm_sampler.hpp — Bayesian GLM: y_i ~ F(h(offset_i + x_i' beta)), beta ~ N(m0, V0).
// Samplers: random-walk Metropolis-Hastings with proposal N(beta, c V), V the inverse of the
// posterior curvature X'WX + V0^{-1} at a Fisher-scoring (IWLS) mode, c tuned in warm-up only;
// an independence MH with a multivariate-t proposal at that mode; and, for gaussian/identity,
// exact conjugate draws (known variance: normal; unknown: normal-inverse-gamma).
// Families with a dispersion phi (negative binomial, gamma, beta-binomial, zero-inflated): each
// iteration updates beta by the Metropolis-Hastings step given phi, then phi (and a second
// parameter phi2, if the family has one) by a slice step on its log
// (steps/dispersion_slice.hpp); the mode and proposal are computed at the joint mode.
// Cumulative ordinal families: X holds an intercept, and each iteration updates beta given the
// cutpoints, then the cutpoints by slice steps (steps/cutpoints.hpp), whose position sets the
// intercept's prior mean.
#pragma once
#include <cstdint>

#include "bglmm/control.hpp"
#include "bglmm/glm.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/cutpoints.hpp"
#include "bglmm/steps/dispersion_slice.hpp"
#include "bglmm/steps/zero_inflation.hpp"
#include "bglmm/types.hpp"

namespace bglmm {

// Observations of a GLM; the arrays are owned by the caller and must outlive the run.
struct GlmData {
  Eigen::Map<const RowMatrix> x;
  Eigen::Map<const Vector> y;
  Eigen::Map<const Vector> trials;  // ignored unless the family has trials
  Eigen::Map<const Vector> offset;
  FamilyLink family_link;
  Eigen::Map<const Vector> weights;  // case weights (each row's log-likelihood times w_i), or empty
  steps::ZiDesign zi;  // a zero-inflated family's zi formula (steps/zero_inflation.hpp), or none
  Index rows() const { return x.rows(); }
  Index cols() const { return x.cols(); }
  bool weighted() const { return weights.size() > 0; }
  double weight(Index i) const { return weighted() ? weights[i] : 1.0; }
};

// weights: empty, or one value >= 0 per row.
GlmData make_glm_data(ConstRowMatrixRef x, ConstVectorRef y, ConstVectorRef trials,
                      ConstVectorRef offset, FamilyLink family_link,
                      ConstVectorRef weights = Vector());

struct GlmPrior {
  Vector mean;            // m0
  Matrix covariance;      // V0 (for normal-inverse-gamma: V0 in units of sigma^2)
  double sigma2_shape = 0.0;  // a0 of sigma^2 ~ IG(a0, b0) (gaussian, unknown variance)
  double sigma2_scale = 0.0;  // b0
  steps::DispersionPrior dispersion;   // families with a dispersion phi
  steps::DispersionPrior dispersion2;  // and with a second parameter phi2
  steps::CutpointPrior cutpoints;      // cumulative families (steps/cutpoints.hpp)
  int categories = 0;                  // cumulative families: K
  const steps::DispersionPrior& family_prior(int which) const {
    return which == 0 ? dispersion : dispersion2;
  }
};

enum class GlmMethod : int { RandomWalk = 0, Independence = 1, Conjugate = 2 };
enum class ProposalCovariance : int { Fisher = 0, ScaledCrossProduct = 1 };

struct GlmConfig {
  std::int64_t draws = 1000;
  std::int64_t warmup = 1000;
  std::int64_t thin = 1;
  int threads = 0;
  GlmMethod method = GlmMethod::RandomWalk;
  ProposalCovariance proposal_covariance = ProposalCovariance::Fisher;
  double target_acceptance = 0.35;
  double initial_scale = 0.0;   // c; <= 0 means 2.38^2 / p
  double t_df = 8.0;            // independence proposal degrees of freedom
  double known_sigma = 0.0;     // gaussian: > 0 means known sigma
};

struct GlmMode {
  Vector beta;
  Matrix covariance;  // (X'WX + V0^{-1})^{-1} at the mode
  int iterations = 0;
  bool converged = false;
};

struct GlmChainResult {
  RowMatrix beta;                 // kept draws x p
  Vector sigma;                   // kept draws (gaussian), else empty
  Vector dispersion;              // kept draws of phi (families with a dispersion), else empty
  Vector dispersion2;             // kept draws of phi2 (a second parameter), else empty
  RowMatrix cutpoints;            // cumulative families: kept draws x (K - 1) of c = theta - beta_0
  RowMatrix zi_coef;              // a zi formula: kept draws x p_zi of its slopes, else empty
  double zi_acceptance = 0.0;     // a zi formula: its step's acceptance after warm-up
  double joint_acceptance = 0.0;  // cumulative: the joint move's over sampling (NaN: it was off)
  Vector log_posterior;           // kept draws (up to a constant)
  Vector accepted;                // kept draws: 1 if the move to this draw was accepted
  double acceptance_rate = 0.0;   // over the sampling phase
  double warmup_acceptance_rate = 0.0;
  double proposal_scale = 0.0;    // c, frozen after warm-up
  Vector mode;
  Matrix proposal_covariance;     // V
  std::int64_t draws_done = 0;    // kept draws actually written (less if interrupted)
  bool interrupted = false;
};

// Posterior mode by Fisher scoring (penalised IWLS) from beta = m0.
GlmMode glm_mode(const GlmData& data, const GlmPrior& prior, const FamilyParams& fp,
                 int threads);

// The joint mode of (beta, phi[, phi2]) for a family with a dispersion (fp is set to its part;
// the prior's dispersion priors are used); for the others, glm_mode at the given fp.
GlmMode glm_joint_mode(const GlmData& data, const GlmPrior& prior, int threads,
                       FamilyParams& fp);

// Sum of log-likelihood kernels over all rows at coefficient vector beta; fixed chunking so
// the value is bitwise independent of the thread count.
double glm_log_kernel(const GlmData& data, const Vector& beta, const FamilyParams& fp,
                      int threads);

GlmChainResult run_glm_chain(const GlmData& data, const GlmPrior& prior, const GlmConfig& config,
                             rng::ChainKey key, const RunControl& control);

// Pointwise log-likelihood: draws x observations (unweighted: log p(y_i | draw)).
// phi2: per draw, or empty for the families with at most one parameter; cutpoints: per draw
// (draws x (K - 1)), or empty for the families without.
RowMatrix glm_pointwise_log_lik(const GlmData& data, const RowMatrix& beta, const Vector& phi,
                                const Vector& phi2, const RowMatrix& cutpoints, int threads);

}  // namespace bglmm
