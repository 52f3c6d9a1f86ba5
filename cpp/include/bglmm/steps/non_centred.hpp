// bglmm/steps/non_centred.hpp — the non-centred parameterisation of the primary block, shared
// by the interweaving step (steps/interweave.hpp) and the marginal move
// (steps/marginal_move.hpp):
//   gamma_j = mu_j(beta_C) + L eta_j,   eta_j ~ N_q(0, I),   Sigma = L L',
// with psi = [beta_C (p_C) | L_kl for k >= l, row by row, the diagonal as log L_kk]. Here:
// where each coordinate of psi sits (NonCentredLayout), psi from (beta_C, L) and back, the data
// part of log p(psi | eta, y) with its gradient and Fisher information from the group caches,
// the prior part log p(psi) (the Jacobian of Sigma -> L included), and the Newton proposal
// moments built from them. Sums over groups run over fixed chunks added in order.
//
// Prior of psi:
//   beta: N(m0, V0) given beta_F;
//   L: p(Sigma = LL') times the Jacobian 2^q prod_k L_kk^{q-k+1} of Sigma -> L and prod_k L_kk
//      of the log diagonal. Inverse-Wishart(nu, S), analytically:
//      sum_k (1 - k - nu) log L_kk - tr(S L^{-T} L^{-1}) / 2 (k = 1..q); any other prior on
//      Sigma (the separation strategy, steps/covariance_prior.hpp) with its derivatives by
//      central differences (q (q + 1) / 2 coordinates: cheap next to a pass over the data; the
//      derivatives shape the proposal only, the acceptance ratio uses the exact density).
// Gradient and Fisher information of the data part come from the per-group caches (score
// Z_j'u and information Z_j'WZ_j at gamma_j) by the chain rule — d gamma_j / d psi has one
// non-zero per column — so the current point costs no pass over the data.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "bglmm/glmm_model.hpp"
#include "bglmm/linalg/cholesky.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/steps/covariance_prior.hpp"
#include "bglmm/steps/group_mh.hpp"

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
  const DataTerms zero{0.0, Vector::Zero(dim), Matrix::Zero(dim, dim)};
  auto chunk = [&](Index begin, Index end, DataTerms& part) {
    Vector v(dim);
    for (Index g = begin; g < end; ++g) {
      part.ll += ll[g];
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
        part.grad[c1] += v[c1] * gr[r1];
        const double v1 = v[c1];
        for (Index c2 = 0; c2 <= c1; ++c2)
          part.info(c1, c2) += v1 * v[c2] * in[r1 * q + lay.row[static_cast<std::size_t>(c2)]];
      }
    }
  };
  const DataTerms sum = chunked_reduce(m, 256, threads, zero, chunk);
  g_out = sum.grad;
  f_out = sum.info;
  const double total = sum.ll;
  f_out = f_out.selfadjointView<Eigen::Lower>();
  return total;
}

