// bglmm/steps/glmm_dispersion.hpp — the GLMM's dispersion given everything else.
// Gaussian: Gibbs update of the residual variance, sigma^2 | . ~ IG(a0 + N/2, b0 + SSR/2),
// SSR = sum_i (y_i - eta_i)^2 (Hoff 2009, §11.1); SSR is summed per group in parallel, then over
// groups in order. Families with a dispersion (negbinomial / beta-binomial phi, gamma shape, the
// zero-inflated families' odds): the slice step of dispersion_slice.hpp on log phi (and on log
// phi2 for a family with two), whose likelihood is the full sum_i log p(y_i | eta_i, phi, phi2)
// at the current linear predictor. Either way the draws do not
// depend on the thread count, and the group caches (which depend on phi) are marked stale.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "bglmm/glm.hpp"
#include "bglmm/glmm_model.hpp"
#include "bglmm/likelihood_block.hpp"
#include "bglmm/linear_predictor.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/rng/distributions.hpp"
#include "bglmm/steps/dispersion_slice.hpp"
#include "bglmm/steps/zero_inflation.hpp"

namespace bglmm::steps {

inline double residual_sum_of_squares(const GlmmData& d, const GlmmState& s, int threads) {
  const Index m = d.m(), q = d.q();
  std::vector<double> part(static_cast<std::size_t>(m));
  const Vector beta_free = free_coefficients(d, s.beta);
  ExceptionVault vault;
  (void)threads;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, group_chunk(m, threads)) num_threads(threads)
#endif
  for (Index g = 0; g < m; ++g) {
    vault.run([&] {
      double total = 0.0;
      const Index begin = d.obs.begin(g), end = begin + d.obs.size(g);
      for (Index i = begin; i < end; ++i) {
        const double r = d.obs.y[i] - row_eta(d, i, beta_free.data(), s.gamma.data() + g * q);
        total += d.obs.weight(i) * r * r;
      }
      part[static_cast<std::size_t>(g)] = total;
    });
  }
  vault.rethrow();
  double ssr = 0.0;
  for (double v : part) ssr += v;
  return ssr;
}

// Draws phi = sigma^2.
inline void dispersion_step(const GlmmData& d, const GlmmPriors& pr, GlmmState& s, int threads,
                            rng::Rng& rng) {
  const double ssr = residual_sum_of_squares(d, s, threads);
  s.phi = rng::inv_gamma_rng(pr.phi_shape + 0.5 * d.total_weight,
                             pr.phi_scale + 0.5 * ssr, rng);
  s.cache.valid = false;
}

// The phi-dependent constants of the log-likelihood, summed over the distinct (y, trials) pairs.
template <typename G>
double dispersion_constants(const GlmmData& d, const FamilyParams& fp) {
  double total = 0.0;
  for (Index k = 0; k < d.distinct_y.size(); ++k)
    total += d.distinct_count[k] * G::log_constant(d.distinct_y[k], d.distinct_trials[k], fp);
  return total;
}

// sum_i log p(y_i | eta_i, phi, phi2) at eta_rows: the kernels by the vectorised block forms
// over fixed row chunks, the constants over the distinct (y, trials) pairs.
template <typename G>
double dispersion_log_lik(const GlmmData& d, const Vector& eta_rows, const FamilyParams& fp,
                          int threads) {
  const double kernels = chunked_sum(d.obs.rows(), kRowChunk, threads,
                                     [&](std::int64_t begin, std::int64_t end) {
    double total = 0.0;
    BlockArray eta, yb, nb;
    for (Index start = begin; start < end; start += kLikBlock) {
      const Index len = std::min<Index>(kLikBlock, end - start);
      load_block(d.obs.y.data(), d.obs.trials.data(), start, len, yb, nb, eta);
      for (Index i = 0; i < len; ++i) eta[i] = eta_rows[start + i];
      total += lik_kernel<G>(yb, nb, eta, d.obs.weights_from(start), fp, len);
    }
    return total;
  });
  return kernels + dispersion_constants<G>(d, fp);
}

