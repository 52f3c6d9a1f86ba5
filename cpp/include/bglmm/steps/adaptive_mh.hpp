// bglmm/steps/adaptive_mh.hpp — Metropolis-Hastings on a few unconstrained coordinates x with
// proposals learned in warm-up and frozen after it: the collapsed moves of the variance
// components (lmm_sampler, hierarchical_normal) share it.
//
// Per call: an independence multivariate-t proposal (after warm-up, once fitted to the second
// half of warm-up, covariance inflated 1.5x), then `random_walks` random-walk proposals
// N(x, exp(2 log_scale) rw_chol rw_chol'). In warm-up the random walk's scale follows
// Robbins-Monro towards `accept_goal`, and every 50 iterations its covariance becomes the
// empirical covariance of the path after the first fifth of warm-up (scale reset to 2.38 /
// sqrt(dim)). Move k draws from `stream` (Hyper unless set) at indices slot_base + 2k (proposal) and
// slot_base + 2k + 1 (acceptance), so draws are a function of (seed, chain, iteration).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "bglmm/linalg/mvn.hpp"
#include "bglmm/rng/distributions.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/types.hpp"
#include "bglmm/steps/accept.hpp"

namespace bglmm::steps {

struct AdaptiveProposal {
  Index dim = 0;
  Matrix rw_chol;   // random walk: N(x, exp(2 log_scale) rw_chol rw_chol')
  double log_scale = 0.0;
  Vector ind_mean;  // independence t_df(ind_mean, ind_chol ind_chol')
  Matrix ind_chol;
  double ind_df = 5.0;
  bool ind_ready = false;
  // warm-up moments (Welford): all of warm-up after its first fifth, and its second half
  std::int64_t n_all = 0, n_late = 0;
  Vector mean_all, mean_late;
  Matrix m2_all, m2_late;
  std::int64_t tries = 0, accepts = 0;  // after warm-up

