// bglmm/steps/marginal_move.hpp — an independence Metropolis-Hastings move of psi = (beta_C, L)
// that carries every gamma_j along its approximate conditional posterior.
//
// Interweaving (steps/interweave.hpp) alternates the centred and the non-centred
// parameterisation; when each group's data carry about as much information about its effects
// as the population distribution does, both are slow and so is their interweaving (in the
// normal model, each has lag-1 autocorrelation about 1 - B^2 with B = 1/2). The exact remedy
// in the normal model is to standardise each group's effects by their conditional posterior:
//   eps_j = C_j(psi)^{-1} (gamma_j - m_j(psi)),   C_j C_j' = P_j^{-1},
// which is then independent of psi given y, so that psi | eps, y is the marginal posterior
// psi | y. For a GLMM we use a Gaussian approximation of each group's log-likelihood,
//   l_j(gamma) ~ l_j(r_j) + g_j'(gamma - r_j) - (gamma - r_j)' I_j (gamma - r_j) / 2,
// frozen at the end of warm-up (r_j the group's state then, g_j and I_j its score and Fisher
// information), so P_j = I_j + Sigma^{-1} and m_j = P_j^{-1} (g_j + I_j r_j + Sigma^{-1} mu_j).
// The move keeps every eps_j fixed and proposes psi* from a multivariate t fitted to the
// warm-up draws of psi (an approximation of the marginal posterior), setting
// gamma*_j = m_j(psi*) + C_j(psi*) eps_j. In (psi, eps) coordinates the target density is
//   p(y | gamma) prod_j N(gamma_j | mu_j, Sigma) |C_j(psi)| p(psi),
// so the acceptance ratio is
//   [l(gamma*) + sum_j log N(gamma*_j | mu*_j, Sigma*) - log|P*_j|/2 + log p(psi*) - log t(psi*)]
//   - [the same at the current state].
// Any frozen (r_j, g_j, I_j) and proposal give a valid move; the better they approximate, the
// closer the move comes to an independent draw of psi. Costs one pass over the data (the
// proposal; its caches are kept on acceptance).
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "bglmm/glmm_model.hpp"
#include "bglmm/linear_predictor.hpp"
#include "bglmm/linalg/cholesky.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/rng/distributions.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/group_mh.hpp"
#include "bglmm/steps/non_centred.hpp"
#include "bglmm/steps/accept.hpp"

