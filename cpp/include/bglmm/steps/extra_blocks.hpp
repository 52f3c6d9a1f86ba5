// bglmm/steps/extra_blocks.hpp — the steps of the random-effect blocks beyond the primary one
// (random_blocks.hpp). They work on a per-row cache of the full linear predictor, eta_rows,
// and keep the chain's effective offset (the user's offset plus every extra block's part,
// which is all the primary block's steps see of them) in step with it.
//
// Per block k, one sweep does:
//  1. b_{k,j} | .  for every level j in parallel: Metropolis-Hastings with the Laplace/IWLS
//     proposal N(m, H^-1) of group_mh.hpp (exact Gibbs for the gaussian family), over the
//     level's rows through the CSR index;
//  2. Sigma_k | b_k  (covariance_conditional_step: conjugate, scale step or slice sampling);
//  3. a translation move for each pair (term t, X column c) with identical columns:
//     b_k[., t] + delta, beta_c - delta (and, if beta_c is centred in the primary block, its
//     centred effects - delta w_j). The likelihood does not change, so delta has a Gaussian
//     full conditional from the priors alone, drawn exactly (a group move, Liu & Sabatti 2000).
//     This is what keeps crossed designs mixing: without it the intercept and each factor's
//     mean level trade places by a random walk whose steps shrink as levels are added
//     (Papaspiliopoulos, Roberts & Zanella 2020).
//  3b-d. for a block nested in another (class within school): the nested translation, the
//     parent's scale move with the children absorbing it, and the collapsed move of both SDs
//     with each parent level's split integrated out (scalar blocks);
//  4. a scale move in the non-centred parameterisation: with u_j = L^-1 b_j held fixed, the
//     log-SDs take a joint random-walk step (correlations fixed), b_j -> D b_j, Sigma -> D Sigma D;
//     the acceptance ratio is the likelihood ratio times the prior ratio in (log-SD, CPC)
//     coordinates. The centred Gibbs step of Sigma_k is slow when levels carry little data
//     (an observation-level effect); this move is fast exactly then, and makes three proposals
//     a sweep there (scale_proposals).
// Random numbers: Rng(key, iteration, level, extra_stream(block, purpose)), so draws do not
// depend on the thread count; sums over rows use fixed chunks added in order.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "bglmm/glmm_model.hpp"
#include "bglmm/likelihood_block.hpp"
#include "bglmm/linear_predictor.hpp"
#include "bglmm/linalg/small_cholesky.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/random_blocks.hpp"
#include "bglmm/rng/distributions.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/covariance.hpp"
#include "bglmm/steps/covariance_prior.hpp"
#include "bglmm/steps/group_mh.hpp"
#include "bglmm/steps/accept.hpp"
#include "bglmm/steps/adaptive_mh.hpp"

