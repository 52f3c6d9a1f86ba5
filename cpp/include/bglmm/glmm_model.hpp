// bglmm/glmm_model.hpp — the GLMM's data, priors, configuration and chain state.
// eta_i = offset_i + x_i' beta + z_i' b_{g(i)},  b_j ~ N_q(0, Sigma),  beta ~ N_p(m0, V0),
// Sigma ~ IW(nu0, S0). Hierarchical centring (Gelfand, Sahu & Carlin 1995): a fixed column c
// may be attached to random term k when x_ic = w_jc z_ik in every group j — the same column in
// X and Z (w = 1), or a group-level covariate (constant within groups) attached to a random
// intercept. The sampler then works with gamma_j = b_j + mu_j, mu_jk = sum_c w_jc beta_c, so
// those beta_c leave the likelihood and get an exact Gibbs update (a Bayesian regression of
// the gamma_j); the other ("free") coefficients are updated by a block Metropolis step.
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "bglmm/error.hpp"
#include "bglmm/glm.hpp"
#include "bglmm/grouped.hpp"
#include "bglmm/likelihood_block.hpp"
#include "bglmm/random_blocks.hpp"
#include "bglmm/steps/covariance_prior.hpp"
#include "bglmm/steps/cutpoints.hpp"
#include "bglmm/steps/dispersion_slice.hpp"
#include "bglmm/steps/zero_inflation.hpp"
#include "bglmm/types.hpp"

namespace bglmm {

// Random-effect dimension limit: per-group vectors/matrices live on the stack (no heap
// allocation in the per-group hot loop).
constexpr Index kMaxRandomTerms = 12;
using QVec = Eigen::Matrix<double, Eigen::Dynamic, 1, 0, kMaxRandomTerms, 1>;
using QMat =
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, 0, kMaxRandomTerms, kMaxRandomTerms>;

// Fixed-size per-group types for the common small q (loops unroll, no dynamic-size logic);
// QVec/QMat otherwise. with_q(q, fn) calls fn(std::integral_constant<int, Q>) with Q = q for
// q <= 3 and Q = Eigen::Dynamic above.
template <int Q>
struct QTypes {
  using Vec = Eigen::Matrix<double, Q, 1>;
  using Mat = Eigen::Matrix<double, Q, Q>;
};
template <>
struct QTypes<Eigen::Dynamic> {
  using Vec = QVec;
  using Mat = QMat;
};

constexpr Index fixed_or(int compile_time, Index runtime) {
  return compile_time == Eigen::Dynamic ? runtime : static_cast<Index>(compile_time);
}

template <typename Fn>
decltype(auto) with_q(Index q, Fn&& fn) {
  switch (q) {
    case 1: return fn(std::integral_constant<int, 1>{});
    case 2: return fn(std::integral_constant<int, 2>{});
    case 3: return fn(std::integral_constant<int, 3>{});
    default: return fn(std::integral_constant<int, Eigen::Dynamic>{});
  }
}

struct GlmmData {
  GroupedData obs;                  // x (N x p), z (N x q), y, trials, offset, groups
  std::vector<Index> centred_cols;  // fixed columns attached to a random term (centred)
  std::vector<Index> centred_term;  // for each of them, its random term
  RowMatrix centred_value;          // m x p_C: w_jc
  Matrix centred_cross;             // p_C x p_C: sum_j w_ja w_jb
  std::vector<Index> free_cols;     // the other fixed columns (block Metropolis)
  Matrix x_free;                    // N x p_free: those columns of x (column-major)
  Matrix z_cols;                    // N x q: z, column-major (vectorised block passes)
  Index intercept_term = -1;        // a random term whose Z column is all ones, or -1
  RowMatrix xbar_free;              // m x p_free: group means of x_free (if intercept_term)
  // The free block's Newton move (steps/fixed_effects.hpp) shifts, with beta_F by delta, every
  // group's intercept by -xbar_j' delta and the intercept's centred coefficients (its mean
  // mu_j0 = w_j' beta_C0) by -C delta, C the least-squares fit of xbar_j on w_j; the groups'
  // prior then sees only the residuals xbar_j - C' w_j. free_shift = d beta / d delta (p x
  // p_free: the identity on the free columns, -C on those centred ones).
  Matrix free_shift;
  RowMatrix xbar_resid;             // m x p_free: xbar_j - C' w_j
  Matrix xbar_resid_cross;          // p_free x p_free: sum_j of their outer products
  std::vector<ExtraBlock> extra;    // further random-effect blocks (random_blocks.hpp)
  // Families with a dispersion: the distinct (y, trials) pairs and how often each occurs; the
  // phi-dependent constant of the log-likelihood is summed over these (steps/glmm_dispersion.hpp)
  Vector distinct_y, distinct_trials, distinct_count;
  double total_weight = 0.0;        // N, or the sum of the case weights
  // Cumulative families: the number of categories K and the rows of each (steps/cutpoints.hpp)
  int categories = 0;
  steps::CategoryRows category_rows;
  // Zero-inflated families with a zi formula: its centred columns and the slopes' prior
  // (steps/zero_inflation.hpp); inactive (no columns) otherwise
  steps::ZiDesign zi;

