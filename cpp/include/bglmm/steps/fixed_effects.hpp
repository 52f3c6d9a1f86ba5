// bglmm/steps/fixed_effects.hpp — updates of the fixed effects beta of the GLMM.
// Centred coefficients (beta_C, the means of centred random terms) by exact Gibbs:
//   beta_C | . ~ N(Q^{-1} h, Q^{-1}),  Q = Q0_CC + m E'PE,
//   h = Q0_CC m0_C - Q0_CF (beta_F - m0_F) + E'P sum_j gamma_j,
// with Q0 = V0^{-1}, P = Sigma^{-1} and E the q x p_C selection of the centred terms (Hoff
// 2009, §11.2, written for any joint normal prior). Free coefficients beta_F (the columns
// without a random term) by one block Metropolis-Hastings step, chosen by the group kernel:
//  * Laplace kernel (default): free_fixed_newton_step, a Newton (IWLS) proposal
//    N(beta_F + H^{-1} g, H^{-1}) from the gradient g and Fisher information H of the target
//    at the current value, with the reverse proposal density in the MH ratio (no tuning). With
//    a random intercept the move also shifts every group's intercept by -xbar_j' delta (delta
//    the change of beta_F), so the likelihood sees only the within-group part of the free
//    covariates, and the intercept's centred coefficients with them, so the groups' prior
//    sees only what w_j does not explain of xbar_j (details above free_block_pass). Two passes over the data per step (the
//    current point's derivatives, the proposal's log-likelihood and derivatives).
//  * random-walk kernel: free_fixed_step, a random walk N(beta_F, c V_F) with V_F the inverse
//    conditional curvature (X_F'WX_F + Q0_FF)^{-1} (set_fixed_proposal, at the start and a
//    quarter and half way through warm-up) and c tuned in warm-up towards the target
//    acceptance, frozen afterwards. One pass over the data per step.
// Log-likelihoods are sums of per-group terms computed in parallel and added in group order
// (thread-count independent).
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "bglmm/glmm_model.hpp"
#include "bglmm/linalg/cholesky.hpp"
#include "bglmm/linalg/mvn.hpp"
#include "bglmm/linear_predictor.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/group_mh.hpp"
#include "bglmm/steps/accept.hpp"

