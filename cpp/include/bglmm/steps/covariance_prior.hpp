// bglmm/steps/covariance_prior.hpp — the prior on a q x q random-effect covariance Sigma, its
// density in the coordinates the samplers move in, draws from it, and the update of Sigma
// given the effects.
//
// Two families:
//  * Inverse-Wishart(nu, S) on Sigma (conjugate: covariance.hpp draws it exactly);
//  * the separation strategy (Barnard, McCulloch & Meng 2000): Sigma = D Omega D, D = diag(s),
//    each SD s_k with its own ScalePrior (half-t, half-normal, uniform, or inverse-gamma on s_k^2)
//    and the correlation matrix Omega ~ LKJ(eta), density proportional to |Omega|^(eta - 1)
//    (Lewandowski, Kurowicka & Joe 2009). For q = 1 it is just the prior on the SD.
//
// Unconstrained coordinates x (dimension q (q + 1) / 2): x_k = log s_k (k < q), then the
// canonical partial correlations (CPCs) z_ij = tanh(x_ij), i > j, row by row. The Cholesky
// factor of Omega is W with W_00 = 1 and, for row i, W_ij = z_ij sqrt(1 - sum_{l<j} W_il^2),
// W_ii = sqrt(1 - sum_{l<i} W_il^2); Sigma's Cholesky factor is D W.
// Under LKJ(eta) the CPCs are independent, z_ij ~ Beta(b_j, b_j) on (-1, 1) with
// b_j = eta + (q - 2 - j) / 2 (j = 0..q-2, LKJ 2009 §3.2), so in x:
//   log p(x) = sum_k [log p_k(s_k) + log s_k] + sum_{i>j} b_j log(1 - z_ij^2) + const,
// the last factor being the Beta density times dz/dx = 1 - z^2. For the inverse-Wishart,
//   log p(x) = log IW(Sigma) + q log 2 + (q + 1) sum_k log s_k + log |d Omega / d x|,
// with |dSigma / d(s, Omega)| = 2^q prod_k s_k^q, |ds/dx| = prod_k s_k and, from the LKJ(1)
// case (constant density in Omega), log |d Omega / d x| = sum_{i>j} b_j(1) log(1 - z_ij^2) + c.
// The density of Sigma itself (used by the moves that change Sigma's Cholesky factor):
//   separation: sum_k log p_k(s_k) + (eta - 1) log|Omega| - q sum_k log s_k.
#pragma once
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "bglmm/error.hpp"
#include "bglmm/linalg/cholesky.hpp"
#include "bglmm/linalg/wishart.hpp"
#include "bglmm/rng/distributions.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/covariance.hpp"
#include "bglmm/steps/scale_prior.hpp"
#include "bglmm/steps/slice.hpp"
#include "bglmm/types.hpp"

namespace bglmm::steps {

enum class CovariancePriorKind : int { InverseWishart = 0, Separation = 1 };

struct CovariancePrior {
  CovariancePriorKind kind = CovariancePriorKind::InverseWishart;
  InverseWishartPrior iw;          // kind InverseWishart
  std::vector<ScalePrior> sd;      // kind Separation: one prior per term (q)
  double lkj_eta = 1.0;            // kind Separation, q >= 2

