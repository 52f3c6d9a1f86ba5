// bglmm/steps/non_centred_slice.hpp — slice steps of the primary block's centred means and of
// every coordinate of its covariance in the non-centred parameterisation.
//
// Hold the standardised effects eta_j = L^{-1} (gamma_j - mu_j(beta_C)) fixed, so that
// gamma_j = mu_j(beta_C) + L(x) eta_j, with x = (log s_1..log s_q, the CPCs of Omega) the
// coordinates of Sigma = D Omega D of covariance_prior.hpp. Since eta's prior does not involve
// (beta_C, x), the target of each coordinate given everything else is
//   log p(v | .) = sum_i log f(y_i | gamma(v)) + log p(beta_C) + log p(x) + const,
// which this step samples exactly, one coordinate at a time, by univariate slice sampling
// (Neal 2003): each centred coefficient, then each log SD, then each CPC; one pass over the
// data per evaluation.
//
// Why: in a model with many terms and few groups (the tumour model: q = 5, 21 mice) an SD that
// the data hardly inform wanders into the neck of its funnel. There the Newton proposals of the
// interweaving step are built from an almost flat log-likelihood and the centred conditional
// of the SD is pinned by the tiny effects, so a chain that reached s_k ~ 0.05 stayed there for
// hundreds of sweeps (bulk ESS 144-214 of 4,000, R-hat up to 1.036). The slice step follows the
// exact conditional whatever its curvature: near zero it is the prior's, on the log scale
// about as wide as the prior itself. The sweep runs it where interweaving goes term by term,
// and (sds_only: the log SD alone) for a single random term on few groups, where the same
// funnel held the seeds model's plate SD (bulk ESS 381, tail ESS 134 at one seed).
//
// Sums over groups run over fixed chunks added in order, so draws do not depend on the thread
// count. The step leaves the group caches invalid; the caller refreshes them.
#pragma once
#include <cmath>
#include <limits>

#include "bglmm/error.hpp"
#include "bglmm/glmm_model.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/covariance_prior.hpp"
#include "bglmm/steps/group_mh.hpp"
#include "bglmm/steps/slice.hpp"