namespace bglmm::steps {

// Q0_FF: the block of the prior precision of beta that belongs to the free coefficients.
inline Matrix free_prior_precision(const GlmmData& d, const GlmmPriors& pr) {
  const Index pf = d.p_free();
  Matrix out(pf, pf);
  for (Index a = 0; a < pf; ++a)
    for (Index b = 0; b < pf; ++b)
      out(a, b) = pr.beta_prec(d.free_cols[static_cast<std::size_t>(a)],
                               d.free_cols[static_cast<std::size_t>(b)]);
  return out;
}

inline double beta_log_prior(const GlmmPriors& p, const Vector& beta) {
  const Vector r = beta - p.beta_mean;
  return -0.5 * r.dot(p.beta_prec * r);
}

// Gibbs draw of the centred coefficients: gamma_j ~ N(E_j beta_C, Sigma), E_j(k, a) = w_ja
// when a belongs to term k; prior N(m0, V0) conditional on beta_F.
// With mean_only, sets beta_C to the conditional mean instead (initialisation).
inline void centred_mean_step(const GlmmData& d, const GlmmPriors& pr, GlmmState& s,
                              rng::Rng& rng, bool mean_only = false) {
  const Index pc = d.p_centred();
  if (pc == 0) return;
  const Index m = d.m();
  // P gamma_j for every group, then h_a = sum_j w_ja (P gamma_j)_{t_a}, in group order
  const RowMatrix pg = s.gamma * s.sigma_prec;  // rows: (P gamma_j)' (P symmetric)
  Matrix prec(pc, pc);
  Vector h = Vector::Zero(pc);
  const Vector dev = s.beta - pr.beta_mean;
  for (Index a = 0; a < pc; ++a) {
    const Index ca = d.centred_cols[static_cast<std::size_t>(a)];
    const Index ta = d.centred_term[static_cast<std::size_t>(a)];
    for (Index g = 0; g < m; ++g) h[a] += d.centred_value(g, a) * pg(g, ta);
    double cross = 0.0;  // (Q0_CC m0_C - Q0_CF (beta_F - m0_F))_a
    for (Index b = 0; b < pc; ++b) {
      const Index cb = d.centred_cols[static_cast<std::size_t>(b)];
      const Index tb = d.centred_term[static_cast<std::size_t>(b)];
      prec(a, b) = pr.beta_prec(ca, cb) + d.centred_cross(a, b) * s.sigma_prec(ta, tb);
      cross += pr.beta_prec(ca, cb) * pr.beta_mean[cb];
    }
    for (Index f : d.free_cols) cross -= pr.beta_prec(ca, f) * dev[f];
    h[a] += cross;
  }
  const Matrix l = linalg::cholesky_lower(prec, "centred_mean_step: posterior precision");
  Vector draw;
  if (mean_only) {
    draw = h;
    l.triangularView<Eigen::Lower>().solveInPlace(draw);
    l.transpose().triangularView<Eigen::Upper>().solveInPlace(draw);
  } else {
    draw = linalg::multi_normal_canonical_rng(h, l, rng);
  }
  for (Index a = 0; a < pc; ++a) s.beta[d.centred_cols[static_cast<std::size_t>(a)]] = draw[a];
}

// Fisher information of the free coefficients at the current state,
// X_F'WX_F + Q0_FF, summed over fixed chunks of groups in order.
template <typename G>
Matrix free_fixed_curvature(const GlmmData& d, const GlmmPriors& pr, const GlmmState& s,
                            int threads) {
  const Index pf = d.p_free(), q = d.q(), m = d.m();
  const Vector beta_free = free_coefficients(d, s.beta);
  Matrix total = chunked_reduce(m, 256, threads, Matrix(Matrix::Zero(pf, pf)),
                                [&](Index g_begin, Index g_end, Matrix& h) {
    for (Index g = g_begin; g < g_end; ++g) {
      const Index begin = d.obs.begin(g), end = begin + d.obs.size(g);
      for (Index i = begin; i < end; ++i) {
        const double eta = row_eta(d, i, beta_free.data(), s.gamma.data() + g * q);
        const double w = G::weight(d.obs.trials[i], eta, s.params());
        h.selfadjointView<Eigen::Lower>().rankUpdate(d.x_free.row(i).transpose(), w);
      }
    }
  });
  total = total.selfadjointView<Eigen::Lower>();
  return total + free_prior_precision(d, pr);
}

// Random-walk kernel: sets the block proposal's Cholesky factor from the current curvature
// (one pass over the data).
template <typename G>
void set_fixed_proposal(const GlmmData& d, const GlmmPriors& pr, GlmmState& s, int threads) {
  if (d.p_free() == 0) return;
  const Matrix h = free_fixed_curvature<G>(d, pr, s, threads);
  const Matrix l = linalg::cholesky_lower(h, "fixed-effects curvature X_F'WX_F + V0^{-1}");
  s.adapt.fixed_chol = linalg::inverse_cholesky(l, "fixed-effects proposal covariance");
}

struct FixedStepArgs {
  rng::ChainKey key;
  std::uint64_t iteration = 0;
  int threads = 1;
  bool adapt = false;
  double gain = 0.0;
  double target = 0.3;
  bool unshifted_centred_mean = false;  // TESTING ONLY (GlmmConfig)
};

// Random-walk kernel: block random-walk Metropolis update of the free coefficients. The group
// caches must be valid; on acceptance the caches computed at the proposal are swapped in.
template <typename G, bool kDerivs>
void free_fixed_step(const GlmmData& d, const GlmmPriors& pr, GlmmState& s,
                     const FixedStepArgs& a, GlmmStepInfo& info) {
  const Index pf = d.p_free();
  info.fixed_accepted = false;
  info.fixed_accept_prob = 0.0;
  if (pf == 0) return;
  const Index m = d.m(), q = d.q();
  rng::Rng rng(a.key, a.iteration, 0, rng::Stream::Beta);
  Vector z(pf);
  linalg::fill_std_normal(z, rng);
  const Vector beta_free = free_coefficients(d, s.beta);
  const Vector step = s.adapt.fixed_chol.triangularView<Eigen::Lower>() * z;
  const Vector proposal_free = beta_free + std::exp(0.5 * s.adapt.log_fixed_scale) * step;
  ExceptionVault vault;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, group_chunk(m, a.threads)) num_threads(a.threads)
#endif
  for (Index g = 0; g < m; ++g) {
    vault.run([&] {
      QVec grad(q), gamma = s.gamma.row(g).transpose();
      QMat inf(q, q);
      const double ll = group_data_pass<G, kDerivs>(d, g, proposal_free.data(), gamma.data(),
                                                    s.params(), grad, inf);
      if constexpr (kDerivs) {
        s.proposal.store(g, ll, grad, inf);
      } else {
        s.proposal.ll[g] = ll;
      }
    });
  }
  vault.rethrow();
  double ll_cur = 0.0, ll_prop = 0.0;
  for (Index g = 0; g < m; ++g) {
    ll_cur += s.cache.ll[g];
    ll_prop += s.proposal.ll[g];
  }
  Vector beta_prop = s.beta;
  set_free_coefficients(d, proposal_free, beta_prop);
  const double log_ratio = std::isfinite(ll_prop)
                               ? ll_prop + beta_log_prior(pr, beta_prop) - ll_cur -
                                     beta_log_prior(pr, s.beta)
                               : -std::numeric_limits<double>::infinity();
  rng::Rng accept_rng(a.key, a.iteration, 0, rng::Stream::BetaAccept);
  const MhDecision decision = mh_accept(log_ratio, accept_rng);
  info.fixed_accept_prob = decision.prob;
  if (decision.accepted) {
    s.beta = beta_prop;
    s.commit_proposal();
    info.fixed_accepted = true;
  }
  if (a.adapt) {
    s.adapt.log_fixed_scale += a.gain * (decision.prob - a.target);
    s.adapt.log_fixed_scale = std::clamp(s.adapt.log_fixed_scale, -30.0, 10.0);
  }
}