namespace bglmm::steps {

enum class ExtraPurpose : std::uint64_t {
  Level = 0, Covariance = 1, Shift = 2, Scale = 3, Nested = 4, NestedScale = 5,
  NestedCollapsed = 6, NestedSplit = 7
};

inline rng::Stream extra_stream(Index block, ExtraPurpose purpose) {
  return static_cast<rng::Stream>(1000 + 8 * static_cast<std::uint64_t>(block) +
                                  static_cast<std::uint64_t>(purpose));
}

// Level j's data part at b_j + delta (eta_rows holds eta at b_j): log-likelihood kernel and,
// with kDerivs, score Z'u and information Z'WZ. The level's rows are gathered kLikBlock at a
// time into contiguous arrays for the vectorised family kernels (likelihood_block.hpp).
template <typename G, bool kDerivs, typename V, typename M>
double level_pass(const GlmmData& d, const ExtraBlock& blk, Index j, const Vector& eta_rows,
                  const V& delta, const FamilyParams& fp, V& grad, M& info) {
  const Index q = delta.size();
  if constexpr (kDerivs) {
    grad.setZero(q);
    info.setZero(q, q);
  }
  double ll = 0.0;
  BlockArray eta, yb, nb, u, w, wb;
  const bool weighted = d.obs.weighted();
  Eigen::Matrix<double, kLikBlock, Eigen::Dynamic, 0, kLikBlock, kMaxRandomTerms> zb(kLikBlock, q);
  const Index end = blk.end(j);
  for (Index start = blk.begin(j); start < end; start += kLikBlock) {
    const Index len = std::min(kLikBlock, end - start);
    const Index padded = padded_length(len);
    eta.resize(padded);
    yb.resize(padded);
    nb.resize(padded);
    if (weighted) wb.resize(padded);
    for (Index r = 0; r < len; ++r) {
      const Index i = static_cast<Index>(blk.level_rows[start + r]);
      if (weighted) wb[r] = d.obs.weights[i];
      const double* zi = blk.z.data() + i * q;
      double e = eta_rows[i];
      for (Index k = 0; k < q; ++k) {
        zb(r, k) = zi[k];
        e += zi[k] * delta[k];
      }
      eta[r] = e;
      yb[r] = d.obs.y[i];
      nb[r] = d.obs.trials[i];
    }
    for (Index r = len; r < padded; ++r) eta[r] = yb[r] = nb[r] = 0.0;  // finite, never summed
    const double* wt = weighted ? wb.data() : nullptr;
    if constexpr (kDerivs) {
      ll += lik_all<G>(yb, nb, eta, wt, fp, u, w, len);
      for (Index k = 0; k < q; ++k) {
        double gk = 0.0;
        for (Index r = 0; r < len; ++r) gk += u[r] * zb(r, k);
        grad[k] += gk;
        for (Index l = 0; l <= k; ++l) {
          double hkl = 0.0;
          for (Index r = 0; r < len; ++r) hkl += w[r] * zb(r, k) * zb(r, l);
          info(k, l) += hkl;
        }
      }
    } else {
      ll += lik_kernel<G>(yb, nb, eta, wt, fp, len);
    }
  }
  if constexpr (kDerivs)
    for (Index k = 0; k < q; ++k)
      for (Index l = 0; l < k; ++l) info(l, k) = info(k, l);
  return ll;
}

// Adds z_i' delta to eta_rows for the rows of level j.
template <typename V>
void shift_level_rows(const ExtraBlock& blk, Index j, const V& delta, Vector& eta_rows) {
  const Index q = delta.size();
  for (Index r = blk.begin(j); r < blk.end(j); ++r) {
    const Index i = static_cast<Index>(blk.level_rows[r]);
    const double* zi = blk.z.data() + i * q;
    double change = 0.0;
    for (Index k = 0; k < q; ++k) change += zi[k] * delta[k];
    eta_rows[i] += change;
  }
}

struct ExtraStepArgs {
  rng::ChainKey key;
  std::uint64_t iteration = 0;
  int threads = 1;
  bool adapt = false;  // warm-up: adapt the scale move's step
  double gain = 0.0;
  bool drop_correction = false;  // TESTING ONLY (as GlmmConfig)
  bool translation = true;       // run the translation moves
  bool collapsed_drop_normaliser = false;  // TESTING ONLY (GlmmConfig)
  std::int64_t warmup_length = 0;          // the warm-up's sweeps (the collapsed move learns in it)
};

// 1. every level's b_{k,j} by Laplace-proposal MH.
template <typename G, int Q>
void extra_level_step_q(const GlmmData& d, const ExtraBlock& blk, ExtraBlockState& st,
                        const FamilyParams& fp, Index block, Vector& eta_rows,
                        const ExtraStepArgs& a, ExtraStepInfo& out) {
  using V = typename QTypes<Q>::Vec;
  using M = typename QTypes<Q>::Mat;
  const Index m = blk.m(), q = fixed_or(Q, blk.q());
  constexpr bool kGaussian = std::is_same_v<G, GaussianIdentity>;
  const M prec = st.prec;
  std::vector<double> prob(static_cast<std::size_t>(m), 0.0);
  if constexpr (kGaussian) {
    st.level_grad.resize(m, q);
    st.level_info.resize(m, q * q);
  }
  ExceptionVault vault;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, group_chunk(m, a.threads)) num_threads(a.threads)
#endif
  for (Index j = 0; j < m; ++j) {
    vault.run([&] {
      rng::Rng rng(a.key, a.iteration, static_cast<std::uint64_t>(j),
                   extra_stream(block, ExtraPurpose::Level));
      const V x = st.b.row(j).transpose();
      const V zero = V::Zero(q);
      V grad(q), grad_new(q), mean_fwd(q), mean_rev(q), z(q);
      M info(q, q), info_new(q, q);
      for (Index k = 0; k < q; ++k) z[k] = rng.std_normal();
      const double ll = level_pass<G, true>(d, blk, j, eta_rows, zero, fp, grad, info);
      linalg::SmallCholesky<M> llt_fwd(q), llt_rev(q);
      if (!std::isfinite(ll) || !laplace_moments(x, grad, info, zero, prec, mean_fwd, llt_fwd))
        return;
      V proposal = llt_fwd.upper_solve(z);
      proposal += mean_fwd;
      const V delta = proposal - x;
      if constexpr (kGaussian) {
        // the Laplace proposal is the exact conditional: a Gibbs draw, accepted; the score moves
        // linearly (the information does not depend on eta)
        const V g_new = grad - info * delta;
        for (Index k = 0; k < q; ++k) {
          st.level_grad(j, k) = g_new[k];
          for (Index l = 0; l < q; ++l) st.level_info(j, k * q + l) = info(k, l);
        }
        prob[static_cast<std::size_t>(j)] = 1.0;
        st.b.row(j) = proposal.transpose();
        shift_level_rows(blk, j, delta, eta_rows);
        return;
      }
      const double ll_new =
          level_pass<G, true>(d, blk, j, eta_rows, delta, fp, grad_new, info_new);
      if (!std::isfinite(ll_new) || !grad_new.allFinite() || !info_new.allFinite() ||
          !laplace_moments(proposal, grad_new, info_new, zero, prec, mean_rev, llt_rev))
        return;
      double log_ratio =
          ll_new + gaussian_quad(proposal, zero, prec) - ll - gaussian_quad(x, zero, prec);
      if (!a.drop_correction)
        log_ratio += laplace_log_density(x, mean_rev, llt_rev) -
                     laplace_log_density(proposal, mean_fwd, llt_fwd);
      const MhDecision decision = mh_accept(log_ratio, rng);
      prob[static_cast<std::size_t>(j)] = decision.prob;
      if (decision.accepted) {
        st.b.row(j) = proposal.transpose();
        shift_level_rows(blk, j, delta, eta_rows);  // level j's rows only
      }
    });
  }
  vault.rethrow();
  double total = 0.0;
  for (double v : prob) total += v;
  out.level_accept_mean = m > 0 ? total / static_cast<double>(m) : 1.0;
}

