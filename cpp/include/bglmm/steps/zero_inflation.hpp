// bglmm/steps/zero_inflation.hpp — the zero-inflation's own linear predictor (brms's
// `zi ~ x`): row i's log odds of a structural zero are l_i = l0 + s_i, s_i = x_i' alpha over the
// centred columns of the zi design, so that l0 is the log odds at the covariates' means and its
// prior is the Beta prior of zi there (brms puts its intercept priors on centred predictors
// too). The families read s_i through the trials slot (zero_inflated_poisson.hpp,
// zero_inflated_negative_binomial.hpp); the samplers hold l0 as the family's odds e^l0.
//
// Given the count part, the log-likelihood in (l0, alpha) is
//   sum_i w_i ( [y_i = 0] log(e^l_i + p0_i) - log(1 + e^l_i) ),  p0_i = P(count = 0 | eta_i),
// with log p0_i computed once per step (-mu_i for the Poisson, -phi log(1 + mu_i / phi) for the
// negative binomial). Priors: l0 as the family's zi prior (dispersion_slice.hpp, Beta on
// inv_logit(l0)), alpha_k ~ N(0, prior_sd_k^2). The step: adaptive Metropolis-Hastings on
// (l0, alpha) jointly (adaptive_mh.hpp: random walks whose covariance is learned in warm-up, and
// an independence proposal after it), each evaluation one pass over the rows in fixed chunks.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "bglmm/error.hpp"
#include "bglmm/glm.hpp"
#include "bglmm/links/special.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/steps/adaptive_mh.hpp"
#include "bglmm/steps/dispersion_slice.hpp"
#include "bglmm/types.hpp"