// ---- Newton (Laplace/IWLS) proposal for the free block ------------------------------------
// Proposal N(beta_F + H^{-1} g, H^{-1}), g and H the gradient and Fisher information of the
// target at the current value, with the reverse density in the MH ratio — the block analogue
// of the per-group Laplace kernel. When the model has a random intercept (term k0), the move
// also shifts every group's intercept, gamma_{j,k0} -> gamma_{j,k0} - xbar_j' (beta_F' - beta_F),
// xbar_j the group means of the free columns (a shear: volume-preserving, its own inverse
// under the reverse proposal). The target of the move is then, with gammatilde fixed,
//   L(beta_F) = sum_i log f(y_i | eta_i) + sum_j log N(gamma_j(beta_F) | mu_j, Sigma) + log p(beta)
// in which the likelihood sees only the within-group part x_i - xbar_j of the covariates:
// coefficients of covariates that vary little within groups no longer have to move through
// the random intercepts (group-mean centring; cf. Papaspiliopoulos, Roberts & Skold 2007).
// The intercept's centred coefficients beta_C0 (its mean w_j' beta_C0, w_j = 1 for the fixed
// intercept) move too, by -C delta with C the least-squares fit of xbar_j on w_j: otherwise
// the group prior pins the mean of the shifted gamma_j to the unmoved beta_C0, and a covariate
// with a common non-zero group mean (cbpp's period 1..4) mixes through the Gibbs alternation of
// beta_C0 and beta_F (lag-1 autocorrelation 0.7 at 99 % acceptance).