template <typename G>
void extra_level_step(const GlmmData& d, const ExtraBlock& blk, ExtraBlockState& st,
                      const FamilyParams& fp,
                      Index block, Vector& eta_rows, const ExtraStepArgs& a,
                      ExtraStepInfo& out) {
  with_q(blk.q(), [&](auto qc) {
    extra_level_step_q<G, decltype(qc)::value>(d, blk, st, fp, block, eta_rows, a, out);
  });
}

inline void commit_extra_sigma(ExtraBlockState& st, GlmmState::SigmaFactors&& f) {
  st.sigma = std::move(f.sigma);
  st.chol = std::move(f.chol);
  st.prec = std::move(f.prec);
}

inline bool set_extra_sigma(ExtraBlockState& st, const Matrix& sigma) {
  GlmmState::SigmaFactors f;
  if (!GlmmState::factor_sigma(sigma, f)) return false;
  commit_extra_sigma(st, std::move(f));
  return true;
}

// 2. Sigma_k | b_k.
inline void extra_covariance_step(const steps::CovariancePrior& prior, ExtraBlockState& st,
                                  rng::Rng& rng) {
  const Matrix scatter = scatter_matrix(st.b, Vector::Zero(st.b.cols()));
  const Matrix next = covariance_conditional_step(prior, scatter, st.b.rows(), st.sigma, rng);
  if (!set_extra_sigma(st, next))
    throw NumericalError("random-effect covariance of an extra block is not positive definite");
}

// 3. The translation move of block k (see the header comment), all pairs s at once: b_k[j, t_s]
// + delta_s w_sj and beta_{c_s} - delta_s. The likelihood is unchanged; delta's conditional is
// Gaussian, precision A = Q0[c, c] + P_k[t, t] * sum_j w_j w_j', drawn exactly. Jointly, because
// single pairs trade places slowly when their columns are correlated (an uncentred level
// covariate against the intercept: VerbAgg's Anger).
inline void extra_translation_step(const GlmmData& d, const GlmmPriors& pr, const ExtraBlock& blk,
                                   ExtraBlockState& st, GlmmState& s, rng::Rng& rng) {
  const Index n_shift = static_cast<Index>(blk.shifts.size());
  if (n_shift == 0) return;
  const Index m = blk.m();
  const Vector r = s.beta - pr.beta_mean;
  const Vector qr = pr.beta_prec * r;
  Matrix a(n_shift, n_shift);
  Vector lin(n_shift);
  RowMatrix pb = st.b * st.prec;  // m x q: (P b_j)'
  for (Index u = 0; u < n_shift; ++u) {
    const ExtraBlock::Shift& su = blk.shifts[static_cast<std::size_t>(u)];
    lin[u] = qr[su.col] - su.w.dot(pb.col(su.term));
    for (Index v = 0; v <= u; ++v) {
      const ExtraBlock::Shift& sv = blk.shifts[static_cast<std::size_t>(v)];
      a(u, v) = a(v, u) =
          pr.beta_prec(su.col, sv.col) + st.prec(su.term, sv.term) * su.w.dot(sv.w);
    }
  }
  Eigen::LLT<Matrix> llt(a);
  if (llt.info() != Eigen::Success) return;
  Vector z(n_shift);
  for (Index u = 0; u < n_shift; ++u) z[u] = rng.std_normal();
  const Vector delta = llt.solve(lin) + Matrix(llt.matrixU()).triangularView<Eigen::Upper>().solve(z);
  if (!delta.allFinite()) return;
  for (Index u = 0; u < n_shift; ++u) {
    const ExtraBlock::Shift& sh = blk.shifts[static_cast<std::size_t>(u)];
    const double du = delta[u];
    st.b.col(sh.term) += du * sh.w;
    s.beta[sh.col] -= du;
    for (std::size_t k = 0; k < d.centred_cols.size(); ++k)
      if (d.centred_cols[k] == sh.col)
        s.gamma.col(d.centred_term[k]) -= du * d.centred_value.col(static_cast<Index>(k));
  }
  (void)m;
}