namespace bglmm::steps {

// Frozen pieces of the move (set at the end of warm-up).
struct MarginalMove {
  bool ready = false;
  RowMatrix ref_gamma;  // m x q: r_j
  RowMatrix ref_shift;  // m x q: g_j + I_j r_j
  RowMatrix ref_info;   // m x q*q: I_j (row-major)
  Vector psi_mean;      // proposal location
  Matrix psi_chol;      // proposal scale (lower Cholesky factor)
  double df = 7.0;      // proposal degrees of freedom
  // warm-up accumulators of psi draws
  std::int64_t count = 0;
  Vector sum;
  Matrix cross;
};

inline void marginal_accumulate(MarginalMove& mv, const Vector& psi) {
  if (mv.count == 0) {
    mv.sum = Vector::Zero(psi.size());
    mv.cross = Matrix::Zero(psi.size(), psi.size());
  }
  mv.sum += psi;
  mv.cross.selfadjointView<Eigen::Lower>().rankUpdate(psi);
  ++mv.count;
}

// Freezes the move from the accumulated psi draws and the current group caches. Returns false
// (move stays off) if there were too few draws or their covariance is singular.
inline bool marginal_freeze(MarginalMove& mv, const GlmmState& s) {
  const Index dim = mv.sum.size();
  if (mv.count < std::max<std::int64_t>(20, 2 * dim)) return false;
  const double n = static_cast<double>(mv.count);
  mv.psi_mean = mv.sum / n;
  Matrix cov = mv.cross.selfadjointView<Eigen::Lower>();
  cov = (cov - n * mv.psi_mean * mv.psi_mean.transpose()) / (n - 1.0);
  Eigen::LLT<Matrix> llt(cov);
  if (llt.info() != Eigen::Success) return false;
  mv.psi_chol = llt.matrixL();
  if (!mv.psi_chol.allFinite() || !(mv.psi_chol.diagonal().minCoeff() > 0.0)) return false;
  const Index m = s.gamma.rows(), q = s.gamma.cols();
  mv.ref_gamma = s.gamma;
  mv.ref_info = s.cache.info;
  mv.ref_shift.resize(m, q);
  for (Index g = 0; g < m; ++g) {
    for (Index k = 0; k < q; ++k) {
      double v = s.cache.grad(g, k);
      for (Index l = 0; l < q; ++l) v += s.cache.info(g, k * q + l) * s.gamma(g, l);
      mv.ref_shift(g, k) = v;
    }
  }
  mv.ready = true;
  return true;
}

// log t_df(x | mean, LL') up to a constant.
inline double multi_t_log_density(const Vector& x, const Vector& mean, const Matrix& chol,
                                  double df) {
  const Vector r = chol.triangularView<Eigen::Lower>().solve(x - mean);
  return -0.5 * (df + static_cast<double>(x.size())) * std::log1p(r.squaredNorm() / df);
}

namespace detail {
// Per group at one psi: P = I + Sigma^{-1} (Cholesky), m = P^{-1}(shift + Sigma^{-1} mu).
template <typename V, typename M>
bool posterior_approx(const MarginalMove& mv, Index g, Index q, const M& prec, const V& mu,
                      linalg::SmallCholesky<M>& llt, V& mean) {
  M p(q, q);
  for (Index k = 0; k < q; ++k)
    for (Index l = 0; l < q; ++l) p(k, l) = mv.ref_info(g, k * q + l) + prec(k, l);
  if (!llt.compute(p)) return false;
  V rhs(q);
  for (Index k = 0; k < q; ++k) rhs[k] = mv.ref_shift(g, k);
  rhs += prec * mu;
  mean = llt.solve(rhs);
  return mean.allFinite();
}
}  // namespace detail

struct MarginalArgs {
  rng::ChainKey key;
  std::uint64_t iteration = 0;
  int threads = 1;
};

// One move. Group caches (with derivatives) valid on entry and exit. `work` is m x q
// workspace. Returns the acceptance probability; sets `accepted`.
template <typename G>
double marginal_move_step(const GlmmData& d, const GlmmPriors& pr, GlmmState& s,
                          const MarginalMove& mv, const MarginalArgs& a, RowMatrix& work,
                          bool& accepted) {
  accepted = false;
  if (!mv.ready) return 0.0;
  const Index m = d.m(), q = d.q();
  const NonCentredLayout lay = make_non_centred_layout(d, pr, false);
  const Vector psi = pack_psi(d, lay, s.beta, s.sigma_chol);
  rng::Rng rng(a.key, a.iteration, 2, rng::Stream::Hyper);
  Vector z(lay.dim);
  linalg::fill_std_normal(z, rng);
  const double w = rng::chi_square_rng(mv.df, rng) / mv.df;
  const Vector proposal = mv.psi_mean + (mv.psi_chol * z) / std::sqrt(w);
  Vector beta_new = s.beta;
  Matrix chol_new;
  unpack_psi(d, lay, proposal, beta_new, chol_new);
  if (!chol_new.allFinite() || !(chol_new.diagonal().minCoeff() > 0.0)) return 0.0;
  const Matrix sigma_new = chol_new * chol_new.transpose();
  Eigen::LLT<Matrix> sigma_llt(sigma_new);
  if (sigma_llt.info() != Eigen::Success) return 0.0;
  const Matrix prec_new = sigma_llt.solve(Matrix::Identity(q, q));
  const Vector beta_free = free_coefficients(d, s.beta);
  // per group: [log N(gamma | mu, Sigma) - log|P|/2] at current and proposal (data part of
  // the proposal in the caches *_new)
  // per group: the change of [log N(gamma | mu, Sigma) - log|P|/2], NaN if an approximation
  // failed
  std::vector<double> change(static_cast<std::size_t>(m));
  work.resize(m, q);
  with_q(q, [&](auto qc) {
    using V = typename QTypes<decltype(qc)::value>::Vec;
    using M = typename QTypes<decltype(qc)::value>::Mat;
    const M prec_cur = s.sigma_prec, prec_prop = prec_new;
    ExceptionVault vault;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, group_chunk(m, a.threads)) num_threads(a.threads)
#endif
    for (Index g = 0; g < m; ++g) {
      vault.run([&] {
        const std::size_t gi = static_cast<std::size_t>(g);
        V mu(q), mean(q), grad(q);
        M inf(q, q);
        linalg::SmallCholesky<M> llt(q);
        group_centre(d, s.beta, g, mu);
        const V x = s.gamma.row(g).transpose();
        change[gi] = std::numeric_limits<double>::quiet_NaN();
        if (!detail::posterior_approx(mv, g, q, prec_cur, mu, llt, mean)) return;
        const V eps = llt.upper_times(V(x - mean));  // L_P' (gamma - m)
        const double cur = gaussian_quad(x, mu, prec_cur) - llt.log_det_lower();
        group_centre(d, beta_new, g, mu);
        if (!detail::posterior_approx(mv, g, q, prec_prop, mu, llt, mean)) return;
        const V xn = mean + llt.upper_solve(eps);
        change[gi] = gaussian_quad(xn, mu, prec_prop) - llt.log_det_lower() - cur;
        work.row(g) = xn.transpose();
        const double ll =
            group_data_pass<G, true>(d, g, beta_free.data(), xn.data(), s.params(), grad, inf);
        s.proposal.store(g, ll, grad, inf);
      });
    }
    vault.rethrow();
  });
  double total = 0.0;
  for (Index g = 0; g < m; ++g) {
    const double c = change[static_cast<std::size_t>(g)];
    if (std::isnan(c)) return 0.0;
    total += (s.proposal.ll[g] - s.cache.ll[g]) + c;
  }
  const double log_det_cur = 2.0 * s.sigma_chol.diagonal().array().log().sum();
  const double log_det_new = 2.0 * chol_new.diagonal().array().log().sum();
  total -= 0.5 * static_cast<double>(m) * (log_det_new - log_det_cur);
  Vector g_unused = Vector::Zero(lay.dim);
  Matrix h_unused = Matrix::Zero(lay.dim, lay.dim);
  const std::vector<Index> none;  // the density alone: no derivatives
  const double lp_cur = non_centred_log_prior(d, pr, lay, s.beta, psi, g_unused, h_unused, &none);
  const double lp_new =
      non_centred_log_prior(d, pr, lay, s.beta, proposal, g_unused, h_unused, &none);
  const double log_ratio =
      total + lp_new - lp_cur + multi_t_log_density(psi, mv.psi_mean, mv.psi_chol, mv.df) -
      multi_t_log_density(proposal, mv.psi_mean, mv.psi_chol, mv.df);
  if (!std::isfinite(log_ratio)) return 0.0;
  GlmmState::SigmaFactors factors;  // a Sigma that cannot be factored is a rejection
  if (!GlmmState::factor_sigma(sigma_new, factors)) return 0.0;
  rng::Rng accept_rng(a.key, a.iteration, 3, rng::Stream::Hyper);
  const MhDecision decision = mh_accept(log_ratio, accept_rng);
  if (decision.accepted) {
    s.gamma = work;
    s.beta = beta_new;
    s.commit_proposal();
    s.commit_sigma(std::move(factors));
    accepted = true;
  }
  return decision.prob;
}

}  // namespace bglmm::steps