// Free-block target pieces at beta_F = current + delta: per-group log-likelihood (and, with
// kGammaDerivs, the gamma caches at the shifted gamma), the data gradient/information w.r.t.
// beta_F (of the within-group columns when shifting), summed over fixed chunks in order. Each
// group's rows go through the vectorised family kernels in blocks, as in group_data_pass.
template <typename G, bool kGammaDerivs>
double free_block_pass(const GlmmData& d, const GlmmState& s, const Vector& beta_free,
                       const Vector& delta, int threads, GroupCache& out, Vector& grad_f,
                       Matrix& info_f) {
  const Index pf = d.p_free(), q = d.q(), m = d.m();
  const Index k0 = d.intercept_term;
  const DataTerms zero{0.0, Vector::Zero(pf), Matrix::Zero(pf, pf)};
  const Index n_rows = d.obs.rows();
  auto chunk = [&](Index g_begin, Index g_end, DataTerms& part) {
    BlockArray eta, yb, nb, u, w;
    for (Index g = g_begin; g < g_end; ++g) {
      QVec gq(q), gamma = s.gamma.row(g).transpose();
      QMat iq(q, q);
      const double* xbar = k0 >= 0 ? d.xbar_free.data() + g * pf : nullptr;
      if (k0 >= 0)
        for (Index k = 0; k < pf; ++k) gamma[k0] -= xbar[k] * delta[k];
      if constexpr (kGammaDerivs) {
        gq.setZero();
        iq.setZero();
      }
      double total = 0.0;
      const Index begin = d.obs.begin(g), end = begin + d.obs.size(g);
      for (Index start = begin; start < end; start += kLikBlock) {
        const Index len = std::min(kLikBlock, end - start);
        load_block(d.obs.y.data(), d.obs.trials.data(), start, len, yb, nb, eta);
        block_eta(d, start, len, q, beta_free.data(), gamma.data(), eta.data());
        total += lik_all<G>(yb, nb, eta, d.obs.weights_from(start), s.params(), u, w, len);
        // the free columns, within-group (minus the group means) when the move shifts
        for (Index k = 0; k < pf; ++k) {
          const double* xk = d.x_free.data() + k * n_rows + start;
          const double ck = k0 >= 0 ? xbar[k] : 0.0;
          double gk = 0.0;
          for (Index i = 0; i < len; ++i) gk += u[i] * (xk[i] - ck);
          part.grad[k] += gk;
          for (Index l = 0; l <= k; ++l) {
            const double* xl = d.x_free.data() + l * n_rows + start;
            const double cl = k0 >= 0 ? xbar[l] : 0.0;
            double hkl = 0.0;
            for (Index i = 0; i < len; ++i) hkl += w[i] * (xk[i] - ck) * (xl[i] - cl);
            part.info(k, l) += hkl;
          }
        }
        if constexpr (kGammaDerivs) {
          for (Index k = 0; k < q; ++k) {
            const double* zk = d.z_cols.data() + k * n_rows + start;
            double gk = 0.0;
            for (Index i = 0; i < len; ++i) gk += u[i] * zk[i];
            gq[k] += gk;
            for (Index l = 0; l <= k; ++l) {
              const double* zl = d.z_cols.data() + l * n_rows + start;
              double hkl = 0.0;
              for (Index i = 0; i < len; ++i) hkl += w[i] * zk[i] * zl[i];
              iq(k, l) += hkl;
            }
          }
        }
      }
      if constexpr (kGammaDerivs) {
        for (Index k = 0; k < q; ++k)
          for (Index l = 0; l < k; ++l) iq(l, k) = iq(k, l);
        out.store(g, total, gq, iq);
      } else {
        out.ll[g] = total;
      }
    }
  };
  const DataTerms sum_f = chunked_reduce(m, 64, threads, zero, chunk);
  grad_f = sum_f.grad;
  info_f = sum_f.info.selfadjointView<Eigen::Lower>();
  double sum = 0.0;
  for (Index g = 0; g < m; ++g) sum += out.ll[g];
  return sum;
}