// 3b. The nested translation move of a block whose levels sit within a parent block's: for
// each parent level p and pair (child term t, parent term u) with identical columns, the
// parent's x_p[u] + delta_p and each child's b_c[t] - delta_p leave eta unchanged, so delta_p
// has a Gaussian full conditional from the two blocks' priors (drawn exactly, each parent level
// with its own random numbers). Without it a small parent SD mixes as slowly as the Gibbs
// sampler of a nested model does (Pastes: batch SD, bulk ESS 33 of 4,000).
inline void nested_translation_step(const GlmmData& d, ExtraBlock const& blk, Index block,
                                    ExtraBlockState& st, GlmmState& s, const ExtraStepArgs& a) {
  if (blk.parent < -1 || blk.nest_pairs.empty()) return;
  const bool primary = blk.parent == -1;
  ExtraBlockState* par = primary ? nullptr : &s.extra[static_cast<std::size_t>(blk.parent)];
  const Matrix& pp = primary ? s.sigma_prec : par->prec;
  const Index n_parent = static_cast<Index>(blk.child_start.size()) - 1;
  const Index q = blk.q();
  for (const auto& [t, u] : blk.nest_pairs) {
    Vector delta = Vector::Zero(n_parent);
    for (Index p = 0; p < n_parent; ++p) {
      rng::Rng rng(a.key, a.iteration, static_cast<std::uint64_t>(p),
                   extra_stream(block, ExtraPurpose::Nested));
      // parent's deviation from its prior mean
      Vector dev = primary ? Vector(s.gamma.row(p).transpose()) : Vector(par->b.row(p).transpose());
      if (primary) {
        Vector mu(d.q());
        group_centre(d, s.beta, p, mu);
        dev -= mu;
      }
      double prec = pp(u, u), lin = -pp.row(u).dot(dev);
      for (Index c = blk.child_start[static_cast<std::size_t>(p)];
           c < blk.child_start[static_cast<std::size_t>(p + 1)]; ++c) {
        const Index j = blk.children[static_cast<std::size_t>(c)];
        prec += st.prec(t, t);
        for (Index l = 0; l < q; ++l) lin += st.prec(t, l) * st.b(j, l);
      }
      const double dp = lin / prec + rng.std_normal() / std::sqrt(prec);
      if (!std::isfinite(dp)) continue;
      delta[p] = dp;
      if (primary) s.gamma(p, u) += dp; else par->b(p, u) += dp;
      for (Index c = blk.child_start[static_cast<std::size_t>(p)];
           c < blk.child_start[static_cast<std::size_t>(p + 1)]; ++c)
        st.b(blk.children[static_cast<std::size_t>(c)], t) -= dp;
    }
  }
}

// 3c. The nested scale move: the parent's SD of term u scales by e^eps with the parent's
// standardised effects fixed (dev_p[u] -> e^eps dev_p[u]) while each child absorbs the change
// (b_c[t] -= the parent's change), so eta, and the likelihood, do not change. In coordinates
// (log s, the parent's u, the children's b) the map is a translation, so the ratio is the
// parent's prior on Sigma in (log-SD, CPC) coordinates times the children's N(0, Sigma_k)
// densities: O(levels), no pass over the data, several proposals per sweep. It moves a parent SD
// that the data inform only through its children (Pastes' batch SD).
inline void nested_scale_step(const GlmmData& d, const GlmmPriors& pr, const ExtraBlock& blk,
                              Index block, ExtraBlockState& st, GlmmState& s,
                              const ExtraStepArgs& a, ExtraStepInfo& out) {
  out.nest_accept = 0.0;
  if (blk.parent < -1 || blk.nest_pairs.empty()) return;
  const bool primary = blk.parent == -1;
  ExtraBlockState* par = primary ? nullptr : &s.extra[static_cast<std::size_t>(blk.parent)];
  const steps::CovariancePrior& pprior =
      primary ? pr.cov : pr.extra_cov[static_cast<std::size_t>(blk.parent)];
  const Index n_parent = static_cast<Index>(blk.child_start.size()) - 1;
  const Index qp = primary ? d.q() : par->b.cols();
  // the parent's deviations from their prior means (m_p x q_p)
  RowMatrix dev = primary ? group_deviations(d, s.beta, s.gamma) : par->b;
  Vector shift_total = Vector::Zero(n_parent);  // per parent level, summed over accepted moves
  constexpr int kProposals = 4;
  rng::Rng rng(a.key, a.iteration, 0, extra_stream(block, ExtraPurpose::NestedScale));
  int accepted = 0, proposed = 0;
  for (const auto& [t, u] : blk.nest_pairs) {
    for (int r = 0; r < kProposals; ++r) {
      const Matrix& psig = primary ? s.sigma : par->sigma;
      Vector x;
      if (!unconstrained_from_sigma(psig, x)) break;
      const double eps = std::exp(st.log_nest_step) * rng.std_normal();
      Vector x_new = x;
      x_new[u] += eps;
      double log_ratio = covariance_log_prior_unconstrained(pprior, x_new, qp) -
                         covariance_log_prior_unconstrained(pprior, x, qp);
      const double factor = std::expm1(eps);
      // children: b_c[t] -> b_c[t] - factor dev_p[u]; log N changes by
      // -(1/2)[(b - h e_t)' P (b - h e_t) - b' P b] = h (P b)_t - h^2 P_tt / 2
      if (std::isfinite(log_ratio)) {
        for (Index p = 0; p < n_parent; ++p) {
          const double h = factor * dev(p, u);
          for (Index c = blk.child_start[static_cast<std::size_t>(p)];
               c < blk.child_start[static_cast<std::size_t>(p + 1)]; ++c) {
            const Index j = blk.children[static_cast<std::size_t>(c)];
            log_ratio += h * st.prec.row(t).dot(st.b.row(j)) - 0.5 * h * h * st.prec(t, t);
          }
        }
      }
      ++proposed;
      const MhDecision decision = mh_accept(log_ratio, rng);
      if (decision.accepted) {
        Matrix chol;
        GlmmState::SigmaFactors f;
        if (chol_from_unconstrained(x_new, qp, chol) &&
            GlmmState::factor_sigma(chol * chol.transpose(), f)) {
          if (primary) s.commit_sigma(std::move(f));
          else commit_extra_sigma(*par, std::move(f));
          for (Index p = 0; p < n_parent; ++p) {
            const double h = factor * dev(p, u);
            dev(p, u) += h;
            if (primary) s.gamma(p, u) += h; else par->b(p, u) += h;
            shift_total[p] += h;
            for (Index c = blk.child_start[static_cast<std::size_t>(p)];
                 c < blk.child_start[static_cast<std::size_t>(p + 1)]; ++c)
              st.b(blk.children[static_cast<std::size_t>(c)], t) -= h;
          }
          ++accepted;
        }
      }
      if (a.adapt)
        st.log_nest_step = std::clamp(st.log_nest_step + a.gain * (decision.prob - 0.44), -12.0, 3.0);
    }
    shift_total.setZero();
  }
  out.nest_accept = proposed > 0 ? static_cast<double>(accepted) / proposed : 0.0;
}