namespace bglmm::steps {

// Hyper-stream slots of this step: kNonCentredSliceSlot + c for coordinate c of x, then
// kNonCentredSliceSlot + dim(x) + a for centred coefficient a (clear of the interweaving
// step's 0/1 and 100 + 2b, and the marginal move's 2/3).
constexpr std::uint64_t kNonCentredSliceSlot = 300;
// slots per pass: Sigma's q (q + 1) / 2 <= 78 coordinates and at most 12 centred means
constexpr std::uint64_t kNonCentredSlicePassSlots = 100;

namespace detail {
// sum_g log f(y_g | gamma_g) at the effects `gamma` (m x q), over fixed chunks of groups added
// in order (chunked_sum), so that the sum does not depend on the thread count.
template <typename G>
double log_lik_at(const GlmmData& d, const GlmmState& s, const Vector& beta_free,
                  const RowMatrix& gamma, int threads) {
  const double total = chunked_sum(d.m(), 64, threads, [&](std::int64_t begin, std::int64_t end) {
    QVec grad;
    QMat info;
    double part = 0.0;
    for (Index g = begin; g < end; ++g)
      part += group_data_pass<G, false>(d, g, beta_free.data(), gamma.row(g).data(), s.params(),
                                        grad, info);
    return part;
  });
  return std::isfinite(total) ? total : -std::numeric_limits<double>::infinity();
}
}  // namespace detail

// One slice update of every centred mean coefficient, then of every coordinate of Sigma (the
// log SDs, then the CPCs), all in the non-centred parameterisation with eta fixed. Group
// caches valid on entry; writes beta, gamma and Sigma and leaves the caches invalid.
// `double_jacobian` (TESTING ONLY: the Geweke tests' negative control) counts the log-scale
// Jacobian s_k of the SDs' prior twice. `pass` numbers the calls within one sweep (each draws
// from its own slots: kNonCentredSliceSlot + kNonCentredSlicePassSlots * pass + ...).
template <typename G>
void non_centred_slice_step(const GlmmData& d, const GlmmPriors& pr, GlmmState& s,
                            rng::ChainKey key, std::uint64_t iteration, int threads,
                            bool sds_only = false, bool double_jacobian = false, int pass = 0) {
  const std::uint64_t slot0 = kNonCentredSliceSlot +
                              kNonCentredSlicePassSlots * static_cast<std::uint64_t>(pass);
  const Index q = d.q();
  Vector x;
  if (!unconstrained_from_sigma(s.sigma, x))
    throw NumericalError("non-centred slice step: the current Sigma is not positive definite");
  const Vector beta_free = free_coefficients(d, s.beta);
  RowMatrix eta = group_deviations(d, s.beta, s.gamma);
  s.sigma_chol.triangularView<Eigen::Lower>().solveInPlace(eta.transpose());  // L^{-1} each row
  RowMatrix gamma = s.gamma;
  // centred means: gamma_jt = mu_jt(beta) + (L eta_j)_t with L eta_j fixed. The initial width
  // is the prior's conditional SD: it may not depend on the current state (the kernel would no
  // longer be reversible), and shrinkage narrows it geometrically.
  for (std::size_t a = 0; a < (sds_only ? 0 : d.centred_cols.size()); ++a) {
    const Index col = d.centred_cols[a], term = d.centred_term[a];
    const Index ai = static_cast<Index>(a);
    const Vector rest = s.gamma.col(term) - s.beta[col] * d.centred_value.col(ai);
    Vector beta = s.beta;
    auto log_target = [&](double v) {
      beta[col] = v;
      const Vector r = beta - pr.beta_mean;
      gamma.col(term) = rest + v * d.centred_value.col(ai);
      return -0.5 * r.dot(pr.beta_prec * r) +
             detail::log_lik_at<G>(d, s, beta_free, gamma, threads);
    };
    rng::Rng rng(key, iteration, slot0 + static_cast<std::uint64_t>(x.size()) + a,
                 rng::Stream::Hyper);
    const double prec = pr.beta_prec(col, col);
    const double v = slice_step(log_target, s.beta[col], prec > 0.0 ? 1.0 / std::sqrt(prec) : 1.0,
                                rng);
    s.beta[col] = v;
    s.gamma.col(term) = rest + v * d.centred_value.col(ai);
    gamma = s.gamma;
  }
  // Sigma's coordinates x: gamma_j = mu_j + L(x) eta_j
  const RowMatrix centre = s.gamma - group_deviations(d, s.beta, s.gamma);  // mu_j
  Matrix chol;
  for (Index c = 0; c < (sds_only ? q : x.size()); ++c) {
    Vector xt = x;
    auto log_target = [&](double t) {
      xt[c] = t;
      double lp = covariance_log_prior_unconstrained(pr.cov, xt, q);
      if (double_jacobian && c < q) lp += t;
      if (!std::isfinite(lp) || !chol_from_unconstrained(xt, q, chol))
        return -std::numeric_limits<double>::infinity();
      gamma = centre + eta * chol.transpose();
      return lp + detail::log_lik_at<G>(d, s, beta_free, gamma, threads);
    };
    rng::Rng rng(key, iteration, slot0 + static_cast<std::uint64_t>(c), rng::Stream::Hyper);
    x[c] = slice_step(log_target, x[c], 1.0, rng);
  }
  if (!chol_from_unconstrained(x, q, chol))
    throw NumericalError("non-centred slice step overflowed");
  s.gamma = centre + eta * chol.transpose();
  s.set_sigma(chol * chol.transpose());
  s.cache.valid = false;
}

}  // namespace bglmm::steps