  Index p() const { return obs.p(); }
  Index q() const { return obs.q(); }
  Index m() const { return obs.n_groups(); }
  Index p_free() const { return static_cast<Index>(free_cols.size()); }
  Index p_centred() const { return static_cast<Index>(centred_cols.size()); }
};

// Checks each (X column, Z term) pair (X col == Z col, or Z col all ones and X col constant
// within groups) and builds x_free.
// categories: K for the cumulative families (y holds codes 0 .. K - 1), else 0.
GlmmData make_glmm_data(const GroupedData& obs,
                        const std::vector<std::pair<Index, Index>>& centred,
                        int categories = 0);

struct GlmmPriors {
  Vector beta_mean;                   // m0 (p)
  Matrix beta_cov;                    // V0 (p x p)
  steps::CovariancePrior cov;         // on Sigma (steps/covariance_prior.hpp)
  std::vector<steps::CovariancePrior> extra_cov;  // on each extra block's Sigma_k
  double phi_shape = 0.0;             // gaussian: sigma^2 ~ IG(a0, b0)
  double phi_scale = 0.0;
  steps::DispersionPrior dispersion;  // negbinomial / beta-binomial phi, gamma shape, ZI odds
  steps::DispersionPrior dispersion2;  // the second parameter (HasSecondDispersion)
  // cumulative families: the cutpoints' prior and the intercept's column; the intercept's prior
  // mean follows the cutpoints (sync_intercept_prior), so each chain works on its own copy
  steps::CutpointPrior cutpoints;
  const steps::DispersionPrior& family_prior(int which) const {
    return which == 0 ? dispersion : dispersion2;
  }
  // derived (prepare_priors)
  Matrix beta_prec;                   // Q0 = V0^{-1}
  Matrix free_shift_prec;             // A' Q0 A, A = GlmmData::free_shift (the Newton move)
};

void prepare_priors(const GlmmData& d, GlmmPriors& priors);

// mu_j (q): the centre of gamma_j, sum_c w_jc beta_c per term (0 for uncentred terms).
template <typename Out>
void group_centre(const GlmmData& d, const Vector& beta, Index g, Out& mu) {
  mu.setZero(d.q());
  for (std::size_t a = 0; a < d.centred_cols.size(); ++a)
    mu[d.centred_term[a]] +=
        d.centred_value(g, static_cast<Index>(a)) * beta[d.centred_cols[a]];
}

// gamma_j - mu_j for every group (m x q).
inline RowMatrix group_deviations(const GlmmData& d, const Vector& beta, const RowMatrix& gamma) {
  RowMatrix dev = gamma;
  for (std::size_t a = 0; a < d.centred_cols.size(); ++a) {
    const double bc = beta[d.centred_cols[a]];
    dev.col(d.centred_term[a]) -= bc * d.centred_value.col(static_cast<Index>(a));
  }
  return dev;
}

enum class GroupKernel : int { Laplace = 0, RandomWalk = 1 };

struct GlmmConfig {
  std::int64_t draws = 1000;
  std::int64_t warmup = 1000;
  std::int64_t thin = 1;
  int threads = 0;
  // Threads are capped at N / min_rows_per_thread (at least 1): on small data a parallel
  // region costs more than it saves. Draws never depend on the thread count.
  std::int64_t min_rows_per_thread = 2000;
  GroupKernel kernel = GroupKernel::Laplace;
  double rw_scale = 0.5;          // random walk: initial c_j (the course notes' 1/2)
  double rw_target = 0.35;        // random walk: acceptance target of the c_j adaptation
  bool adapt_rw = true;           // random walk: adapt c_j in warm-up (frozen afterwards)
  double fixed_target = 0.3;      // random walk: acceptance target of the free block's scale c
  bool keep_group_effects = true;
  bool interweave = true;         // Laplace kernel: ASIS step of (beta_C, L) (steps/interweave.hpp)
  bool marginal_move = true;      // Laplace kernel: after warm-up, the independence move of
                                  // (beta_C, L) along the groups' approximate posteriors
                                  // (steps/marginal_move.hpp)
  bool translation = true;        // extra blocks: the translation moves (steps/extra_blocks.hpp)
  bool non_centred_slice = true;  // Laplace kernel, many terms and few groups: slice steps of
                                  // beta_C and Sigma with eta fixed (steps/non_centred_slice.hpp)
  std::int64_t non_centred_slice_max_groups = 200;  // q = 1 and at most this many groups: the
                                  // slice step of the log SD alone (seeds, 21 plates: SD bulk
                                  // ESS 381-1714 -> 1956-2113 over 5 seeds; B3's 2,000 groups
                                  // gain nothing and would pay twice the sweep)
  int non_centred_slice_passes = 2;  // by term on at most non_centred_slice_max_groups groups:
                                     // slice passes a sweep (tumors, q = 5 on 21 mice, seeds
                                     // 1-10: min ESS 514-709 -> 721-867, max R-hat up to 1.013
                                     // -> 1.009, 2.8 -> 4.1 s a fit)
  bool non_centred_slice_double_jacobian = false;  // TESTING ONLY: a deliberately wrong slice
  bool drop_proposal_correction = false;  // TESTING ONLY: a deliberately wrong Laplace kernel
  bool unshifted_centred_mean = false;    // TESTING ONLY: the free block's Newton move forgets
                                          // to shift the intercept's centred coefficients
  bool collapsed_drop_normaliser = false;  // TESTING ONLY: the collapsed nested scale move
                                           // forgets the Gaussian integral's h_p^{-1/2}
  bool zi_drop_slope_prior = false;  // TESTING ONLY: the zi formula's step forgets its slopes'
                                     // prior
  double phi_init = 0.0;          // gaussian: initial sigma^2 (<= 0: var(y)); a dispersion
                                  // family: initial phi (<= 0: the GLM's joint mode, jittered)
};

// Per-group caches of the data part at (gamma_j, free beta): the log-likelihood kernel, the
// score Z_j' u and the Fisher information Z_j' W Z_j (q*q, row-major).
struct GroupCache {
  Vector ll;
  RowMatrix grad;
  RowMatrix info;
  bool valid = false;
  void resize(Index m, Index q) {
    ll.setZero(m);
    grad.setZero(m, q);
    info.setZero(m, q * q);
    valid = false;
  }
  template <typename V, typename M>
  void store(Index g, double value, const V& score, const M& information) {
    const Index q = score.size();
    ll[g] = value;
    for (Index k = 0; k < q; ++k) {
      grad(g, k) = score[k];
      for (Index l = 0; l < q; ++l) info(g, k * q + l) = information(k, l);
    }
  }
};

// A log-likelihood with its gradient and information in some coordinates, summed over groups
// (the parts of a chunked_reduce).
struct DataTerms {
  double ll = 0.0;
  Vector grad;
  Matrix info;
  DataTerms& operator+=(const DataTerms& o) {
    ll += o.ll;
    grad += o.grad;
    info += o.info;
    return *this;
  }
};

// What warm-up tunes and sampling freezes.
struct GlmmAdaptation {
  Vector log_rw_scale;         // m: log c_j (random-walk kernel)
  double log_fixed_scale = 0;  // random-walk kernel: log c of the free block's proposal
  // the family parameters' slice widths on log phi and log phi2 (steps/dispersion_slice.hpp)
  steps::SliceWidth dispersion_width, dispersion2_width;
  std::vector<steps::SliceWidth> cut_width;  // the cutpoints' slice widths (cumulative)
  Matrix fixed_chol;           // random-walk kernel, p_free x p_free: Cholesky factor of V_F
};

// Scratch space reused across sweeps (no meaning between steps).
struct GlmmWorkspace {
  RowMatrix eta;   // m x q: the interweaving and marginal moves' non-centred effects
  Vector eta_rows; // N: the full linear predictor (the extra blocks' steps)
  std::vector<double> zero_terms;  // zero-inflated Poisson: e^-mu_i of the zero rows
  std::vector<double> zero_weights;  // and their case weights
};

// One chain: its Markov state (what the steps draw), the caches derived from it, the
// adaptation and the workspace. Steps write only this (and StepInfo).
struct GlmmState {
  // -- the Markov state
  Vector beta;        // p
  RowMatrix gamma;    // m x q: b_j + mu (centred terms) / b_j (others)
  Matrix sigma;       // q x q
  Matrix sigma_prec;  // Sigma^{-1}
  Matrix sigma_chol;  // lower Cholesky factor of Sigma
  double phi = 1.0;   // gaussian residual variance, a family's dispersion (HasDispersion), else 1
  double phi2 = 1.0;  // a family's second parameter (HasSecondDispersion), else 1
  Vector theta;       // cumulative families: the cutpoints relative to the intercept, theta_0 = 0
  std::vector<ExtraBlockState> extra;  // the extra blocks' effects and covariances
  steps::ZiState zi;  // a zi formula's slopes and the rows' shifts (the family reads them)

