// bglmm/steps/interweave.hpp — ancillarity-sufficiency interweaving (ASIS; Yu & Meng 2011) of
// the centred and non-centred parameterisations of the random effects.
//
// The Gibbs steps of the sweep work in the centred ("sufficient") parameterisation gamma_j,
// where Sigma | gamma and beta_C | gamma are conjugate. They mix slowly when each group carries
// little information about its own effects: gamma and Sigma then move in lock-step. This step
// re-expresses the state in the non-centred ("ancillary") parameterisation
//   gamma_j = mu_j(beta_C) + L eta_j,   eta_j ~ N_q(0, I),   Sigma = L L',
// and updates psi = (beta_C, L) with every eta_j held fixed. In these coordinates the joint
// density is p(y | gamma(eta, psi)) N(eta | 0, I) p(psi): the eta prior does not involve psi
// (the |L|^m of the change of variables cancels), so the step targets the GLM-like posterior
//   log p(psi | eta, y) = sum_i log f(y_i | eta_i(psi)) + log p(psi) + const,
// a regression of y on the "covariates" d eta_i / d psi (z_i' E_j for beta_C, z_ik eta_jl for
// L_kl), low-dimensional and informed by all N observations. It is a Metropolis-Hastings step
// with a Newton (IWLS) proposal N(psi + H^{-1} g, H^{-1}) and the reverse proposal density in
// the ratio, so it leaves the posterior exactly invariant.
//
// psi = [beta_C (p_C) | L_kl for k >= l, row by row, the diagonal as log L_kk]. Its prior:
//   beta: N(m0, V0) given beta_F;
//   L: IW(nu, S) on Sigma = LL' times the Jacobian 2^q prod_k L_kk^{q-k+1} of Sigma -> L and
//      prod_k L_kk of the log diagonal:  sum_k (1 - k - nu) log L_kk - tr(S L^{-T} L^{-1}) / 2
//      (k = 1..q); with a prior on the SD (q = 1): log p(tau) + log tau.
// Gradient and Fisher information of the data part come from the per-group caches (score
// Z_j'u and information Z_j'WZ_j at gamma_j) by the chain rule — d gamma_j / d psi has one
// non-zero per column — so the current point costs no pass over the data; the proposal costs
// one pass, whose caches become the state's on acceptance. All sums over groups run over
// fixed chunks added in order, so the draws do not depend on the thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "bglmm/glmm_model.hpp"
#include "bglmm/linalg/cholesky.hpp"
#include "bglmm/linalg/mvn.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/group_mh.hpp"
#include "bglmm/steps/scale_prior.hpp"

namespace bglmm::steps {

// Where each component of psi sits and which row of gamma_j it moves.
struct NonCentredLayout {
  Index pc = 0;    // centred coefficients
  Index q = 0;     // random terms
  Index dim = 0;   // pc + q (q + 1) / 2
  std::vector<Index> row;   // dim: the random term (row of gamma_j) column c of d gamma_j/d psi moves
  std::vector<Index> kind;  // 0: beta_C (index a), 1: L_kl off-diagonal, 2: log L_kk
  std::vector<Index> a;     // beta_C: its index; L: k
  std::vector<Index> b;     // L: l
  std::vector<Index> perm;  // q: term order of L (position k holds random term perm[k])
  Matrix prior_scale;       // the inverse-Wishart scale in that order

