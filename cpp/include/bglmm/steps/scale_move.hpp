// bglmm/steps/scale_move.hpp — joint rescaling of the random effects and their covariance, a
// Metropolis move in the spirit of parameter expansion (Liu & Wu 1999) / the non-centred half
// of ASIS (Yu & Meng 2011). With A = diag(exp(e)), e ~ N(0, s^2 I_q):
//   b_j -> A b_j (gamma_j -> mu_j + A (gamma_j - mu_j)),  Sigma -> A Sigma A.
// p(b | Sigma) is invariant up to |A|^{-m}, which cancels the Jacobian |A|^m of the b map; the
// Sigma map has Jacobian |A|^{q+1}. So
//   log alpha = loglik(gamma*) - loglik(gamma) + log p(Sigma*) - log p(Sigma) + (q + 1) sum e
// (for an SD prior with q = 1: log p(tau*) - log p(tau) + e). The Gibbs step for Sigma given
// the b_j moves slowly when groups carry little information about their effects; this move
// changes the scale of all b_j at once, guided by the likelihood.
// With `shear` (q >= 2) the move is a shear instead, A = I + e E_kl (k > l, cycling over the
// pairs with the iteration): b_jk -> b_jk + e b_jl, |A| = 1, e -> -e reverses it; it moves
// the correlations the same way.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>

#include "bglmm/glmm_model.hpp"
#include "bglmm/linalg/cholesky.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/group_mh.hpp"

namespace bglmm::steps {

// log IW(Sigma | nu, S) up to a constant.
inline double inv_wishart_log_density(const Matrix& sigma, const InverseWishartPrior& prior) {
  const Index q = sigma.rows();
  const Matrix l = linalg::cholesky_lower(sigma, "scale move: Sigma");
  const Matrix inv = linalg::inverse_from_cholesky(l);
  return -0.5 * (prior.df + static_cast<double>(q) + 1.0) * linalg::log_det_from_cholesky(l) -
         0.5 * (prior.scale.cwiseProduct(inv)).sum();
}

struct ScaleMoveArgs {
  rng::ChainKey key;
  std::uint64_t iteration = 0;
  int threads = 1;
  bool adapt = false;
  double gain = 0.0;
  double target = 0.35;
};

// Returns true if accepted. Group caches (with derivatives) valid on entry and exit.
template <typename G>
bool scale_move_step(const GlmmData& d, const GlmmPriors& pr, GlmmState& s,
                     const ScaleMoveArgs& a, bool shear, double& log_step) {
  const Index m = d.m(), q = d.q();
  if (shear && (q < 2 || pr.use_scale_prior)) return false;
  rng::Rng rng(a.key, a.iteration, shear ? 1 : 0, rng::Stream::Hyper);
  QMat A = QMat::Identity(q, q);
  double log_det = 0.0;
  double& used_step = log_step;
  const double step = std::exp(used_step);
  if (shear) {
    const Index pairs = q * (q - 1) / 2;
    Index which = static_cast<Index>((a.iteration / 2) % static_cast<std::uint64_t>(pairs));
    Index k = 1, l = 0;
    while (which-- > 0) {
      if (++l == k) {
        ++k;
        l = 0;
      }
    }
    A(k, l) = step * rng.std_normal();
  } else {
    for (Index k = 0; k < q; ++k) {
      const double e = step * rng.std_normal();
      A(k, k) = std::exp(e);
      log_det += e;
    }
  }
  Vector beta_free(d.p_free());
  for (Index k = 0; k < d.p_free(); ++k) beta_free[k] = s.beta[d.free_cols[k]];
  ExceptionVault vault;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, group_chunk(m, a.threads)) num_threads(a.threads)
#endif
  for (Index g = 0; g < m; ++g) {
    vault.run([&] {
      QVec mu(q), grad(q);
      QMat info(q, q);
      group_centre(d, s.beta, g, mu);
      QVec x = s.gamma.row(g).transpose();
      x = mu + A * (x - mu);
      const double ll =
          group_data_pass<G, true>(d, g, beta_free.data(), x.data(), s.phi, grad, info);
      store_cache(g, ll, grad, info, s.ll_new, s.grad_new, s.info_new);
    });
  }
  vault.rethrow();
  double ll_cur = 0.0, ll_new = 0.0;
  for (Index g = 0; g < m; ++g) {
    ll_cur += s.ll[g];
    ll_new += s.ll_new[g];
  }
  const Matrix a_dyn = A;
  Matrix sigma_new = a_dyn * s.sigma * a_dyn.transpose();
  sigma_new = 0.5 * (sigma_new + sigma_new.transpose());
  double log_prior;
  if (pr.use_scale_prior) {
    log_prior = scale_prior_log_density(pr.scale_prior, std::sqrt(sigma_new(0, 0))) -
                scale_prior_log_density(pr.scale_prior, std::sqrt(s.sigma(0, 0))) + log_det;
  } else {
    log_prior = inv_wishart_log_density(sigma_new, pr.sigma) -
                inv_wishart_log_density(s.sigma, pr.sigma) +
                static_cast<double>(q + 1) * log_det;
  }
  const double log_ratio = std::isfinite(ll_new) ? ll_new - ll_cur + log_prior
                                                 : -std::numeric_limits<double>::infinity();
  const double prob = std::isnan(log_ratio) ? 0.0 : std::min(1.0, std::exp(log_ratio));
  const bool accept = std::log(rng.uniform()) < log_ratio;
  if (accept) {
    for (Index g = 0; g < m; ++g) {
      QVec mu(q);
      group_centre(d, s.beta, g, mu);
      const QVec x = s.gamma.row(g).transpose();
      s.gamma.row(g) = (mu + A * (x - mu)).transpose();
    }
    s.ll.swap(s.ll_new);
    s.grad.swap(s.grad_new);
    s.info.swap(s.info_new);
    s.set_sigma(sigma_new);
  }
  if (a.adapt) used_step = std::clamp(used_step + a.gain * (prob - a.target), -12.0, 2.0);
  return accept;
}

}  // namespace bglmm::steps
