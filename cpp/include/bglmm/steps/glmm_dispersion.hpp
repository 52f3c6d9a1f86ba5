// bglmm/steps/glmm_dispersion.hpp — Gibbs update of the gaussian GLMM's residual variance:
// sigma^2 | . ~ IG(a0 + N/2, b0 + SSR/2), SSR = sum_i (y_i - eta_i)^2 (Hoff 2009, §11.1).
// SSR is summed per group in parallel, then over groups in order (thread-count independent).
#pragma once
#include <vector>

#include "bglmm/glmm_model.hpp"
#include "bglmm/linear_predictor.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/rng/distributions.hpp"
#include "bglmm/steps/group_mh.hpp"

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
        total += r * r;
      }
      part[static_cast<std::size_t>(g)] = total;
    });
  }
  vault.rethrow();
  double ssr = 0.0;
  for (double v : part) ssr += v;
  return ssr;
}

// Draws phi = sigma^2; the group caches depend on phi and are marked stale.
inline void dispersion_step(const GlmmData& d, const GlmmPriors& pr, GlmmState& s, int threads,
                            rng::Rng& rng) {
  const double ssr = residual_sum_of_squares(d, s, threads);
  s.phi = rng::inv_gamma_rng(pr.phi_shape + 0.5 * static_cast<double>(d.obs.rows()),
                             pr.phi_scale + 0.5 * ssr, rng);
  s.cache.valid = false;
}

}  // namespace bglmm::steps
