// bglmm/steps/group_mh.hpp — per-group Metropolis-Hastings update of gamma_j, parallel over
// groups (they are conditionally independent given beta, Sigma, phi). Target:
//   log p(gamma_j | .) = sum_{i in j} log f(y_i | eta_i) - (gamma_j - mu)' Sigma^{-1} (gamma_j - mu) / 2.
// Kernels: "laplace" — proposal N(m(gamma), H(gamma)^{-1}), one Newton/IWLS step from the
// current value, m = gamma + H^{-1} grad, H = Z_j' W Z_j + Sigma^{-1} (Gamerman 1997), with the
// reverse proposal density in the MH ratio; "random_walk" — N(gamma, c_j Sigma), c_j adapted
// per group in warm-up only (the course notes' kernel, c = 1/2 to start).
// Each group's random numbers come from Rng(key, iteration, group, GroupProposal), and each
// group writes only its own slots, so the result does not depend on the thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>

#include "bglmm/glmm_model.hpp"
#include "bglmm/linalg/small_cholesky.hpp"
#include "bglmm/linear_predictor.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/accept.hpp"

namespace bglmm::steps {

// Data part of group g at (free beta, gamma): the log-likelihood kernel; with kDerivs also
// the score Z_j'u (grad) and the Fisher information Z_j'WZ_j (info). Works through the
// group's rows in blocks of kLikBlock with the vectorised family kernels.
template <typename G, bool kDerivs, typename V, typename M>
double group_data_pass(const GlmmData& d, Index g, const double* beta_free, const double* gamma,
                       const FamilyParams& fp, V& grad, M& info) {
  const Index q = fixed_or(V::RowsAtCompileTime, d.q());
  const Index begin = d.obs.begin(g), end = begin + d.obs.size(g);
  const Index n_rows = d.obs.rows();
  const double* zc = d.z_cols.data();   // column k of Z at zc + k * n_rows
  if constexpr (kDerivs) {
    grad.setZero(q);
    info.setZero(q, q);
  }
  double ll = 0.0;
  BlockArray eta, yb, nb, u, w;
  for (Index start = begin; start < end; start += kLikBlock) {
    const Index len = std::min(kLikBlock, end - start);
    load_block(d.obs.y.data(), d.obs.trials.data(), start, len, yb, nb, eta);
    block_eta(d, start, len, q, beta_free, gamma, eta.data());
    if constexpr (kDerivs) {
      ll += lik_all<G>(yb, nb, eta, d.obs.weights_from(start), fp, u, w, len);
      const double* uu = u.data();
      const double* ww = w.data();
      for (Index k = 0; k < q; ++k) {
        const double* zk = zc + k * n_rows + start;
        double gk = 0.0;
#pragma omp simd reduction(+ : gk)
        for (Index i = 0; i < len; ++i) gk += uu[i] * zk[i];
        grad[k] += gk;
        for (Index l = 0; l <= k; ++l) {
          const double* zl = zc + l * n_rows + start;
          double hkl = 0.0;
#pragma omp simd reduction(+ : hkl)
          for (Index i = 0; i < len; ++i) hkl += ww[i] * zk[i] * zl[i];
          info(k, l) += hkl;
        }
      }
    } else {
      ll += lik_kernel<G>(yb, nb, eta, d.obs.weights_from(start), fp, len);
    }
  }
  if constexpr (kDerivs) {
    for (Index k = 0; k < q; ++k)
      for (Index l = 0; l < k; ++l) info(l, k) = info(k, l);
  }
  return ll;
}

// Recomputes every group's cache at the current state (after phi changed, or at the start).
template <typename G, bool kDerivs>
void refresh_group_cache(const GlmmData& d, GlmmState& s, int threads) {
  const Index m = d.m(), q = d.q();
  const Vector beta_free = free_coefficients(d, s.beta);
  ExceptionVault vault;
  (void)threads;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, group_chunk(m, threads)) num_threads(threads)
#endif
  for (Index g = 0; g < m; ++g) {
    vault.run([&] {
      QVec grad(q), gamma = s.gamma.row(g).transpose();
      QMat info(q, q);
      const double ll =
          group_data_pass<G, kDerivs>(d, g, beta_free.data(), gamma.data(), s.params(), grad,
                                      info);
      if constexpr (kDerivs) {
        s.cache.store(g, ll, grad, info);
      } else {
        s.cache.ll[g] = ll;
      }
    });
  }
  vault.rethrow();
  s.cache.valid = true;
}

// -(x - mu)' P (x - mu) / 2
template <typename V, typename M>
double gaussian_quad(const V& x, const V& mu, const M& prec) {
  const V r = x - mu;
  return -0.5 * r.dot(prec * r);
}

// Newton/IWLS proposal at x: mean m = x + H^{-1}(grad - P(x - mu)), H = info + P.
// Returns false if H is not numerically positive definite.
template <typename V, typename M>
bool laplace_moments(const V& x, const V& grad, const M& info, const V& mu, const M& prec,
                     V& mean, linalg::SmallCholesky<M>& llt) {
  const M h = info + prec;
  if (!llt.compute(h)) return false;
  const V g = grad - prec * (x - mu);
  mean = x + llt.solve(g);
  return mean.allFinite();
}