  Index l_index(Index k, Index l) const { return pc + k * (k + 1) / 2 + l; }
};

// `reversed`: order the random terms last to first for L (a different ancillary
// parameterisation; see interweave_step).
inline NonCentredLayout make_non_centred_layout(const GlmmData& d, const GlmmPriors& pr,
                                                bool reversed) {
  NonCentredLayout lay;
  lay.pc = d.p_centred();
  lay.q = d.q();
  for (Index k = 0; k < lay.q; ++k) lay.perm.push_back(reversed ? lay.q - 1 - k : k);
  if (!pr.use_scale_prior) {
    lay.prior_scale.resize(lay.q, lay.q);
    for (Index k = 0; k < lay.q; ++k)
      for (Index l = 0; l < lay.q; ++l)
        lay.prior_scale(k, l) = pr.sigma.scale(lay.perm[static_cast<std::size_t>(k)],
                                               lay.perm[static_cast<std::size_t>(l)]);
  }
  lay.dim = lay.pc + lay.q * (lay.q + 1) / 2;
  for (Index a = 0; a < lay.pc; ++a) {
    lay.row.push_back(d.centred_term[static_cast<std::size_t>(a)]);
    lay.kind.push_back(0);
    lay.a.push_back(a);
    lay.b.push_back(0);
  }
  for (Index k = 0; k < lay.q; ++k)
    for (Index l = 0; l <= k; ++l) {
      lay.row.push_back(lay.perm[static_cast<std::size_t>(k)]);
      lay.kind.push_back(k == l ? 2 : 1);
      lay.a.push_back(k);
      lay.b.push_back(l);
    }
  return lay;
}

// psi from (beta_C, L), and back.
inline Vector pack_psi(const GlmmData& d, const NonCentredLayout& lay, const Vector& beta,
                       const Matrix& chol) {
  Vector psi(lay.dim);
  for (Index a = 0; a < lay.pc; ++a) psi[a] = beta[d.centred_cols[static_cast<std::size_t>(a)]];
  for (Index k = 0; k < lay.q; ++k)
    for (Index l = 0; l <= k; ++l)
      psi[lay.l_index(k, l)] = k == l ? std::log(chol(k, k)) : chol(k, l);
  return psi;
}

inline void unpack_psi(const GlmmData& d, const NonCentredLayout& lay, const Vector& psi,
                       Vector& beta, Matrix& chol) {
  for (Index a = 0; a < lay.pc; ++a) beta[d.centred_cols[static_cast<std::size_t>(a)]] = psi[a];
  chol.setZero(lay.q, lay.q);
  for (Index k = 0; k < lay.q; ++k)
    for (Index l = 0; l <= k; ++l)
      chol(k, l) = k == l ? std::exp(psi[lay.l_index(k, l)]) : psi[lay.l_index(k, l)];
}

// Sum over groups of the data log-likelihood (from `ll`), its gradient in psi and its Fisher
// information, from the per-group score `grad` and information `info` at gamma_j(eta_j, psi).
inline double non_centred_data_terms(const GlmmData& d, const NonCentredLayout& lay,
                                     const RowMatrix& eta, const Matrix& chol, const Vector& ll,
                                     const RowMatrix& grad, const RowMatrix& info, int threads,
                                     Vector& g_out, Matrix& f_out) {
  const Index m = d.m(), q = d.q(), dim = lay.dim;
  constexpr Index kGroupsPerChunk = 256;
  const Index n_chunks = (m + kGroupsPerChunk - 1) / kGroupsPerChunk;
  std::vector<Vector> gparts(static_cast<std::size_t>(n_chunks));
  std::vector<Matrix> fparts(static_cast<std::size_t>(n_chunks));
  std::vector<double> lparts(static_cast<std::size_t>(n_chunks), 0.0);
  ExceptionVault vault;
  (void)threads;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (n_chunks > 1)
#endif
  for (Index c = 0; c < n_chunks; ++c) {
    vault.run([&] {
      Vector gc = Vector::Zero(dim);
      Matrix fc = Matrix::Zero(dim, dim);
      Vector v(dim);
      double lc = 0.0;
      const Index g_end = std::min(m, (c + 1) * kGroupsPerChunk);
      for (Index g = c * kGroupsPerChunk; g < g_end; ++g) {
        lc += ll[g];
        for (Index col = 0; col < dim; ++col) {
          const Index kind = lay.kind[static_cast<std::size_t>(col)];
          const Index ka = lay.a[static_cast<std::size_t>(col)];
          if (kind == 0) v[col] = d.centred_value(g, ka);
          else if (kind == 1) v[col] = eta(g, lay.b[static_cast<std::size_t>(col)]);
          else v[col] = eta(g, ka) * chol(ka, ka);
        }
        const double* gr = grad.data() + g * q;
        const double* in = info.data() + g * q * q;
        for (Index c1 = 0; c1 < dim; ++c1) {
          const Index r1 = lay.row[static_cast<std::size_t>(c1)];
          gc[c1] += v[c1] * gr[r1];
          const double v1 = v[c1];
          for (Index c2 = 0; c2 <= c1; ++c2)
            fc(c1, c2) += v1 * v[c2] * in[r1 * q + lay.row[static_cast<std::size_t>(c2)]];
        }
      }
      gparts[static_cast<std::size_t>(c)] = std::move(gc);
      fparts[static_cast<std::size_t>(c)] = std::move(fc);
      lparts[static_cast<std::size_t>(c)] = lc;
    });
  }
  vault.rethrow();
  g_out = Vector::Zero(dim);
  f_out = Matrix::Zero(dim, dim);
  double total = 0.0;
  for (Index c = 0; c < n_chunks; ++c) {
    g_out += gparts[static_cast<std::size_t>(c)];
    f_out += fparts[static_cast<std::size_t>(c)];
    total += lparts[static_cast<std::size_t>(c)];
  }
  f_out = f_out.selfadjointView<Eigen::Lower>();
  return total;
}

// log p(psi) up to a constant; adds its gradient to `grad` and minus its Hessian to `neg_hess`.
// `beta` supplies beta_F (its centred entries are overwritten from psi).
inline double non_centred_log_prior(const GlmmData& d, const GlmmPriors& pr,
                                    const NonCentredLayout& lay, Vector beta, const Vector& psi,
                                    Vector& grad, Matrix& neg_hess) {
  const Index pc = lay.pc, q = lay.q;
  for (Index a = 0; a < pc; ++a) beta[d.centred_cols[static_cast<std::size_t>(a)]] = psi[a];
  const Vector dev = beta - pr.beta_mean;
  const Vector qdev = pr.beta_prec * dev;
  double lp = -0.5 * dev.dot(qdev);
  for (Index a = 0; a < pc; ++a) {
    const Index ca = d.centred_cols[static_cast<std::size_t>(a)];
    grad[a] -= qdev[ca];
    for (Index b = 0; b < pc; ++b)
      neg_hess(a, b) += pr.beta_prec(ca, d.centred_cols[static_cast<std::size_t>(b)]);
  }
  if (pr.use_scale_prior) {
    // q = 1: log p(tau) + log tau in x = log tau; derivatives by central differences.
    const Index i = lay.l_index(0, 0);
    const double x = psi[i];
    auto f = [&](double t) { return scale_prior_log_density(pr.scale_prior, std::exp(t)) + t; };
    const double f0 = f(x);
    const double h = 1e-4;
    const double fp = f(x + h), fm = f(x - h);
    if (std::isfinite(fp) && std::isfinite(fm) && std::isfinite(f0)) {
      grad[i] += (fp - fm) / (2.0 * h);
      neg_hess(i, i) -= (fp - 2.0 * f0 + fm) / (h * h);
    }
    return lp + f0;
  }
  // Inverse-Wishart in L coordinates. K = L^{-1}, G = K S K', T = G K, U = K'K:
  //   d/dL_ab [-tr(S K'K)/2] = T_ba,
  //   d2/dL_ab dL_cd [-tr(S K'K)/2] = -(K_bc T_da + G_bd U_ca + T_bc K_da).
  Matrix chol(q, q);
  unpack_psi(d, lay, psi, beta, chol);  // beta already holds psi's centred entries
  const Matrix kinv =
      chol.triangularView<Eigen::Lower>().solve(Matrix::Identity(q, q));
  const Matrix gm = kinv * lay.prior_scale * kinv.transpose();
  const Matrix tm = gm * kinv;
  const Matrix um = kinv.transpose() * kinv;
  lp -= 0.5 * gm.trace();
  const Index first = lay.l_index(0, 0);
  const Index nl = q * (q + 1) / 2;
  Vector gl(nl);
  Matrix hl(nl, nl);
  for (Index i1 = 0; i1 < nl; ++i1) {
    const Index a = lay.a[static_cast<std::size_t>(first + i1)];
    const Index b = lay.b[static_cast<std::size_t>(first + i1)];
    gl[i1] = tm(b, a);
    for (Index i2 = 0; i2 < nl; ++i2) {
      const Index c = lay.a[static_cast<std::size_t>(first + i2)];
      const Index dd = lay.b[static_cast<std::size_t>(first + i2)];
      hl(i1, i2) = -(kinv(b, c) * tm(dd, a) + gm(b, dd) * um(c, a) + tm(b, c) * kinv(dd, a));
    }
  }
  // to the log diagonal: d/dx_k = L_kk d/dL_kk; d2/dx_k2 = L_kk^2 d2/dL_kk2 + L_kk d/dL_kk
  Vector scale = Vector::Ones(nl);
  for (Index i1 = 0; i1 < nl; ++i1)
    if (lay.kind[static_cast<std::size_t>(first + i1)] == 2) {
      const Index k = lay.a[static_cast<std::size_t>(first + i1)];
      scale[i1] = chol(k, k);
    }
  for (Index i1 = 0; i1 < nl; ++i1) {
    for (Index i2 = 0; i2 < nl; ++i2) hl(i1, i2) *= scale[i1] * scale[i2];
    if (lay.kind[static_cast<std::size_t>(first + i1)] == 2) hl(i1, i1) += scale[i1] * gl[i1];
    gl[i1] *= scale[i1];
  }
  for (Index k = 0; k < q; ++k) {
    const double coef = -static_cast<double>(k) - pr.sigma.df;  // 1 - (k + 1) - nu
    const Index i1 = lay.l_index(k, k) - first;
    lp += coef * psi[first + i1];
    gl[i1] += coef;
  }
  grad.segment(first, nl) += gl;
  neg_hess.block(first, first, nl, nl) -= hl;
  return lp;
}

// Newton proposal moments at psi from the data terms (g_data, f_data) and prior terms
// (g_prior, h_prior). The curvature is the first positive definite of: the observed
// information (Fisher information, minus the first-order term of the log-diagonal
// coordinates) plus the prior's; the Fisher information plus the prior's; the Fisher
// information plus the prior's diagonal made non-negative. The choice depends only on psi
// (and the fixed eta), as the reverse density requires.
inline bool non_centred_moments(const NonCentredLayout& lay, const Vector& psi,
                                const Vector& g_data, const Matrix& f_data,
                                const Vector& g_prior, const Matrix& h_prior, Vector& mean,
                                Matrix& chol) {
  const Index dim = lay.dim;
  for (int attempt = 0; attempt < 3; ++attempt) {
    Matrix h = f_data;
    if (attempt == 0) {
      h += h_prior;
      for (Index c = 0; c < dim; ++c)
        if (lay.kind[static_cast<std::size_t>(c)] == 2) h(c, c) -= g_data[c];
    } else if (attempt == 1) {
      h += h_prior;
    } else {
      for (Index c = 0; c < dim; ++c) h(c, c) += std::max(0.0, h_prior(c, c)) + 1e-10;
    }
    Eigen::LLT<Matrix> llt(h);
    if (llt.info() != Eigen::Success) continue;
    chol = llt.matrixL();
    if (!chol.allFinite() || !(chol.diagonal().minCoeff() > 0.0)) continue;
    mean = psi + llt.solve(g_data + g_prior);
    if (mean.allFinite()) return true;
  }
  return false;
}

// log N(x | mean, (LL')^{-1}) up to a constant.
inline double non_centred_log_density(const Vector& x, const Vector& mean, const Matrix& chol) {
  const Vector r = chol.transpose() * (x - mean);
  return -0.5 * r.squaredNorm() + chol.diagonal().array().log().sum();
}

struct InterweaveArgs {
  rng::ChainKey key;
  std::uint64_t iteration = 0;
  int threads = 1;
  bool reversed = false;  // order of the random terms in L (see below)
};

// One interweaving step. Group caches (with derivatives) valid on entry and exit; `eta` is
// workspace (m x q). Returns the acceptance probability; sets `accepted`.
// The ancillary eta_j depends on the square root of Sigma: with the Cholesky factor in term
// order, the last term's conditional SD moves with eta fixed; in reversed order, the last
// term's marginal SD does. The sweep alternates the two (each step leaves the posterior
// invariant on its own), which mixes the later SDs and the correlations faster than either.
template <typename G>
double interweave_step(const GlmmData& d, const GlmmPriors& pr, GlmmState& s,
                       const InterweaveArgs& a, RowMatrix& eta, bool& accepted) {
  accepted = false;
  const Index m = d.m(), q = d.q();
  const NonCentredLayout lay = make_non_centred_layout(d, pr, a.reversed && q > 1);
  const auto& perm = lay.perm;
  Matrix chol = s.sigma_chol;
  if (a.reversed && q > 1) {
    Matrix permuted(q, q);
    for (Index k = 0; k < q; ++k)
      for (Index l = 0; l < q; ++l)
        permuted(k, l) = s.sigma(perm[static_cast<std::size_t>(k)], perm[static_cast<std::size_t>(l)]);
    chol = linalg::cholesky_lower(permuted, "interweave: permuted Sigma");
  }
  // eta_j = L^{-1} P (gamma_j - mu_j), columns in the order perm
  {
    const RowMatrix dev = group_deviations(d, s.beta, s.gamma);
    eta.resize(m, q);
    for (Index k = 0; k < q; ++k) eta.col(k) = dev.col(perm[static_cast<std::size_t>(k)]);
  }
  chol.triangularView<Eigen::Lower>().solveInPlace(eta.transpose());  // L^{-1} on each row
  const Vector psi = pack_psi(d, lay, s.beta, chol);
  Vector g_data, g_prior = Vector::Zero(lay.dim), mean_fwd, mean_rev;
  Matrix f_data, h_prior = Matrix::Zero(lay.dim, lay.dim), l_fwd, l_rev;
  const double ll_cur =
      non_centred_data_terms(d, lay, eta, chol, s.ll, s.grad, s.info, a.threads, g_data, f_data);
  const double lp_cur = non_centred_log_prior(d, pr, lay, s.beta, psi, g_prior, h_prior);
  if (!std::isfinite(lp_cur) ||
      !non_centred_moments(lay, psi, g_data, f_data, g_prior, h_prior, mean_fwd, l_fwd))
    return 0.0;
  rng::Rng rng(a.key, a.iteration, 0, rng::Stream::Hyper);
  Vector z(lay.dim);
  linalg::fill_std_normal(z, rng);
  l_fwd.transpose().triangularView<Eigen::Upper>().solveInPlace(z);
  const Vector proposal = mean_fwd + z;
  Vector beta_new = s.beta;
  Matrix chol_new;
  unpack_psi(d, lay, proposal, beta_new, chol_new);
  if (!chol_new.allFinite() || !(chol_new.diagonal().minCoeff() > 0.0)) return 0.0;
  Vector beta_free(d.p_free());
  for (Index k = 0; k < d.p_free(); ++k) beta_free[k] = s.beta[d.free_cols[k]];
  with_q(q, [&](auto qc) {
    using V = typename QTypes<decltype(qc)::value>::Vec;
    using M = typename QTypes<decltype(qc)::value>::Mat;
    const M lq = chol_new;
    ExceptionVault vault;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, group_chunk(m, a.threads)) num_threads(a.threads)
#endif
    for (Index g = 0; g < m; ++g) {
      vault.run([&] {
        V mu(q), grad(q);
        M inf(q, q);
        group_centre(d, beta_new, g, mu);
        const V e = eta.row(g).transpose();
        const V le = lq.template triangularView<Eigen::Lower>() * e;
        V x = mu;
        for (Index k = 0; k < q; ++k) x[perm[static_cast<std::size_t>(k)]] += le[k];
        const double ll =
            group_data_pass<G, true>(d, g, beta_free.data(), x.data(), s.phi, grad, inf);
        store_cache(g, ll, grad, inf, s.ll_new, s.grad_new, s.info_new);
      });
    }
    vault.rethrow();
  });
  Vector g_data_new, g_prior_new = Vector::Zero(lay.dim);
  Matrix f_data_new, h_prior_new = Matrix::Zero(lay.dim, lay.dim);
  const double ll_new = non_centred_data_terms(d, lay, eta, chol_new, s.ll_new, s.grad_new,
                                               s.info_new, a.threads, g_data_new, f_data_new);
  const double lp_new =
      non_centred_log_prior(d, pr, lay, s.beta, proposal, g_prior_new, h_prior_new);
  if (!std::isfinite(ll_new) || !std::isfinite(lp_new) || !g_data_new.allFinite() ||
      !f_data_new.allFinite() ||
      !non_centred_moments(lay, proposal, g_data_new, f_data_new, g_prior_new, h_prior_new,
                           mean_rev, l_rev))
    return 0.0;
  const double log_ratio = ll_new + lp_new - ll_cur - lp_cur +
                           non_centred_log_density(psi, mean_rev, l_rev) -
                           non_centred_log_density(proposal, mean_fwd, l_fwd);
  const double prob = std::isnan(log_ratio) ? 0.0 : std::min(1.0, std::exp(log_ratio));
  rng::Rng accept_rng(a.key, a.iteration, 1, rng::Stream::Hyper);
  if (std::log(accept_rng.uniform()) < log_ratio) {
    const Matrix sigma_perm = chol_new * chol_new.transpose();
    Matrix sigma_new(q, q);
    for (Index k = 0; k < q; ++k)
      for (Index l = 0; l < q; ++l)
        sigma_new(perm[static_cast<std::size_t>(k)], perm[static_cast<std::size_t>(l)]) = sigma_perm(k, l);
    const Matrix lower = chol_new.triangularView<Eigen::Lower>();
    const RowMatrix le = eta * lower.transpose();  // rows: (L eta_j)'
    for (Index k = 0; k < q; ++k) s.gamma.col(perm[static_cast<std::size_t>(k)]) = le.col(k);
    for (std::size_t c = 0; c < d.centred_cols.size(); ++c)
      s.gamma.col(d.centred_term[c]) +=
          beta_new[d.centred_cols[c]] * d.centred_value.col(static_cast<Index>(c));
    s.beta = beta_new;
    s.ll.swap(s.ll_new);
    s.grad.swap(s.grad_new);
    s.info.swap(s.info_new);
    s.set_sigma(sigma_new);
    accepted = true;
  }
  return prob;
}

}  // namespace bglmm::steps