// log p(psi) up to a constant; adds its gradient to `grad` and minus its Hessian to `neg_hess`.
// `beta` supplies beta_F (its centred entries are overwritten from psi). Under a prior other
// than the inverse-Wishart the L-derivatives are numerical: `deriv` limits them to those
// coordinates (null: all; an empty list: none, for moves that need the density alone).
inline double non_centred_log_prior(const GlmmData& d, const GlmmPriors& pr,
                                    const NonCentredLayout& lay, Vector beta, const Vector& psi,
                                    Vector& grad, Matrix& neg_hess,
                                    const std::vector<Index>* deriv = nullptr) {
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
  Matrix chol(q, q);
  unpack_psi(d, lay, psi, beta, chol);  // beta already holds psi's centred entries
  const Index first = lay.l_index(0, 0);
  const Index nl = q * (q + 1) / 2;
  if (pr.cov.separation()) {
    // log p(Sigma) + log-Jacobian of psi -> Sigma: sum_k (q - k + 1) log L_kk (k = 0..q-1)
    Matrix c(q, q);
    Vector b = beta;  // scratch for unpack_psi (the centred entries are not used here)
    auto f = [&](const Vector& v) {
      unpack_psi(d, lay, v, b, c);
      double lj = 0.0;
      for (Index k = 0; k < q; ++k) lj += static_cast<double>(q - k + 1) * std::log(c(k, k));
      return covariance_log_prior(pr.cov, c, &lay.perm) + lj;
    };
    const double f0 = f(psi);
    if (!std::isfinite(f0)) return f0;
    std::vector<Index> coords;  // the L coordinates whose derivatives are wanted
    for (Index i1 = 0; i1 < nl; ++i1) {
      const Index c = first + i1;
      if (deriv == nullptr || std::find(deriv->begin(), deriv->end(), c) != deriv->end())
        coords.push_back(c);
    }
    const double h = 1e-4, h2 = 1e-3;
    Vector x = psi;
    for (std::size_t i1 = 0; i1 < coords.size(); ++i1) {
      const Index c1 = coords[i1];
      x[c1] = psi[c1] + h;
      const double fp = f(x);
      x[c1] = psi[c1] - h;
      const double fm = f(x);
      x[c1] = psi[c1];
      if (std::isfinite(fp) && std::isfinite(fm)) grad[c1] += (fp - fm) / (2.0 * h);
      for (std::size_t i2 = 0; i2 <= i1; ++i2) {
        const Index c2 = coords[i2];
        double v = 0.0;
        if (i1 == i2) {
          x[c1] = psi[c1] + h2;
          const double a = f(x);
          x[c1] = psi[c1] - h2;
          const double b = f(x);
          x[c1] = psi[c1];
          v = (a - 2.0 * f0 + b) / (h2 * h2);
        } else {
          double corner[4];
          for (int k = 0; k < 4; ++k) {
            x[c1] = psi[c1] + (k & 1 ? -h2 : h2);
            x[c2] = psi[c2] + (k & 2 ? -h2 : h2);
            corner[k] = f(x);
          }
          x[c1] = psi[c1];
          x[c2] = psi[c2];
          v = (corner[0] - corner[1] - corner[2] + corner[3]) / (4.0 * h2 * h2);
        }
        if (!std::isfinite(v)) v = 0.0;
        neg_hess(c1, c2) -= v;
        if (c1 != c2) neg_hess(c2, c1) -= v;
      }
    }
    return lp + f0;
  }
  // Inverse-Wishart in L coordinates. K = L^{-1}, G = K S K', T = G K, U = K'K:
  //   d/dL_ab [-tr(S K'K)/2] = T_ba,
  //   d2/dL_ab dL_cd [-tr(S K'K)/2] = -(K_bc T_da + G_bd U_ca + T_bc K_da).
  Matrix prior_scale(q, q);
  for (Index k = 0; k < q; ++k)
    for (Index l = 0; l < q; ++l)
      prior_scale(k, l) = pr.cov.iw.scale(lay.perm[static_cast<std::size_t>(k)],
                                          lay.perm[static_cast<std::size_t>(l)]);
  const Matrix kinv =
      chol.triangularView<Eigen::Lower>().solve(Matrix::Identity(q, q));
  const Matrix gm = kinv * prior_scale * kinv.transpose();
  const Matrix tm = gm * kinv;
  const Matrix um = kinv.transpose() * kinv;
  lp -= 0.5 * gm.trace();
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
    const double coef = -static_cast<double>(k) - pr.cov.iw.df;  // 1 - (k + 1) - nu
    const Index i1 = lay.l_index(k, k) - first;
    lp += coef * psi[first + i1];
    gl[i1] += coef;
  }
  grad.segment(first, nl) += gl;
  neg_hess.block(first, first, nl, nl) -= hl;
  return lp;
}

