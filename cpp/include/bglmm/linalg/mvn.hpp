// bglmm/linalg/mvn.hpp — multivariate normal draws and density through Cholesky factors.
// Covariance form: x = m + L z, Sigma = L L'. Precision form: Q = L L', x = m + L^{-T} z.
#pragma once
#include <cmath>

#include "bglmm/rng/philox.hpp"
#include "bglmm/types.hpp"

namespace bglmm::linalg {

inline void fill_std_normal(Eigen::Ref<Vector> z, rng::Rng& rng) {
  for (Index i = 0; i < z.size(); ++i) z[i] = rng.std_normal();
}

// Draw from N(mean, L L').
inline Vector multi_normal_chol_rng(const Vector& mean, const Matrix& l_cov, rng::Rng& rng) {
  Vector z(mean.size());
  fill_std_normal(z, rng);
  return mean + l_cov.triangularView<Eigen::Lower>() * z;
}

// Draw from N(mean, Q^{-1}) where Q = L L' is the precision.
inline Vector multi_normal_prec_chol_rng(const Vector& mean, const Matrix& l_prec, rng::Rng& rng) {
  Vector z(mean.size());
  fill_std_normal(z, rng);
  l_prec.transpose().triangularView<Eigen::Upper>().solveInPlace(z);
  return mean + z;
}

// Canonical form: draw from N(Q^{-1} h, Q^{-1}) given L (Q = L L') and h; no inverse formed.
inline Vector multi_normal_canonical_rng(const Vector& h, const Matrix& l_prec, rng::Rng& rng) {
  Vector mean = h;
  l_prec.triangularView<Eigen::Lower>().solveInPlace(mean);
  l_prec.transpose().triangularView<Eigen::Upper>().solveInPlace(mean);
  return multi_normal_prec_chol_rng(mean, l_prec, rng);
}

// log N(x | mean, L L').
inline double multi_normal_chol_lpdf(const Vector& x, const Vector& mean, const Matrix& l_cov) {
  constexpr double log_2pi = 1.8378770664093453;
  Vector r = x - mean;
  l_cov.triangularView<Eigen::Lower>().solveInPlace(r);
  return -0.5 * r.squaredNorm() - l_cov.diagonal().array().log().sum() -
         0.5 * static_cast<double>(x.size()) * log_2pi;
}

}  // namespace bglmm::linalg