// 3d. The collapsed scale move of a scalar block nested in a scalar parent ((1 | a/b), brood
// within location): both SDs at once, with each parent level's split integrated out. For
// parent level p with effect deviation a_p and children b_c (n_p of them), the translations
// a_p + delta, b_c - delta leave eta unchanged, and delta_p has a Gaussian full conditional
// (nested_translation_step); integrating it out,
//   p(s_P, s_C | a + b, .) ∝ p(s_P) p(s_C) prod_p (P_P P_C^{n_p})^{1/2} h_p^{-1/2}
//                            exp(-(P_P a_p^2 + P_C S2_p - l_p^2 / h_p) / 2),
// P = s^-2, S1_p, S2_p the sum and sum of squares of the children, h_p = P_P + n_p P_C and
// l_p = -P_P a_p + P_C S1_p. Sixteen proposals on (log s_P, log s_C) target it (adaptive_mh.hpp:
// random walks whose covariance is learned in warm-up, the two SDs being correlated along the
// ridge, plus an independence proposal after it); then delta_p is drawn from its conditional
// under the new SDs (a partially collapsed Gibbs block; keeping the old split instead would be
// wrong). When a parent has one or two children the data see only a_p + b_c, and the two SDs
// trade variance along a ridge that the one-SD moves cross slowly (grouseticks, (1 | BROOD) +
// (1 | LOCATION), seeds 1-5, min bulk ESS of 4,000: no collapsed move 150-250; eight isotropic
// random walks 320-460; the learned proposals 670-750, and 64 of them do no better). O(16
// levels), no pass over the data.
constexpr int kCollapsedProposals = 16;

inline void nested_collapsed_scale_step(const GlmmData& d, const GlmmPriors& pr,
                                        const ExtraBlock& blk, Index block, ExtraBlockState& st,
                                        GlmmState& s, const ExtraStepArgs& a,
                                        ExtraStepInfo& out) {
  out.collapsed_accept = 0.0;
  if (blk.parent < -1 || blk.nest_pairs.empty() || blk.q() != 1) return;
  const bool primary = blk.parent == -1;
  ExtraBlockState* par = primary ? nullptr : &s.extra[static_cast<std::size_t>(blk.parent)];
  if ((primary ? d.q() : par->b.cols()) != 1) return;
  const steps::CovariancePrior& pprior =
      primary ? pr.cov : pr.extra_cov[static_cast<std::size_t>(blk.parent)];
  const steps::CovariancePrior& cprior = pr.extra_cov[static_cast<std::size_t>(block)];
  const Index n_parent = static_cast<Index>(blk.child_start.size()) - 1;
  const RowMatrix dev = primary ? group_deviations(d, s.beta, s.gamma) : par->b;
  Vector s1 = Vector::Zero(n_parent), s2 = Vector::Zero(n_parent), n = Vector::Zero(n_parent);
  for (Index p = 0; p < n_parent; ++p)
    for (Index c = blk.child_start[static_cast<std::size_t>(p)];
         c < blk.child_start[static_cast<std::size_t>(p + 1)]; ++c) {
      const double b = st.b(blk.children[static_cast<std::size_t>(c)], 0);
      s1[p] += b;
      s2[p] += b * b;
      n[p] += 1.0;
    }
  // the collapsed log density at (log s_P, log s_C)
  Vector one(1);  // a 1 x 1 Sigma's unconstrained coordinate, log s
  auto log_target = [&](double xp, double xc) {
    one[0] = xp;
    double lp = covariance_log_prior_unconstrained(pprior, one, 1);
    one[0] = xc;
    lp += covariance_log_prior_unconstrained(cprior, one, 1);
    if (!std::isfinite(lp)) return lp;
    const double pp = std::exp(-2.0 * xp), pc = std::exp(-2.0 * xc);
    for (Index p = 0; p < n_parent; ++p) {
      const double ap = dev(p, 0);
      if (n[p] == 0.0) {
        lp += -xp - 0.5 * pp * ap * ap;
        continue;
      }
      const double h = pp + n[p] * pc, l = -pp * ap + pc * s1[p];
      lp += -xp - n[p] * xc - 0.5 * (pp * ap * ap + pc * s2[p] - l * l / h);
      if (!a.collapsed_drop_normaliser) lp -= 0.5 * std::log(h);
    }
    return lp;
  };
  Vector x(2);
  x << 0.5 * std::log((primary ? s.sigma : par->sigma)(0, 0)), 0.5 * std::log(st.sigma(0, 0));
  double cur = log_target(x[0], x[1]);
  if (!std::isfinite(cur)) return;
  AdaptiveMhArgs ma;
  ma.key = a.key;
  ma.iteration = a.iteration;
  ma.adapt = a.adapt;
  ma.warmup = a.warmup_length;
  ma.random_walks = kCollapsedProposals;
  ma.stream = extra_stream(block, ExtraPurpose::NestedCollapsed);
  ma.accept_goal = 0.35;
  int proposed = 0, accepted = 0;  // after warm-up an independence proposal comes first
  adaptive_mh(
      st.collapsed, x, cur, ma,
      [&](const Vector& xp) {
        ++proposed;
        return log_target(xp[0], xp[1]);
      },
      [&] { ++accepted; });
  out.collapsed_accept = proposed > 0 ? static_cast<double>(accepted) / proposed : 0.0;
  const double xp = x[0], xc = x[1];
  if (accepted > 0) {
    GlmmState::SigmaFactors fp, fc;
    if (!GlmmState::factor_sigma(Matrix::Constant(1, 1, std::exp(2.0 * xp)), fp) ||
        !GlmmState::factor_sigma(Matrix::Constant(1, 1, std::exp(2.0 * xc)), fc))
      return;  // not reached for finite x; the state is untouched
    if (primary) s.commit_sigma(std::move(fp));
    else commit_extra_sigma(*par, std::move(fp));
    commit_extra_sigma(st, std::move(fc));
  }
  // the split | the new SDs, every parent level with its own random numbers
  const double pp = std::exp(-2.0 * xp), pc = std::exp(-2.0 * xc);
  for (Index p = 0; p < n_parent; ++p) {
    if (n[p] == 0.0) continue;
    rng::Rng prng(a.key, a.iteration, static_cast<std::uint64_t>(p),
                  extra_stream(block, ExtraPurpose::NestedSplit));
    const double h = pp + n[p] * pc, l = -pp * dev(p, 0) + pc * s1[p];
    const double dp = l / h + prng.std_normal() / std::sqrt(h);
    if (!std::isfinite(dp)) continue;
    if (primary) s.gamma(p, 0) += dp; else par->b(p, 0) += dp;
    for (Index c = blk.child_start[static_cast<std::size_t>(p)];
         c < blk.child_start[static_cast<std::size_t>(p + 1)]; ++c)
      st.b(blk.children[static_cast<std::size_t>(c)], 0) -= dp;
  }
}