// Newton proposal moments of the coordinates `block` of psi (the others held fixed) from the
// data terms (g_data, f_data) and prior terms (g_prior, h_prior). The curvature is the first
// positive definite of: the observed information (Fisher information, minus the first-order
// term of the log-diagonal coordinates) plus the prior's; the Fisher information plus the
// prior's; the Fisher information plus the prior's diagonal made non-negative. The choice
// depends only on psi (and the fixed eta), as the reverse density requires. `mean` and `chol`
// have the block's size.
inline bool non_centred_moments(const NonCentredLayout& lay, const Vector& psi,
                                const Vector& g_data, const Matrix& f_data,
                                const Vector& g_prior, const Matrix& h_prior,
                                const std::vector<Index>& block, Vector& mean, Matrix& chol,
                                double min_log_sd_curvature = 0.0) {
  const Index nb = static_cast<Index>(block.size());
  Vector g(nb), x(nb);
  for (Index i = 0; i < nb; ++i) {
    const Index c = block[static_cast<std::size_t>(i)];
    g[i] = g_data[c] + g_prior[c];
    x[i] = psi[c];
  }
  for (int attempt = 0; attempt < 3; ++attempt) {
    Matrix h(nb, nb);
    for (Index i = 0; i < nb; ++i) {
      const Index ci = block[static_cast<std::size_t>(i)];
      for (Index j = 0; j < nb; ++j) {
        const Index cj = block[static_cast<std::size_t>(j)];
        h(i, j) = f_data(ci, cj);
        if (attempt < 2) h(i, j) += h_prior(ci, cj);
      }
      if (attempt == 0 && lay.kind[static_cast<std::size_t>(ci)] == 2) h(i, i) -= g_data[ci];
      if (attempt == 2) h(i, i) += std::max(0.0, h_prior(ci, ci)) + 1e-10;
    }
    // Optionally no less curvature than min_log_sd_curvature in a log-SD coordinate (see
    // InterweaveArgs).
    for (Index i = 0; i < nb; ++i)
      if (lay.kind[static_cast<std::size_t>(block[static_cast<std::size_t>(i)])] == 2)
        h(i, i) = std::max(h(i, i), min_log_sd_curvature);
    Eigen::LLT<Matrix> llt(h);
    if (llt.info() != Eigen::Success) continue;
    chol = llt.matrixL();
    if (!chol.allFinite() || !(chol.diagonal().minCoeff() > 0.0)) continue;
    mean = x + llt.solve(g);
    if (mean.allFinite()) return true;
  }
  return false;
}

// Every coordinate of psi, as one block.
inline std::vector<Index> all_coordinates(const NonCentredLayout& lay) {
  std::vector<Index> all(static_cast<std::size_t>(lay.dim));
  for (Index c = 0; c < lay.dim; ++c) all[static_cast<std::size_t>(c)] = c;
  return all;
}

// Blocks by random term (in the layout's order): term k's centred means and row k of L.
inline std::vector<std::vector<Index>> term_blocks(const NonCentredLayout& lay) {
  std::vector<std::vector<Index>> blocks(static_cast<std::size_t>(lay.q));
  for (Index c = 0; c < lay.dim; ++c) {
    const auto kind = lay.kind[static_cast<std::size_t>(c)];
    Index k = 0;
    if (kind == 0) {
      const Index term = lay.row[static_cast<std::size_t>(c)];
      while (lay.perm[static_cast<std::size_t>(k)] != term) ++k;
    } else {
      k = lay.a[static_cast<std::size_t>(c)];
    }
    blocks[static_cast<std::size_t>(k)].push_back(c);
  }
  return blocks;
}

// log N(x | mean, (LL')^{-1}) up to a constant.
inline double non_centred_log_density(const Vector& x, const Vector& mean, const Matrix& chol) {
  const Vector r = chol.transpose() * (x - mean);
  return -0.5 * r.squaredNorm() + chol.diagonal().array().log().sum();
}

}  // namespace bglmm::steps
