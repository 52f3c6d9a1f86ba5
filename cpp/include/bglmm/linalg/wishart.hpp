// bglmm/linalg/wishart.hpp — Wishart and inverse-Wishart draws by the Bartlett decomposition.
// W ~ Wishart(nu, S), S = L L': W = (L A)(L A)', A lower triangular with A_ii^2 ~ chi2(nu - i)
// (i = 0..p-1) and A_ij ~ N(0, 1) below the diagonal. Sigma ~ IW(nu, S) iff Sigma^{-1} ~
// Wishart(nu, S^{-1}); with F = L^{-T} (F F' = S^{-1}), Sigma = (L A^{-T})(L A^{-T})'.
#pragma once
#include <cmath>
#include <stdexcept>

#include "bglmm/error.hpp"
#include "bglmm/linalg/cholesky.hpp"
#include "bglmm/rng/distributions.hpp"
#include "bglmm/types.hpp"

namespace bglmm::linalg {

// The Bartlett factor A (lower triangular) for dimension p and degrees of freedom nu.
inline Matrix bartlett_factor(double nu, Index p, rng::Rng& rng) {
  if (!(nu > static_cast<double>(p) - 1.0) || !std::isfinite(nu))
    throw std::invalid_argument(concat("wishart: degrees of freedom ", nu,
                                       " must exceed dimension - 1 = ", p - 1));
  Matrix a = Matrix::Zero(p, p);
  for (Index i = 0; i < p; ++i) {
    a(i, i) = std::sqrt(rng::chi_square_rng(nu - static_cast<double>(i), rng));
    for (Index j = 0; j < i; ++j) a(i, j) = rng.std_normal();
  }
  return a;
}

// Lower Cholesky factor of W ~ Wishart(nu, L_S L_S').
inline Matrix wishart_cholesky_rng(double nu, const Matrix& l_scale, rng::Rng& rng) {
  const Matrix a = bartlett_factor(nu, l_scale.rows(), rng);
  return l_scale.triangularView<Eigen::Lower>() * a;  // lower x lower = lower
}

inline Matrix wishart_rng(double nu, const Matrix& l_scale, rng::Rng& rng) {
  const Matrix l = wishart_cholesky_rng(nu, l_scale, rng);
  return l * l.transpose();
}

// Sigma ~ Inverse-Wishart(nu, S) with S = L_S L_S' (mean S / (nu - p - 1)).
inline Matrix inv_wishart_rng(double nu, const Matrix& l_scale, rng::Rng& rng) {
  const Index p = l_scale.rows();
  const Matrix a = bartlett_factor(nu, p, rng);
  // T = L_S A^{-T}: solve T A' = L_S, i.e. A T' = L_S'. Only the lower triangle of
  // l_scale is read (as in wishart_cholesky_rng).
  Matrix t_transpose = l_scale.triangularView<Eigen::Lower>().transpose();
  a.triangularView<Eigen::Lower>().solveInPlace(t_transpose);
  Matrix sigma = t_transpose.transpose() * t_transpose;
  return 0.5 * (sigma + sigma.transpose());
}

// Lower Cholesky factor of Sigma ~ Inverse-Wishart(nu, L_S L_S').
inline Matrix inv_wishart_cholesky_rng(double nu, const Matrix& l_scale, rng::Rng& rng) {
  return cholesky_lower(inv_wishart_rng(nu, l_scale, rng), "inverse-Wishart draw");
}

}  // namespace bglmm::linalg
