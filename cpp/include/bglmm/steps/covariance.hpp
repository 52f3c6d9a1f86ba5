// bglmm/steps/covariance.hpp — Gibbs update of a random-effect covariance matrix.
// b_j ~ N_q(mu, Sigma) iid (j = 1..m), Sigma ~ IW(nu0, S0)
//   => Sigma | b ~ IW(nu0 + m, S0 + sum_j (b_j - mu)(b_j - mu)')   (Hoff 2009, §7.3).
// The scatter matrix is summed over groups in index order (thread-count independent).
#pragma once
#include "bglmm/linalg/cholesky.hpp"
#include "bglmm/linalg/wishart.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/types.hpp"

namespace bglmm::steps {

struct InverseWishartPrior {
  double df = 0.0;  // nu0 > q - 1
  Matrix scale;     // S0, q x q SPD
};

// Scatter matrix sum_j (b_j - mu)(b_j - mu)' of the rows of `effects` (m x q).
inline Matrix scatter_matrix(const RowMatrix& effects, const Vector& mu) {
  const Index q = effects.cols();
  Matrix s = Matrix::Zero(q, q);
  for (Index j = 0; j < effects.rows(); ++j) {
    const Vector d = effects.row(j).transpose() - mu;
    s.selfadjointView<Eigen::Lower>().rankUpdate(d);
  }
  return s.selfadjointView<Eigen::Lower>();
}

// One draw of Sigma from its inverse-Wishart full conditional.
inline Matrix covariance_step(const RowMatrix& effects, const Vector& mu,
                              const InverseWishartPrior& prior, rng::Rng& rng) {
  const Matrix posterior_scale = prior.scale + scatter_matrix(effects, mu);
  const Matrix l = linalg::cholesky_lower(posterior_scale, "covariance_step: posterior scale");
  return linalg::inv_wishart_rng(prior.df + static_cast<double>(effects.rows()), l, rng);
}

// The same draw from a scatter matrix the caller has already summed over m effects
// (e.g. in fixed chunks inside a parallel group loop).
inline Matrix covariance_step_from_scatter(const Matrix& scatter, Index m,
                                           const InverseWishartPrior& prior, rng::Rng& rng) {
  const Matrix posterior_scale = prior.scale + scatter;
  const Matrix l = linalg::cholesky_lower(posterior_scale, "covariance_step: posterior scale");
  return linalg::inv_wishart_rng(prior.df + static_cast<double>(m), l, rng);
}

}  // namespace bglmm::steps