// 4. The non-centred scale move of block k.
// Gaussian family: in the non-centred coordinates (log s_t, u = L^-1 b) the likelihood of a
// term's scale factor f (b[., t] -> f b[., t]) is exactly quadratic, (f - 1) G_t -
// (f - 1)^2 H_t / 2 with G_t = sum_j b_jt g_jt and H_t = sum_j b_jt^2 H_j[t, t] from the level
// step's scores and information, so log s_t | u, the CPCs and the rest is slice-sampled exactly
// at O(1) per evaluation: the non-centred half of an interweaving (ASIS) pair, the centred half
// being Sigma_k | b_k.
inline void gaussian_scale_step(const steps::CovariancePrior& prior, const ExtraBlock& blk,
                                ExtraBlockState& st, Vector& eta_rows, rng::Rng& rng,
                                ExtraStepInfo& out) {
  const Index q = blk.q(), m = blk.m();
  Vector x;
  if (!unconstrained_from_sigma(st.sigma, x)) return;
  Vector factor = Vector::Ones(q);
  const RowMatrix b0 = st.b;
  for (Index t = 0; t < q; ++t) {
    double g = 0.0, h = 0.0;
    for (Index j = 0; j < m; ++j) {
      g += st.b(j, t) * st.level_grad(j, t);
      h += st.b(j, t) * st.b(j, t) * st.level_info(j, t * q + t);
    }
    const double base = covariance_log_prior_unconstrained(prior, x, q);
    if (!std::isfinite(base)) return;
    Vector y = x;
    auto log_f = [&](double lam) {
      y[t] = x[t] + lam;
      const double lp = covariance_log_prior_unconstrained(prior, y, q);
      const double e = std::expm1(lam);
      return std::isfinite(lp) ? e * g - 0.5 * e * e * h + lp - base
                               : -std::numeric_limits<double>::infinity();
    };
    const double lam = slice_step(log_f, 0.0, 1.0, rng);
    const double f = std::exp(lam);
    // the scores move with the effects: g_j -= H_j (b_j' - b_j)
    for (Index j = 0; j < m; ++j) {
      const double change = (f - 1.0) * st.b(j, t);
      for (Index k = 0; k < q; ++k) st.level_grad(j, k) -= st.level_info(j, k * q + t) * change;
    }
    st.b.col(t) *= f;
    x[t] += lam;
    factor[t] *= f;
  }
  Matrix chol;
  if (!chol_from_unconstrained(x, q, chol) || !set_extra_sigma(st, chol * chol.transpose())) {
    st.b = b0;  // keep the state consistent (never expected: x stays finite)
    return;
  }
  for (Index i = 0; i < blk.rows(); ++i) {
    const Index j = static_cast<Index>(blk.codes[i]);
    double c = 0.0;
    for (Index t = 0; t < q; ++t) c += blk.z(i, t) * (factor[t] - 1.0) * b0(j, t);
    eta_rows[i] += c;
  }
  out.scale_accepted = true;
}