// Draws a family's dispersion phi, then its second parameter phi2 if it has one, each by one
// slice step on its log given the other (eta_rows is scratch). In warm-up (adapt) each step's
// width follows the spread of the draws of its log (SliceWidth). For the zero-inflated Poisson
// only the zero rows' terms depend on phi: its target sums over those alone (the same function
// of phi up to a constant, at a fraction of a likelihood pass per evaluation); for the negative
// binomial the means mu_i are computed once per step.
template <typename G>
void family_dispersion_step(const GlmmData& d, const GlmmPriors& pr, GlmmState& s, int threads,
                            bool adapt, rng::Rng& rng) {
  static_assert(HasDispersion<G>);
  if constexpr (std::is_same_v<G, ZeroInflatedPoissonLog>) {
    if (d.zi.active()) return;  // its odds move with the zi formula's slopes (zi_formula_step)
  }
  full_linear_predictor(d, s, s.work.eta_rows, threads);
  GlmmAdaptation& ad = s.adapt;
  const auto draw_phi = [&](const auto& log_lik) {
    s.phi = dispersion_slice_step(log_lik, s.phi, pr.dispersion, rng, ad.dispersion_width.width);
    if (adapt) ad.dispersion_width.learn(std::log(s.phi));
    s.cache.valid = false;
  };
  if constexpr (std::is_same_v<G, ZeroInflatedPoissonLog>) {
    // only the zeros' terms and the constant depend on the odds phi:
    // sum_{y_i = 0} log(phi + e^-mu_i) - N log(1 + phi), with e^-mu_i computed once per step
    // (times the rows' weights)
    std::vector<double>& a = s.work.zero_terms;
    std::vector<double>& wa = s.work.zero_weights;
    a.clear();
    wa.clear();
    for (Index i = 0; i < d.obs.rows(); ++i)
      if (d.obs.y[i] == 0.0) {
        a.push_back(std::exp(-std::exp(s.work.eta_rows[i])));
        wa.push_back(d.obs.weight(i));
      }
    const double n_rows = d.total_weight;
    const auto log_lik_odds = [&](double phi) {
      double total = 0.0;
      for (std::size_t k = 0; k < a.size(); ++k) total += wa[k] * std::log(phi + a[k]);
      return total - n_rows * std::log1p(phi);
    };
    draw_phi(log_lik_odds);
    return;
  }
  if constexpr (std::is_same_v<G, NegBinomialLog>) {
    // the kernel is y eta + phi log phi - (phi + y) log(phi + mu): with mu = e^eta computed once
    // per step, an evaluation costs one vectorised log per row (the generic kernel's exp and
    // log1p per row made this step half of a negative-binomial sweep)
    Vector& mu = s.work.eta_rows;
    mu = mu.array().exp();
    const double w_total = d.total_weight;
    const auto log_lik_phi = [&](double phi) {
      const double rows = chunked_sum(d.obs.rows(), kRowChunk, threads,
                                      [&](std::int64_t begin, std::int64_t end) {
        const auto y = d.obs.y.segment(begin, end - begin).array();
        const auto m = mu.segment(begin, end - begin).array();
        if (!d.obs.weighted()) return ((phi + y) * (phi + m).log()).sum();
        const auto w = d.obs.weights.segment(begin, end - begin).array();
        return (w * (phi + y) * (phi + m).log()).sum();
      });
      return w_total * phi * std::log(phi) - rows + dispersion_constants<G>(d, FamilyParams{phi});
    };
    draw_phi(log_lik_phi);
    return;
  }
  const auto log_lik_phi = [&](double phi) {
    return dispersion_log_lik<G>(d, s.work.eta_rows, FamilyParams{phi, s.phi2}, threads);
  };
  draw_phi(log_lik_phi);
  if constexpr (HasSecondDispersion<G>) {
    if (IsZeroInflated<G> && d.zi.active()) return;  // phi2: by zi_formula_step
    const auto log_lik_phi2 = [&](double phi2) {
      return dispersion_log_lik<G>(d, s.work.eta_rows, FamilyParams{s.phi, phi2}, threads);
    };
    s.phi2 = dispersion_slice_step(log_lik_phi2, s.phi2, pr.dispersion2, rng,
                                   ad.dispersion2_width.width);
    if (adapt) ad.dispersion2_width.learn(std::log(s.phi2));
  }
  s.cache.valid = false;
}

// A zero-inflated family's zi formula: its intercept (the family's odds) and slopes given the
// count part (zero_inflation.hpp). The group caches are marked stale.
template <typename G>
void zi_formula_step(const GlmmData& d, const GlmmPriors& pr, GlmmState& s,
                     const AdaptiveMhArgs& args, int threads, bool drop_slope_prior = false) {
  constexpr int which = ZeroInflationParam<G>;
  full_linear_predictor(d, s, s.work.eta_rows, threads);
  FamilyParams fp = s.params();
  zero_inflation_step<G>(d.zi, pr.family_prior(which), d.obs.y, d.obs.weights, s.work.eta_rows,
                         fp, s.zi, args, threads, drop_slope_prior);
  s.set_param(which, fp.get(which));
  s.cache.valid = false;
}

}  // namespace bglmm::steps