// The random-effect and beta prior parts of the target at beta_full = beta + A delta (A =
// d.free_shift: beta_F moves by delta, the intercept's centred coefficients by -C delta): adds
// their gradient and information w.r.t. delta to (grad_f, info_f) and returns their log
// density. The groups' intercepts move by -xbar_j' delta and their means by -w_j' C delta, so
// each group's prior sees the residual xbar_j - C' w_j.
inline double free_block_prior(const GlmmData& d, const GlmmPriors& pr, const GlmmState& s,
                               const Vector& beta_full, const Vector& delta, Vector& grad_f,
                               Matrix& info_f) {
  const Index pf = d.p_free(), q = d.q(), m = d.m(), k0 = d.intercept_term;
  const Vector dev = beta_full - pr.beta_mean;
  const Vector prec_dev = pr.beta_prec * dev;
  double lp = -0.5 * dev.dot(prec_dev);
  grad_f -= d.free_shift.transpose() * prec_dev;
  info_f += pr.free_shift_prec;
  if (k0 < 0) return lp;
  // sum_j log N(gamma_j | mu_j, Sigma) after the move and its derivatives (in group order)
  QVec mu(q), r(q);
  const QMat prec = s.sigma_prec;
  double quad = 0.0;
  for (Index g = 0; g < m; ++g) {
    group_centre(d, s.beta, g, mu);
    r = s.gamma.row(g).transpose() - mu;
    const double* resid = d.xbar_resid.data() + g * pf;
    for (Index k = 0; k < pf; ++k) r[k0] -= resid[k] * delta[k];
    const QVec pr_r = prec * r;
    quad += r.dot(pr_r);
    for (Index k = 0; k < pf; ++k) grad_f[k] += resid[k] * pr_r[k0];
  }
  info_f += prec(k0, k0) * d.xbar_resid_cross;
  return lp - 0.5 * quad;
}

inline bool newton_moments(const Vector& beta_free, const Vector& grad_f, const Matrix& info_f,
                           Vector& mean, Matrix& chol) {
  Eigen::LLT<Matrix> llt(info_f);
  if (llt.info() != Eigen::Success) return false;
  chol = llt.matrixL();
  mean = beta_free + llt.solve(grad_f);
  return mean.allFinite() && chol.allFinite();
}

inline double newton_log_density(const Vector& x, const Vector& mean, const Matrix& chol) {
  const Vector r = chol.transpose() * (x - mean);
  return -0.5 * r.squaredNorm() + chol.diagonal().array().log().sum();
}