  // -- derived from it: the group caches at the current state, and at a proposed move
  GroupCache cache;
  GroupCache proposal;
  GlmmAdaptation adapt;
  GlmmWorkspace work;

  FamilyParams params() const {
    return {phi, phi2, theta.size() > 0 ? theta.data() : nullptr, static_cast<int>(theta.size())};
  }
  void set_param(int which, double v) { (which == 0 ? phi : phi2) = v; }
  // A move that computed its caches in `proposal` and was accepted makes them current.
  void commit_proposal() {
    cache.ll.swap(proposal.ll);
    cache.grad.swap(proposal.grad);
    cache.info.swap(proposal.info);
  }
  void set_sigma(const Matrix& s);  // Sigma, its Cholesky factor and inverse (throws if not SPD)
  // Transactional form for the moves: factor first (false if not SPD, state untouched), then
  // commit_sigma cannot fail.
  struct SigmaFactors {
    Matrix sigma, chol, prec;
  };
  static bool factor_sigma(const Matrix& s, SigmaFactors& out);
  void commit_sigma(SigmaFactors&& f);
};

// What one sweep reports.
struct GlmmStepInfo {
  std::vector<std::uint8_t> group_accepted;  // m
  std::vector<double> group_accept_prob;     // m: min(1, MH ratio)
  bool fixed_accepted = false;
  double fixed_accept_prob = 0.0;
  bool interweave_accepted = false;
  bool marginal_accepted = false;
  std::vector<ExtraStepInfo> extra;          // one per extra block
};

// Cumulative families: beta_0's prior given the cutpoints is N(mean(theta), s^2 / (K - 1))
// (steps/cutpoints.hpp); its variance is in the prior covariance, its mean is set here.
inline void sync_intercept_prior(GlmmPriors& pr, const GlmmState& s) {
  pr.beta_mean[pr.cutpoints.intercept_col] = steps::intercept_prior_mean(s.theta);
}

}  // namespace bglmm