  double acceptance() const {
    return tries > 0 ? static_cast<double>(accepts) / static_cast<double>(tries) : 0.0;
  }
};

// A starting random walk with independent steps of the given SDs.
inline AdaptiveProposal make_adaptive_proposal(const Vector& step_sd) {
  AdaptiveProposal pr;
  pr.dim = step_sd.size();
  pr.rw_chol = step_sd.asDiagonal();
  pr.log_scale = std::log(2.38 / std::sqrt(static_cast<double>(pr.dim)));
  pr.mean_all = pr.mean_late = Vector::Zero(pr.dim);
  pr.m2_all = pr.m2_late = Matrix::Zero(pr.dim, pr.dim);
  return pr;
}

struct AdaptiveMhArgs {
  rng::ChainKey key;
  std::uint64_t iteration = 1;
  bool adapt = false;          // warm-up: learn the proposals
  std::int64_t warmup = 0;     // the warm-up length
  int random_walks = 1;
  std::uint64_t slot_base = 0;
  rng::Stream stream = rng::Stream::Hyper;  // the stream its slots are drawn from
  double accept_goal = 0.3;
};

namespace detail {
inline void welford(std::int64_t& n, Vector& mean, Matrix& m2, const Vector& x) {
  ++n;
  const Vector dx = x - mean;
  mean += dx / static_cast<double>(n);
  m2 += dx * (x - mean).transpose();
}

inline bool covariance_factor(std::int64_t n, const Matrix& m2, double inflate, Matrix& chol) {
  if (n < 2) return false;
  Matrix c = inflate * m2 / static_cast<double>(n - 1);
  c.diagonal().array() += 1e-10 * (1.0 + c.diagonal().array().abs());
  Eigen::LLT<Matrix> llt(c);
  if (llt.info() != Eigen::Success) return false;
  chol = llt.matrixL();
  return chol.allFinite() && chol.diagonal().minCoeff() > 0.0;
}

// log density of the independence t proposal (up to a constant).
inline double t_log_density(const AdaptiveProposal& pr, const Vector& x) {
  const Vector r = pr.ind_chol.triangularView<Eigen::Lower>().solve(x - pr.ind_mean);
  return -0.5 * (pr.ind_df + static_cast<double>(pr.dim)) * std::log1p(r.squaredNorm() / pr.ind_df);
}

// Learn the proposals from the warm-up path at iteration t (x after this iteration's moves).
inline void learn(AdaptiveProposal& pr, const Vector& x, std::int64_t t, std::int64_t warmup) {
  if (t > warmup / 5) welford(pr.n_all, pr.mean_all, pr.m2_all, x);
  if (t > warmup / 2) welford(pr.n_late, pr.mean_late, pr.m2_late, x);
  const std::int64_t needed = 2 * pr.dim + 20;
  Matrix l;
  if (t % 50 == 0 && pr.n_all >= needed && covariance_factor(pr.n_all, pr.m2_all, 1.0, l)) {
    pr.rw_chol = l;
    pr.log_scale = std::log(2.38 / std::sqrt(static_cast<double>(pr.dim)));
  }
  if (t == warmup && pr.n_late >= needed && covariance_factor(pr.n_late, pr.m2_late, 1.5, l)) {
    pr.ind_mean = pr.mean_late;
    pr.ind_chol = l;
    pr.ind_ready = true;
  }
}
}  // namespace detail

// The moves from x, whose log target is target_cur. `evaluate(xp)` returns the log target at a
// proposal (-inf outside the support; it may prepare state for a commit), `commit()` is called
// when the proposal just evaluated is accepted. On exit x and target_cur are the new state.
template <typename Evaluate, typename Commit>
void adaptive_mh(AdaptiveProposal& pr, Vector& x, double& target_cur, const AdaptiveMhArgs& a,
                 Evaluate&& evaluate, Commit&& commit) {
  const bool after_warmup = !a.adapt;
  Vector z(pr.dim);
  for (int move = 0; move <= a.random_walks; ++move) {
    const bool independence = move == 0;
    if (independence && !(after_warmup && pr.ind_ready)) continue;
    const std::uint64_t slot = a.slot_base + 2 * static_cast<std::uint64_t>(move);
    rng::Rng rng(a.key, a.iteration, slot, a.stream);
    linalg::fill_std_normal(z, rng);
    Vector xp;
    double log_q_ratio = 0.0;  // log q(x | x') - log q(x' | x)
    if (independence) {
      const double w = std::sqrt(rng::chi_square_rng(pr.ind_df, rng) / pr.ind_df);
      xp = pr.ind_mean + pr.ind_chol * z / w;
      log_q_ratio = detail::t_log_density(pr, x) - detail::t_log_density(pr, xp);
    } else {
      xp = x + std::exp(pr.log_scale) * (pr.rw_chol * z);
    }
    double target_p = -std::numeric_limits<double>::infinity();
    double log_ratio = -std::numeric_limits<double>::infinity();
    if (xp.allFinite()) {
      target_p = evaluate(xp);
      if (std::isfinite(target_p)) log_ratio = target_p - target_cur + log_q_ratio;
    }
    rng::Rng accept_rng(a.key, a.iteration, slot + 1, a.stream);
    const auto [accept, prob] = mh_accept(log_ratio, accept_rng);
    if (after_warmup) {
      ++pr.tries;
      pr.accepts += accept ? 1 : 0;
    }
    if (a.adapt && !independence) {  // Robbins-Monro on the step size
      const double gain = std::pow(static_cast<double>(a.iteration) + 10.0, -0.6);
      pr.log_scale += gain * (prob - a.accept_goal);
    }
    if (accept) {
      x = xp;
      target_cur = target_p;
      commit();
    }
  }
  if (a.adapt) detail::learn(pr, x, static_cast<std::int64_t>(a.iteration), a.warmup);
}

}  // namespace bglmm::steps