// The joint conditional mode of the free coefficients and every group's effects, given Sigma
// and the centred coefficients: damped Newton steps on log p(y | .) + log N(gamma_j | mu_j,
// Sigma) + log p(beta), whose Hessian is block-arrow (a q x q block per group, coupled only
// through beta_F), solved through the Schur complement over groups. Used only to start a chain:
// alternating the group modes and beta_F's conditional mode crawls along a narrow ridge when the
// data are informative (large counts: 0.1 per round from -1.7 towards a slope of -4), and from
// such a start every Newton proposal of the sampler is rejected. Caches stale on exit.
template <typename G>
void joint_free_mode(const GlmmData& d, const GlmmPriors& pr, GlmmState& s, int threads) {
  const Index pf = d.p_free(), q = d.q(), m = d.m();
  if (pf == 0) return;
  const Matrix prec = s.sigma_prec;
  RowMatrix mu(m, q);
  for (Index g = 0; g < m; ++g) {
    QVec mg(q);
    group_centre(d, s.beta, g, mg);
    mu.row(g) = mg.transpose();
  }
  // log target at (beta_F, gamma); with derivs also the per-group pieces
  RowMatrix gz(m, q), gx(m, pf), hzz(m, q * q), hzx(m, q * pf), hxx(m, pf * pf);
  Vector llg(m);
  auto pass = [&](const Vector& bf, const RowMatrix& gam, bool derivs) {
    ExceptionVault vault;
    (void)threads;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, group_chunk(m, threads)) num_threads(threads)
#endif
    for (Index g = 0; g < m; ++g) {
      vault.run([&] {
        double ll = 0.0;
        if (derivs) {
          gz.row(g).setZero(); gx.row(g).setZero(); hzz.row(g).setZero();
          hzx.row(g).setZero(); hxx.row(g).setZero();
        }
        for (Index i = d.obs.begin(g); i < d.obs.begin(g) + d.obs.size(g); ++i) {
          const double eta = row_eta(d, i, bf.data(), gam.data() + g * q);
          if (!derivs) {
            ll += d.obs.weight(i) *
                  LikTerms<G>::kernel(d.obs.y[i], d.obs.trials[i], eta, s.params());
            continue;
          }
          double u, w;
          const double wt = d.obs.weight(i);
          ll += wt * LikTerms<G>::all(d.obs.y[i], d.obs.trials[i], eta, s.params(), u, w);
          u *= wt;
          w *= wt;
          for (Index k = 0; k < q; ++k) {
            const double zk = d.obs.z(i, k);
            gz(g, k) += u * zk;
            for (Index l = 0; l < q; ++l) hzz(g, k * q + l) += w * zk * d.obs.z(i, l);
            for (Index l = 0; l < pf; ++l) hzx(g, k * pf + l) += w * zk * d.x_free(i, l);
          }
          for (Index k = 0; k < pf; ++k) {
            gx(g, k) += u * d.x_free(i, k);
            for (Index l = 0; l < pf; ++l) hxx(g, k * pf + l) += w * d.x_free(i, k) * d.x_free(i, l);
          }
        }
        llg[g] = ll;
      });
    }
    vault.rethrow();
    double total = 0.0;
    for (Index g = 0; g < m; ++g) {
      const Vector r = gam.row(g).transpose() - mu.row(g).transpose();
      total += llg[g] - 0.5 * r.dot(prec * r);
    }
    Vector beta = s.beta;
    set_free_coefficients(d, bf, beta);
    const Vector dev = beta - pr.beta_mean;
    return total - 0.5 * dev.dot(pr.beta_prec * dev);
  };
  Vector bf = free_coefficients(d, s.beta);
  for (int it = 0; it < 100; ++it) {
    const double cur = pass(bf, s.gamma, true);
    if (!std::isfinite(cur)) break;
    Vector beta = s.beta;
    const Vector dev = beta - pr.beta_mean;
    Matrix schur = free_prior_precision(d, pr);
    Vector rhs(pf);
    for (Index a = 0; a < pf; ++a) rhs[a] = -pr.beta_prec.row(d.free_cols[a]).dot(dev);
    std::vector<Eigen::LLT<Matrix>> fac(static_cast<std::size_t>(m));
    RowMatrix gzp(m, q);
    bool ok = true;
    for (Index g = 0; g < m && ok; ++g) {
      const Matrix A = Eigen::Map<const Eigen::Matrix<double, -1, -1, Eigen::RowMajor>>(
                           hzz.row(g).data(), q, q) + prec;
      const Matrix Hzx = Eigen::Map<const Eigen::Matrix<double, -1, -1, Eigen::RowMajor>>(
          hzx.row(g).data(), q, pf);
      fac[static_cast<std::size_t>(g)].compute(A);
      if (fac[static_cast<std::size_t>(g)].info() != Eigen::Success) { ok = false; break; }
      const Vector gzg = gz.row(g).transpose() - prec * (s.gamma.row(g) - mu.row(g)).transpose();
      gzp.row(g) = gzg.transpose();
      const Matrix AinvHzx = fac[static_cast<std::size_t>(g)].solve(Hzx);
      schur += Eigen::Map<const Eigen::Matrix<double, -1, -1, Eigen::RowMajor>>(hxx.row(g).data(), pf, pf) -
               Hzx.transpose() * AinvHzx;
      rhs += gx.row(g).transpose() - Hzx.transpose() * fac[static_cast<std::size_t>(g)].solve(gzg);
    }
    if (!ok) break;
    Eigen::LLT<Matrix> sl(schur);
    if (sl.info() != Eigen::Success) break;
    const Vector dbf = sl.solve(rhs);
    RowMatrix dgam(m, q);
    for (Index g = 0; g < m; ++g) {
      const Matrix Hzx = Eigen::Map<const Eigen::Matrix<double, -1, -1, Eigen::RowMajor>>(
          hzx.row(g).data(), q, pf);
      dgam.row(g) = fac[static_cast<std::size_t>(g)].solve(Vector(gzp.row(g).transpose() - Hzx * dbf)).transpose();
    }
    if (!dbf.allFinite() || !dgam.allFinite()) break;
    double f = 1.0;
    bool moved = false;
    for (int half = 0; half < 40; ++half, f *= 0.5) {
      const Vector bnew = bf + f * dbf;
      const RowMatrix gnew = s.gamma + f * dgam;
      const double val = pass(bnew, gnew, false);
      if (std::isfinite(val) && val >= cur) {
        bf = bnew;
        s.gamma = gnew;
        moved = true;
        break;
      }
    }
    set_free_coefficients(d, bf, s.beta);
    if (!moved || f * dbf.norm() < 1e-8 * (1.0 + bf.norm())) break;
  }
  s.cache.valid = false;
}