namespace bglmm::steps {

constexpr std::int64_t kZiChunk = 4096;  // rows per reduction chunk (fixed: determinism)

// The zi formula's columns (without its intercept) and the slopes' prior.
struct ZiDesign {
  Matrix x;         // N x p_zi: each column minus its mean
  Vector prior_sd;  // alpha_k ~ N(0, prior_sd_k^2)
  Index p() const { return x.cols(); }
  bool active() const { return x.cols() > 0; }
};

// The design from the caller's columns (centred by the caller; any columns are valid, centring
// makes l0 the odds at the means and mixes better), checked against the data and family.
inline ZiDesign make_zi_design(ConstRowMatrixRef x, const Vector& prior_sd, Index rows,
                               bool zero_inflated, const DispersionPrior& odds_prior) {
  ZiDesign z;
  if (x.cols() == 0) return z;
  if (!zero_inflated)
    throw std::invalid_argument("zi formula: only the zero-inflated families have one");
  check_size_match("zi formula", "rows of its design", x.rows(), "rows of the data", rows);
  check_size_match("zi formula", "prior SDs", prior_sd.size(), "columns of its design", x.cols());
  check_all_finite("zi formula", "design", Eigen::Map<const Vector>(x.data(), x.size()));
  for (Index k = 0; k < prior_sd.size(); ++k) check_positive("zi formula", "prior SD", prior_sd[k]);
  if (odds_prior.kind == DispersionPriorKind::Fixed)
    throw std::invalid_argument("zi formula: its intercept cannot be fixed (give zi a Beta prior)");
  z.x = x;
  z.prior_sd = prior_sd;
  return z;
}

// The step's moves and random numbers: three random walks (and, after warm-up, first the
// independence proposal), from the Dispersion stream's slots 2..9 (slot 0: the slice steps of
// the family's parameters, 1: the cutpoints').
inline AdaptiveMhArgs zi_step_args(rng::ChainKey key, std::uint64_t iteration, bool warmup,
                                   std::int64_t warmup_length) {
  AdaptiveMhArgs a;
  a.key = key;
  a.iteration = iteration;
  a.adapt = warmup;
  a.warmup = warmup_length;
  a.random_walks = 3;
  a.slot_base = 2;
  a.stream = rng::Stream::Dispersion;
  return a;
}

// A chain's slopes, the rows' shifts x alpha (which the family reads), and the step's proposal.
struct ZiState {
  Vector alpha;
  Vector shift;       // N
  AdaptiveProposal proposal;
  Vector shift_prop;  // scratch: the shifts at a proposal
  std::vector<Index> zero_rows;
  Vector log_p0;      // log P(count = 0 | eta_i) on the zero rows
};

// A chain's start: the N rows' shifts at 0 (every row at the intercept's odds; so they stay
// without a zi formula), the slopes at 0, and a first random walk of about the posterior's
// scale: 2 / sqrt(N) on l0, 2 / (sd(x_k) sqrt(N)) on alpha_k, at most the prior SD.
inline void zi_start(const ZiDesign& z, Index rows, ZiState& st) {
  st.shift = Vector::Zero(rows);
  if (!z.active()) return;
  const Index n = z.x.rows(), p = z.p();
  st.alpha = Vector::Zero(p);
  st.shift_prop = Vector::Zero(n);
  const double root_n = std::sqrt(static_cast<double>(std::max<Index>(n, 1)));
  Vector step(p + 1);
  step[0] = 2.0 / root_n;
  for (Index k = 0; k < p; ++k) {
    const double sd_x = std::sqrt(z.x.col(k).squaredNorm() / static_cast<double>(std::max<Index>(n, 1)));
    step[k + 1] = std::min(z.prior_sd[k], 2.0 / (std::max(sd_x, 1e-12) * root_n));
  }
  st.proposal = make_adaptive_proposal(step);
}

// sum_i w_i ( [y_i = 0] log(e^l_i + p0_i) - log(1 + e^l_i) ) at l_i = l0 + shift_i.
inline double zi_log_lik(double l0, const Vector& shift, const ZiState& st,
                         ConstVectorRef weights, int threads) {
  const bool weighted = weights.size() > 0;
  const double all = chunked_sum(shift.size(), kZiChunk, threads,
                                 [&](std::int64_t begin, std::int64_t end) {
    double total = 0.0;
    for (std::int64_t i = begin; i < end; ++i)
      total -= (weighted ? weights[i] : 1.0) * links::log1p_exp(l0 + shift[i]);
    return total;
  });
  double zeros = 0.0;
  for (std::size_t k = 0; k < st.zero_rows.size(); ++k) {
    const Index i = st.zero_rows[k];
    const double l = l0 + shift[i], a = st.log_p0[static_cast<Index>(k)];
    const double hi = std::max(l, a), lo = std::min(l, a);
    zeros += (weighted ? weights[i] : 1.0) * (hi + std::log1p(std::exp(lo - hi)));
  }
  return all + zeros;
}

// log P(count = 0 | eta) of a zero-inflated family's count part: -mu (Poisson), or
// -phi log(1 + mu / phi) (the negative binomial, whose size is phi).
template <typename G>
double log_count_zero(double eta, const FamilyParams& fp) {
  static_assert(IsZeroInflated<G>);
  if constexpr (HasSecondDispersion<G>) return G::Family::log_nb_zero(eta, fp.phi);
  else return -std::exp(eta);
}

// One step of (l0, alpha) given the count part's linear predictor eta (N): updates the family's
// odds e^l0 in fp (phi or phi2: ZeroInflationParam<G>), st.alpha and st.shift.
// drop_slope_prior: TESTING ONLY, a deliberately wrong target without the slopes' prior.
template <typename G>
void zero_inflation_step(const ZiDesign& z, const DispersionPrior& zi_prior, ConstVectorRef y,
                         ConstVectorRef weights, const Vector& eta, FamilyParams& fp,
                         ZiState& st, const AdaptiveMhArgs& args, int threads,
                         bool drop_slope_prior = false) {
  constexpr int which = ZeroInflationParam<G>;
  st.zero_rows.clear();
  for (Index i = 0; i < y.size(); ++i)
    if (y[i] == 0.0) st.zero_rows.push_back(i);
  st.log_p0.resize(static_cast<Index>(st.zero_rows.size()));
  for (std::size_t k = 0; k < st.zero_rows.size(); ++k)
    st.log_p0[static_cast<Index>(k)] = log_count_zero<G>(eta[st.zero_rows[k]], fp);
  const Index p = z.p();
  const auto log_target = [&](const Vector& v, const Vector& shift) {
    if (!(std::fabs(v[0]) <= kMaxAbsLogPhi)) return -std::numeric_limits<double>::infinity();
    const double slopes = 0.5 * v.tail(p).cwiseQuotient(z.prior_sd).squaredNorm();
    const double prior = dispersion_log_prior(zi_prior, v[0]) - (drop_slope_prior ? 0.0 : slopes);
    return zi_log_lik(v[0], shift, st, weights, threads) + prior;
  };
  Vector v(p + 1);
  v[0] = std::log(fp.get(which));
  v.tail(p) = st.alpha;
  double current = log_target(v, st.shift);
  adaptive_mh(
      st.proposal, v, current, args,
      [&](const Vector& vp) {
        st.shift_prop.noalias() = z.x * vp.tail(p);
        return log_target(vp, st.shift_prop);
      },
      [&] { st.shift = st.shift_prop; });  // a copy: the family reads st.shift's memory
  fp = fp.with(which, std::exp(v[0]));
  st.alpha = v.tail(p);
}

}  // namespace bglmm::steps