// The likelihood ratio: one pass over the rows, or (gaussian) exact from the level step's
// scores and information, sum_j h_j'g_j - h_j'H_j h_j / 2 with h_j the change of b_j.
template <typename G>
void extra_scale_step(const GlmmData& d, const steps::CovariancePrior& prior,
                      const ExtraBlock& blk, ExtraBlockState& st, const FamilyParams& fp,
                      Vector& eta_rows,
                      rng::Rng& rng, const ExtraStepArgs& a, ExtraStepInfo& out) {
  const Index q = blk.q();
  Vector x;
  if (!unconstrained_from_sigma(st.sigma, x)) return;
  const double step = std::exp(st.log_scale_step);
  Vector eps(q), factor(q);
  for (Index k = 0; k < q; ++k) {
    eps[k] = step * rng.std_normal();
    factor[k] = std::expm1(eps[k]);  // b_t' - b_t = (e^eps - 1) b_t
  }
  Vector x_new = x;
  x_new.head(q) += eps;
  const double prior_ratio = covariance_log_prior_unconstrained(prior, x_new, q) -
                             covariance_log_prior_unconstrained(prior, x, q);
  auto change = [&](Index i) {
    const Index j = static_cast<Index>(blk.codes[i]);
    double c = 0.0;
    for (Index k = 0; k < q; ++k) c += blk.z(i, k) * factor[k] * st.b(j, k);
    return c;
  };
  double log_ratio = -std::numeric_limits<double>::infinity();
  if (std::isfinite(prior_ratio) && std::is_same_v<G, GaussianIdentity> &&
      st.level_grad.rows() == blk.m()) {
    double lik_ratio = 0.0;
    Vector h(q);
    for (Index j = 0; j < blk.m(); ++j) {
      for (Index k = 0; k < q; ++k) h[k] = factor[k] * st.b(j, k);
      for (Index k = 0; k < q; ++k) {
        lik_ratio += h[k] * st.level_grad(j, k);
        for (Index l = 0; l < q; ++l) lik_ratio -= 0.5 * h[k] * st.level_info(j, k * q + l) * h[l];
      }
    }
    log_ratio = lik_ratio + prior_ratio;
  } else if (std::isfinite(prior_ratio)) {
    const double lik_ratio = chunked_sum(blk.rows(), kRowChunk, a.threads,
                                         [&](std::int64_t begin, std::int64_t end) {
      // rows are contiguous here: blocks of kLikBlock through the vectorised kernels
      double total = 0.0;
      BlockArray e0, e1, yb, nb;
      for (Index start = begin; start < end; start += kLikBlock) {
        const Index len = std::min<Index>(kLikBlock, end - start);
        const Index padded = padded_length(len);
        e0.resize(padded);
        e1.resize(padded);
        yb.resize(padded);
        nb.resize(padded);
        for (Index r = 0; r < len; ++r) {
          const Index i = start + r;
          e0[r] = eta_rows[i];
          e1[r] = eta_rows[i] + change(i);
          yb[r] = d.obs.y[i];
          nb[r] = d.obs.trials[i];
        }
        for (Index r = len; r < padded; ++r) e0[r] = e1[r] = yb[r] = nb[r] = 0.0;
        const double* wt = d.obs.weights_from(start);
        total += lik_kernel<G>(yb, nb, e1, wt, fp, len) - lik_kernel<G>(yb, nb, e0, wt, fp, len);
      }
      return total;
    });
    log_ratio = lik_ratio + prior_ratio;
  }
  out.scale_accepted = false;
  const MhDecision decision = mh_accept(log_ratio, rng);
  if (decision.accepted) {
    Matrix chol;
    if (chol_from_unconstrained(x_new, q, chol) && set_extra_sigma(st, chol * chol.transpose())) {
      for (Index i = 0; i < blk.rows(); ++i) eta_rows[i] += change(i);
      if (st.level_grad.rows() == blk.m())  // gaussian: the scores move with the effects
        for (Index j = 0; j < blk.m(); ++j)
          for (Index k = 0; k < q; ++k) {
            double hk = 0.0;
            for (Index l = 0; l < q; ++l) hk += st.level_info(j, k * q + l) * factor[l] * st.b(j, l);
            st.level_grad(j, k) -= hk;
          }
      for (Index k = 0; k < q; ++k) st.b.col(k) *= 1.0 + factor[k];
      out.scale_accepted = true;
    }
  }
  if (a.adapt) {
    const double target = q == 1 ? 0.44 : 0.3;
    st.log_scale_step = std::clamp(st.log_scale_step + a.gain * (decision.prob - target), -12.0, 3.0);
  }
}

// How many proposals of the scale move a sweep makes: three where levels average at most two
// rows (an observation-level effect, whose SD the centred step barely moves: grouseticks' INDEX,
// bulk ESS 400-610 of 4,000 with one), else one. Each is a pass over the rows.
inline int scale_proposals(const ExtraBlock& blk) { return 2 * blk.m() >= blk.rows() ? 3 : 1; }

// Starting values of an extra block: every level's effects to its conditional mode given the
// rest (damped Newton on its rows), eta_rows kept in step; the offset is not touched (the
// caller applies the change).
template <typename G>
void extra_level_modes(const GlmmData& d, const ExtraBlock& blk, ExtraBlockState& st,
                       const FamilyParams& fp,
                       Vector& eta_rows, int threads) {
  const Index m = blk.m(), q = blk.q();
  const QMat prec = st.prec;
  ExceptionVault vault;
  (void)threads;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, group_chunk(m, threads)) num_threads(threads)