// A draw from N(0, H^{-1}) added to the free coefficients, H their conditional information
// (with the intercept shift): chains started at the conditional mode start apart again, by
// about one conditional SD, so that R-hat can see non-convergence.
template <typename G>
void jitter_free_fixed(const GlmmData& d, const GlmmPriors& pr, GlmmState& s, int threads,
                       rng::Rng& rng) {
  const Index pf = d.p_free();
  if (pf == 0) return;
  const Vector beta_free = free_coefficients(d, s.beta);
  Vector g, mean;
  Matrix h, chol;
  const Vector zero = Vector::Zero(pf);
  free_block_pass<G, false>(d, s, beta_free, zero, threads, s.proposal, g, h);
  free_block_prior(d, pr, s, s.beta, zero, g, h);
  if (!newton_moments(beta_free, g, h, mean, chol)) return;
  Vector z(pf);
  linalg::fill_std_normal(z, rng);
  chol.transpose().triangularView<Eigen::Upper>().solveInPlace(z);
  if (!z.allFinite()) return;
  s.beta += d.free_shift * z;
  if (d.intercept_term >= 0) s.gamma.col(d.intercept_term) -= d.xbar_free * z;
  s.cache.valid = false;
}

// Newton-proposal MH update of the free coefficients (with the intercept shift when the model
// has a random intercept). Group caches valid on entry and exit.
template <typename G>
void free_fixed_newton_step(const GlmmData& d, const GlmmPriors& pr, GlmmState& s,
                            const FixedStepArgs& a, GlmmStepInfo& info) {
  const Index pf = d.p_free();
  info.fixed_accepted = false;
  info.fixed_accept_prob = 0.0;
  if (pf == 0) return;
  const Vector beta_free = free_coefficients(d, s.beta);
  Vector g_cur, g_new, mean_fwd, mean_rev;
  Matrix h_cur, h_new, l_fwd, l_rev;
  const Vector zero = Vector::Zero(pf);
  // current point: only the beta_F derivatives are needed (the caches hold the rest)
  const double ll_cur = free_block_pass<G, false>(d, s, beta_free, zero, a.threads, s.proposal,
                                                  g_cur, h_cur);
  const double lp_cur = free_block_prior(d, pr, s, s.beta, zero, g_cur, h_cur);
  if (!newton_moments(beta_free, g_cur, h_cur, mean_fwd, l_fwd)) return;
  rng::Rng rng(a.key, a.iteration, 0, rng::Stream::Beta);
  Vector z(pf);
  linalg::fill_std_normal(z, rng);
  l_fwd.transpose().triangularView<Eigen::Upper>().solveInPlace(z);
  const Vector proposal = mean_fwd + z;
  const Vector delta = proposal - beta_free;
  const Vector beta_prop = s.beta + d.free_shift * delta;
  const double ll_prop = free_block_pass<G, true>(d, s, proposal, delta, a.threads, s.proposal,
                                                  g_new, h_new);
  if (!std::isfinite(ll_prop) || !g_new.allFinite() || !h_new.allFinite()) return;
  // the prior part at the proposal: gamma there is the shifted one, i.e. delta from current
  const double lp_prop = free_block_prior(d, pr, s, beta_prop, delta, g_new, h_new);
  if (!newton_moments(proposal, g_new, h_new, mean_rev, l_rev)) return;
  const double log_ratio = ll_prop + lp_prop - ll_cur - lp_cur +
                           newton_log_density(beta_free, mean_rev, l_rev) -
                           newton_log_density(proposal, mean_fwd, l_fwd);
  rng::Rng accept_rng(a.key, a.iteration, 0, rng::Stream::BetaAccept);
  const MhDecision decision = mh_accept(log_ratio, accept_rng);
  info.fixed_accept_prob = decision.prob;
  if (decision.accepted) {
    if (a.unshifted_centred_mean)
      set_free_coefficients(d, proposal, s.beta);
    else
      s.beta = beta_prop;
    if (d.intercept_term >= 0) s.gamma.col(d.intercept_term) -= d.xbar_free * delta;
    s.commit_proposal();
    info.fixed_accepted = true;
  }
}

}  // namespace bglmm::steps