// log N(x | mean, H^{-1}) up to a constant, H = L L'.
template <typename V, typename M>
double laplace_log_density(const V& x, const V& mean, const linalg::SmallCholesky<M>& llt) {
  const V r = llt.upper_times(V(x - mean));  // L' (x - mean)
  return -0.5 * r.squaredNorm() + llt.log_det_lower();
}

struct GroupStepArgs {
  rng::ChainKey key;
  std::uint64_t iteration = 0;
  int threads = 1;
  bool adapt = false;         // warm-up: adapt the random-walk scales c_j
  double gain = 0.0;          // Robbins-Monro gain of this iteration
  double rw_target = 0.35;
  bool drop_correction = false;
};

// One MH update of every group's gamma_j. The caches must be valid on entry and are valid
// on exit (for the random-walk kernel only ll is maintained: grad/info are not used).
template <typename G, bool kLaplace, int Q>
void group_mh_step_q(const GlmmData& d, GlmmState& s, const GroupStepArgs& a,
                     GlmmStepInfo& info) {
  using V = typename QTypes<Q>::Vec;
  using M = typename QTypes<Q>::Mat;
  const Index m = d.m(), q = fixed_or(Q, d.q());
  const Vector beta_free = free_coefficients(d, s.beta);
  const M prec = s.sigma_prec;
  const M sigma_chol = s.sigma_chol;
  const FamilyParams fp = s.params();
  info.group_accepted.assign(static_cast<std::size_t>(m), 0);
  info.group_accept_prob.assign(static_cast<std::size_t>(m), 0.0);
  ExceptionVault vault;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, group_chunk(m, a.threads)) num_threads(a.threads)
#endif
  for (Index g = 0; g < m; ++g) {
    vault.run([&] {
      rng::Rng rng(a.key, a.iteration, static_cast<std::uint64_t>(g), rng::Stream::GroupProposal);
      const V x = s.gamma.row(g).transpose();
      V mu(q);
      group_centre(d, s.beta, g, mu);
      V z(q), proposal(q), grad_new(q);
      M info_new(q, q);
      for (Index k = 0; k < q; ++k) z[k] = rng.std_normal();
      double log_ratio;
      double ll_new;
      if constexpr (kLaplace) {
        V grad_cur = s.cache.grad.row(g).transpose();
        M info_cur(q, q);
        for (Index k = 0; k < q; ++k)
          for (Index l = 0; l < q; ++l) info_cur(k, l) = s.cache.info(g, k * q + l);
        V mean_fwd(q), mean_rev(q);
        linalg::SmallCholesky<M> llt_fwd(q), llt_rev(q);
        if (!laplace_moments(x, grad_cur, info_cur, mu, prec, mean_fwd, llt_fwd)) {
          info.group_accept_prob[static_cast<std::size_t>(g)] = 0.0;
          return;
        }
        // proposal = mean + L^{-T} z
        proposal = llt_fwd.upper_solve(z);
        proposal += mean_fwd;
        ll_new = group_data_pass<G, true>(d, g, beta_free.data(), proposal.data(), fp,
                                          grad_new, info_new);
        if (!std::isfinite(ll_new) || !grad_new.allFinite() || !info_new.allFinite() ||
            !laplace_moments(proposal, grad_new, info_new, mu, prec, mean_rev, llt_rev)) {
          return;  // rejected
        }
        log_ratio = ll_new + gaussian_quad(proposal, mu, prec) - s.cache.ll[g] -
                    gaussian_quad(x, mu, prec);
        if (!a.drop_correction)
          log_ratio += laplace_log_density(x, mean_rev, llt_rev) -
                       laplace_log_density(proposal, mean_fwd, llt_fwd);
      } else {
        const double c = std::exp(0.5 * s.adapt.log_rw_scale[g]);
        proposal.noalias() = sigma_chol.template triangularView<Eigen::Lower>() * z;
        proposal = x + c * proposal;
        ll_new = group_data_pass<G, false>(d, g, beta_free.data(), proposal.data(), fp,
                                           grad_new, info_new);
        log_ratio = std::isfinite(ll_new) ? ll_new + gaussian_quad(proposal, mu, prec) -
                                                s.cache.ll[g] - gaussian_quad(x, mu, prec)
                                          : -std::numeric_limits<double>::infinity();
      }
      const auto [accepted, prob] = mh_accept(log_ratio, rng);
      info.group_accept_prob[static_cast<std::size_t>(g)] = prob;
      if (accepted) {
        s.gamma.row(g) = proposal.transpose();
        if constexpr (kLaplace) {
          s.cache.store(g, ll_new, grad_new, info_new);
        } else {
          s.cache.ll[g] = ll_new;
        }
        info.group_accepted[static_cast<std::size_t>(g)] = 1;
      }
      if constexpr (!kLaplace) {
        if (a.adapt) {
          s.adapt.log_rw_scale[g] += a.gain * (prob - a.rw_target);
          s.adapt.log_rw_scale[g] = std::clamp(s.adapt.log_rw_scale[g], -30.0, 10.0);
        }
      }
    });
  }
  vault.rethrow();
}

template <typename G, bool kLaplace>
void group_mh_step(const GlmmData& d, GlmmState& s, const GroupStepArgs& a, GlmmStepInfo& info) {
  with_q(d.q(), [&](auto qc) { group_mh_step_q<G, kLaplace, decltype(qc)::value>(d, s, a, info); });
}

}  // namespace bglmm::steps