#endif
  for (Index j = 0; j < m; ++j) {
    vault.run([&] {
      QVec x = st.b.row(j).transpose(), zero = QVec::Zero(q), grad(q), mean(q), g2(q);
      QMat info(q, q), i2(q, q);
      linalg::SmallCholesky<QMat> llt(q);
      QVec shift = QVec::Zero(q);  // total change of b_j (eta_rows still at the start)
      for (int it = 0; it < 30; ++it) {
        const double ll = level_pass<G, true>(d, blk, j, eta_rows, shift, fp, grad, info);
        if (!std::isfinite(ll) || !laplace_moments(x, grad, info, zero, prec, mean, llt)) break;
        const double cur = ll + gaussian_quad(x, zero, prec);
        double f = 1.0;
        bool moved = false;
        for (int half = 0; half < 30 && !moved; ++half, f *= 0.5) {
          const QVec cand = x + f * (mean - x);
          const QVec sh = shift + (cand - x);
          const double lc = level_pass<G, false>(d, blk, j, eta_rows, sh, fp, g2, i2);
          if (std::isfinite(lc) && lc + gaussian_quad(cand, zero, prec) >= cur) {
            moved = (cand - x).norm() > 1e-10;
            shift = sh;
            x = cand;
            break;
          }
        }
        if (!moved) break;
      }
      st.b.row(j) = x.transpose();
      shift_level_rows(blk, j, shift, eta_rows);
    });
  }
  vault.rethrow();
}

// The whole phase: every extra block in order. Leaves the primary block's caches stale.
template <typename G>
void extra_blocks_sweep(const GlmmData& d, const GlmmPriors& pr, GlmmState& s, Vector& offset,
                        const ExtraStepArgs& a, std::vector<ExtraStepInfo>& info) {
  const Index n_blocks = static_cast<Index>(d.extra.size());
  if (n_blocks == 0) return;
  info.resize(static_cast<std::size_t>(n_blocks));
  full_linear_predictor(d, s, s.work.eta_rows, a.threads);
  // the effects at the start: the effective offset takes every block's change in one pass at
  // the end (the moves in between read eta_rows, never the offset)
  std::vector<RowMatrix> before;
  for (const ExtraBlockState& st : s.extra) before.push_back(st.b);
  for (Index k = 0; k < n_blocks; ++k) {
    const ExtraBlock& blk = d.extra[static_cast<std::size_t>(k)];
    ExtraBlockState& st = s.extra[static_cast<std::size_t>(k)];
    const steps::CovariancePrior& prior = pr.extra_cov[static_cast<std::size_t>(k)];
    ExtraStepInfo& out = info[static_cast<std::size_t>(k)];
    extra_level_step<G>(d, blk, st, s.params(), k, s.work.eta_rows, a, out);
    {
      rng::Rng rng(a.key, a.iteration, 0, extra_stream(k, ExtraPurpose::Covariance));
      extra_covariance_step(prior, st, rng);
    }
    if (a.translation) {
      rng::Rng rng(a.key, a.iteration, 0, extra_stream(k, ExtraPurpose::Shift));
      extra_translation_step(d, pr, blk, st, s, rng);
    }
    nested_translation_step(d, blk, k, st, s, a);
    nested_scale_step(d, pr, blk, k, st, s, a, out);
    nested_collapsed_scale_step(d, pr, blk, k, st, s, a, out);
    {
      rng::Rng rng(a.key, a.iteration, 0, extra_stream(k, ExtraPurpose::Scale));
      if (std::is_same_v<G, GaussianIdentity> && st.level_grad.rows() == blk.m())
        gaussian_scale_step(prior, blk, st, s.work.eta_rows, rng, out);
      else
      {
        bool moved = false;
        for (int r = 0; r < scale_proposals(blk); ++r) {
          extra_scale_step<G>(d, prior, blk, st, s.params(), s.work.eta_rows, rng, a, out);
          moved = moved || out.scale_accepted;
        }
        out.scale_accepted = moved;
      }
    }
  }
  std::vector<RowMatrix> change(static_cast<std::size_t>(n_blocks));
  for (Index k = 0; k < n_blocks; ++k)
    change[static_cast<std::size_t>(k)] = s.extra[static_cast<std::size_t>(k)].b - before[static_cast<std::size_t>(k)];
  const Index n = d.obs.rows();
  const Index n_chunks = (n + kRowChunk - 1) / kRowChunk;
  (void)n_chunks;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(static) num_threads(a.threads)
#endif
  for (Index c = 0; c < n_chunks; ++c) {
    const Index end = std::min<Index>(n, (c + 1) * kRowChunk);
    for (Index k = 0; k < n_blocks; ++k) {
      const ExtraBlock& blk = d.extra[static_cast<std::size_t>(k)];
      const RowMatrix& dk = change[static_cast<std::size_t>(k)];
      const Index q = blk.q();
      for (Index i = c * kRowChunk; i < end; ++i) {
        const double* zi = blk.z.data() + i * q;
        const double* di = dk.data() + blk.codes[i] * q;
        double v = 0.0;
        for (Index t = 0; t < q; ++t) v += zi[t] * di[t];
        offset[i] += v;
      }
    }
  }
  s.cache.valid = false;
}

}  // namespace bglmm::steps