  bool separation() const { return kind == CovariancePriorKind::Separation; }
};

// Checks the prior against q and throws std::invalid_argument naming the problem.
inline void check_covariance_prior(const char* fn, const CovariancePrior& p, Index q) {
  if (p.separation()) {
    check_size_match(fn, "SD priors", static_cast<Index>(p.sd.size()), "random terms", q);
    if (!(p.lkj_eta > 0.0) || !std::isfinite(p.lkj_eta))
      throw std::invalid_argument(concat(fn, ": LKJ eta must be positive and finite, got ",
                                         p.lkj_eta));
    return;
  }
  if (!(p.iw.df > static_cast<double>(q) - 1.0))
    throw std::invalid_argument(
        concat(fn, ": inverse-Wishart df ", p.iw.df, " must exceed q - 1 = ", q - 1));
  check_size_match(fn, "inverse-Wishart scale rows", p.iw.scale.rows(), "random terms", q);
  check_size_match(fn, "inverse-Wishart scale columns", p.iw.scale.cols(), "random terms", q);
  check_all_finite(fn, "inverse-Wishart scale", p.iw.scale);
  (void)linalg::cholesky_lower(p.iw.scale, concat(fn, ": inverse-Wishart scale"), true);
}

// From the arrays the bindings pass: kind 0 inverse-Wishart (iw_df, iw_scale), kind 1 the
// separation strategy (per-term ScalePrior kinds/parameters, see scale_prior.hpp, and eta).
inline CovariancePrior make_covariance_prior(int kind, double iw_df, const Matrix& iw_scale,
                                             const std::vector<int>& sd_kind,
                                             const std::vector<double>& sd_a,
                                             const std::vector<double>& sd_b, double lkj_eta) {
  CovariancePrior p;
  if (kind == 0) {
    p.kind = CovariancePriorKind::InverseWishart;
    p.iw.df = iw_df;
    p.iw.scale = iw_scale;
    return p;
  }
  if (kind != 1) throw std::invalid_argument(concat("covariance prior: unknown kind ", kind));
  p.kind = CovariancePriorKind::Separation;
  if (sd_a.size() != sd_kind.size() || sd_b.size() != sd_kind.size())
    throw std::invalid_argument("covariance prior: one SD prior kind, a and b per term");
  for (std::size_t k = 0; k < sd_kind.size(); ++k)
    p.sd.push_back(make_scale_prior(sd_kind[k], sd_a[k], sd_b[k]));
  p.lkj_eta = lkj_eta;
  return p;
}

// A flat prior on an SD (uniform, unbounded) cannot be drawn from.
inline bool covariance_prior_proper(const CovariancePrior& p) {
  if (!p.separation()) return true;
  for (const ScalePrior& s : p.sd)
    if (s.kind == ScalePriorKind::Uniform && std::isinf(s.b)) return false;
  return true;
}

namespace detail {
// log(1 - tanh(x)^2), stable for large |x|.
inline double log1m_tanh2(double x) {
  const double a = std::fabs(x);
  return std::log(4.0) - 2.0 * a - 2.0 * std::log1p(std::exp(-2.0 * a));
}
inline double lkj_cpc_shape(double eta, Index q, Index j) {
  return eta + 0.5 * static_cast<double>(q - 2 - j);
}
}  // namespace detail

inline Index unconstrained_dim(Index q) { return q * (q + 1) / 2; }

// Cholesky factor of Sigma (D W) from x; false if it is not a valid factor (overflow).
inline bool chol_from_unconstrained(const Vector& x, Index q, Matrix& chol) {
  chol.setZero(q, q);
  Index c = q;
  for (Index i = 0; i < q; ++i) {
    double rem = 1.0;
    for (Index j = 0; j < i; ++j) {
      const double w = std::tanh(x[c++]) * std::sqrt(rem);
      chol(i, j) = w;
      rem -= w * w;
    }
    chol(i, i) = std::sqrt(std::max(rem, 0.0));
    const double s = std::exp(x[i]);
    chol.row(i).head(i + 1) *= s;
  }
  return chol.allFinite() && chol.diagonal().minCoeff() > 0.0;
}

// x from Sigma (inverse of chol_from_unconstrained); false if Sigma is not positive definite.
inline bool unconstrained_from_sigma(const Matrix& sigma, Vector& x) {
  const Index q = sigma.rows();
  x.resize(unconstrained_dim(q));
  Eigen::LLT<Matrix> llt(sigma);
  if (llt.info() != Eigen::Success) return false;
  const Matrix l = llt.matrixL();
  Index c = q;
  for (Index i = 0; i < q; ++i) {
    const double s = l.row(i).head(i + 1).norm();  // sqrt(Sigma_ii)
    x[i] = std::log(s);
    double rem = 1.0;
    for (Index j = 0; j < i; ++j) {
      const double w = l(i, j) / s;
      const double z = w / std::sqrt(std::max(rem, 1e-300));
      x[c++] = std::atanh(std::max(-1.0 + 1e-16, std::min(1.0 - 1e-16, z)));
      rem -= w * w;
    }
  }
  return x.allFinite();
}

// log IW(Sigma | nu, S) up to a constant, from Sigma's Cholesky factor.
inline double inverse_wishart_log_density(const InverseWishartPrior& iw, const Matrix& chol) {
  const Index q = chol.rows();
  const Matrix k = chol.triangularView<Eigen::Lower>().solve(Matrix::Identity(q, q));
  const double log_det = 2.0 * chol.diagonal().array().log().sum();
  return -0.5 * (iw.df + static_cast<double>(q) + 1.0) * log_det -
         0.5 * (k * iw.scale * k.transpose()).trace();
}

// log p(x) up to a constant (see the header comment); -inf outside the support.
inline double covariance_log_prior_unconstrained(const CovariancePrior& p, const Vector& x,
                                                 Index q) {
  double lp = 0.0;
  if (p.separation()) {
    for (Index k = 0; k < q; ++k) {
      const double lk = scale_prior_log_density(p.sd[static_cast<std::size_t>(k)], std::exp(x[k]));
      if (!std::isfinite(lk)) return -std::numeric_limits<double>::infinity();
      lp += lk + x[k];
    }
    Index c = q;
    for (Index i = 0; i < q; ++i)
      for (Index j = 0; j < i; ++j)
        lp += detail::lkj_cpc_shape(p.lkj_eta, q, j) * detail::log1m_tanh2(x[c++]);
    return lp;
  }
  Matrix chol;
  if (!chol_from_unconstrained(x, q, chol)) return -std::numeric_limits<double>::infinity();
  lp = inverse_wishart_log_density(p.iw, chol);
  for (Index k = 0; k < q; ++k) lp += static_cast<double>(q + 1) * x[k];
  Index c = q;
  for (Index i = 0; i < q; ++i)
    for (Index j = 0; j < i; ++j) lp += detail::lkj_cpc_shape(1.0, q, j) * detail::log1m_tanh2(x[c++]);
  return lp;
}

// log p(Sigma) up to a constant, from the Cholesky factor of P Sigma P' where row k of `chol`
// belongs to term perm[k] (`perm` null: the identity).
inline double covariance_log_prior(const CovariancePrior& p, const Matrix& chol,
                                   const std::vector<Index>* perm = nullptr) {
  if (!p.separation()) {
    if (perm == nullptr) return inverse_wishart_log_density(p.iw, chol);
    const Index q = chol.rows();
    InverseWishartPrior permuted{p.iw.df, Matrix(q, q)};
    for (Index k = 0; k < q; ++k)
      for (Index l = 0; l < q; ++l)
        permuted.scale(k, l) = p.iw.scale((*perm)[static_cast<std::size_t>(k)],
                                          (*perm)[static_cast<std::size_t>(l)]);
    return inverse_wishart_log_density(permuted, chol);
  }
  const Index q = chol.rows();
  double lp = 0.0, log_det_omega = 0.0;
  for (Index k = 0; k < q; ++k) {
    const Index term = perm == nullptr ? k : (*perm)[static_cast<std::size_t>(k)];
    const double s = chol.row(k).head(k + 1).norm();
    const double lk = scale_prior_log_density(p.sd[static_cast<std::size_t>(term)], s);
    if (!std::isfinite(lk)) return -std::numeric_limits<double>::infinity();
    lp += lk - static_cast<double>(q) * std::log(s);
    log_det_omega += 2.0 * (std::log(chol(k, k)) - std::log(s));
  }
  return lp + (p.lkj_eta - 1.0) * log_det_omega;
}

// One draw of an SD from its prior (proper priors only).
inline double scale_prior_rng(const ScalePrior& p, rng::Rng& rng) {
  switch (p.kind) {
    case ScalePriorKind::InverseGamma:
      return std::sqrt(rng::inv_gamma_rng(p.a, p.b, rng));
    case ScalePriorKind::HalfStudentT: {
      const double z = rng.std_normal();
      return p.b * std::fabs(z) / std::sqrt(rng::chi_square_rng(p.a, rng) / p.a);
    }
    case ScalePriorKind::Uniform:
      if (std::isinf(p.b)) throw std::invalid_argument("a flat prior on an SD cannot be drawn from");
      return p.b * rng.uniform();
    case ScalePriorKind::HalfNormal:
      return p.b * std::fabs(rng.std_normal());
  }
  throw std::invalid_argument("scale prior: unknown kind");
}

// One draw of Sigma from its prior.
inline Matrix covariance_prior_rng(const CovariancePrior& p, Index q, rng::Rng& rng) {
  if (!p.separation()) {
    const Matrix ls = linalg::cholesky_lower(p.iw.scale, "inverse-Wishart scale");
    return linalg::inv_wishart_rng(p.iw.df, ls, rng);
  }
  Vector x(unconstrained_dim(q));
  for (Index k = 0; k < q; ++k) x[k] = std::log(scale_prior_rng(p.sd[static_cast<std::size_t>(k)], rng));
  Index c = q;
  for (Index i = 0; i < q; ++i)
    for (Index j = 0; j < i; ++j) {
      const double b = detail::lkj_cpc_shape(p.lkj_eta, q, j);
      const double z = 2.0 * rng::beta_rng(b, b, rng) - 1.0;
      x[c++] = std::atanh(std::max(-1.0 + 1e-16, std::min(1.0 - 1e-16, z)));
    }
  Matrix chol;
  if (!chol_from_unconstrained(x, q, chol)) throw NumericalError("prior draw of Sigma overflowed");
  return chol * chol.transpose();
}

// A typical Sigma under the prior (starting values): diagonal, each variance at the prior's
// scale (inverse-Wishart: S / max(nu - q - 1, 1)).
inline Matrix covariance_prior_centre(const CovariancePrior& p, Index q) {
  if (!p.separation())
    return p.iw.scale / std::max(1.0, p.iw.df - static_cast<double>(q) - 1.0);
  Matrix c = Matrix::Zero(q, q);
  for (Index k = 0; k < q; ++k) {
    const ScalePrior& s = p.sd[static_cast<std::size_t>(k)];
    double v = 1.0;
    switch (s.kind) {
      case ScalePriorKind::InverseGamma: v = s.b / (s.a + 1.0); break;  // mode of the variance
      case ScalePriorKind::Uniform: v = std::isinf(s.b) ? 1.0 : 0.25 * s.b * s.b; break;
      default: v = 0.25 * s.b * s.b; break;  // half the scale
    }
    c(k, k) = v;
  }
  return c;
}

// log p(b | Sigma) for m effects with scatter S = sum_j b_j b_j' (up to a constant), from
// Sigma's Cholesky factor: -(m / 2) log|Sigma| - tr(Sigma^-1 S) / 2.
inline double effects_log_likelihood(const Matrix& chol, const Matrix& scatter, double m) {
  const Index q = chol.rows();
  const Matrix k = chol.triangularView<Eigen::Lower>().solve(Matrix::Identity(q, q));
  return -m * chol.diagonal().array().log().sum() - 0.5 * (k * scatter * k.transpose()).trace();
}

// Sigma | effects (scatter S of m effects around their means): exact for the inverse-Wishart
// and for one SD; otherwise two rounds of coordinate-wise slice sampling in x. With Omega
// fixed, tr(Sigma^-1 S) = sum_ij A_ij S_ij / (s_i s_j), A = Omega^-1, so a log-SD coordinate
// costs O(q) per evaluation; a CPC coordinate costs O(q^3) (S is a sufficient statistic: no
// evaluation depends on m). The initial slice width is 1 on every coordinate: shrinkage finds a
// narrow conditional in a few evaluations, and a width matched to 1 / sqrt(m) halved the ESS
// of the weakly identified SDs of the tumour model (q = 5, 21 mice), whose conditionals are
// wider than that.
inline Matrix covariance_conditional_step(const CovariancePrior& p, const Matrix& scatter,
                                          Index m, const Matrix& current, rng::Rng& rng) {
  const Index q = scatter.rows();
  if (!p.separation()) return covariance_step_from_scatter(scatter, m, p.iw, rng);
  if (q == 1)
    return Matrix::Constant(1, 1, draw_variance(p.sd[0], scatter(0, 0), static_cast<double>(m),
                                                current(0, 0), rng));
  Vector x;
  if (!unconstrained_from_sigma(current, x))
    throw NumericalError("covariance step: the current Sigma is not positive definite");
  const double md = static_cast<double>(m);
  const double width = 1.0;
  for (Index k = 0; k < q; ++k) {  // start inside the prior's support (e.g. a uniform's bound)
    const ScalePrior& sp = p.sd[static_cast<std::size_t>(k)];
    if (!std::isfinite(scale_prior_log_density(sp, std::exp(x[k]))))
      x[k] = 0.5 * std::log(covariance_prior_centre(p, q)(k, k));
  }
  Matrix chol;
  auto log_target = [&](const Vector& v) {
    if (!chol_from_unconstrained(v, q, chol)) return -std::numeric_limits<double>::infinity();
    const double lp = covariance_log_prior_unconstrained(p, v, q);
    if (!std::isfinite(lp)) return lp;
    return lp + effects_log_likelihood(chol, scatter, md);
  };
  for (int round = 0; round < 2; ++round) {
    // log SDs given Omega
    Matrix omega_chol;
    Vector unit = x;
    unit.head(q).setZero();
    if (!chol_from_unconstrained(unit, q, omega_chol))
      throw NumericalError("covariance step: the correlation matrix is not positive definite");
    const Matrix a = linalg::inverse_from_cholesky(omega_chol);
    for (Index k = 0; k < q; ++k) {
      double b = 0.0;
      for (Index j = 0; j < q; ++j)
        if (j != k) b += a(k, j) * scatter(k, j) * std::exp(-x[j]);
      const double akk = a(k, k) * scatter(k, k);
      const ScalePrior& sp = p.sd[static_cast<std::size_t>(k)];
      auto f = [&](double t) {
        const double lp = scale_prior_log_density(sp, std::exp(t));
        if (!std::isfinite(lp)) return lp;
        return lp - (md - 1.0) * t - 0.5 * (akk * std::exp(-2.0 * t) + 2.0 * b * std::exp(-t));
      };
      x[k] = slice_step(f, x[k], width, rng);
    }
    // CPCs given the SDs
    Vector y = x;
    for (Index c = q; c < x.size(); ++c) {
      auto f = [&](double v) {
        y[c] = v;
        const double r = log_target(y);
        y[c] = x[c];
        return r;
      };
      x[c] = slice_step(f, x[c], width, rng);
      y[c] = x[c];
    }
  }
  if (!chol_from_unconstrained(x, q, chol)) throw NumericalError("covariance step overflowed");
  return chol * chol.transpose();
}

}  // namespace bglmm::steps
