// bglmm/linalg/cholesky.hpp — checked Cholesky factorisation and what follows from it.
// A = L L' with L lower triangular; log|A| = 2 sum log L_ii. Failures name the caller.
#pragma once
#include <string>

#include "bglmm/error.hpp"
#include "bglmm/types.hpp"

namespace bglmm::linalg {

// Lower Cholesky factor of a symmetric positive-definite matrix; throws NumericalError
// (or invalid_argument when `user_input`) naming `what` if the matrix is not SPD.
inline Matrix cholesky_lower(const Matrix& a, const std::string& what, bool user_input = false) {
  Eigen::LLT<Matrix> llt(a);
  if (llt.info() != Eigen::Success || !llt.matrixL().toDenseMatrix().allFinite()) {
    const std::string msg = what + " is not symmetric positive definite";
    if (user_input) throw std::invalid_argument(msg);
    throw NumericalError(msg);
  }
  return llt.matrixL();
}

template <typename Lower>
double log_det_from_cholesky(const Lower& l) {
  return 2.0 * l.diagonal().array().log().sum();
}

// A^{-1} from the Cholesky factor of A (only for small matrices, e.g. to report V).
inline Matrix inverse_from_cholesky(const Matrix& l) {
  Matrix inv = Matrix::Identity(l.rows(), l.cols());
  l.triangularView<Eigen::Lower>().solveInPlace(inv);
  l.transpose().triangularView<Eigen::Upper>().solveInPlace(inv);
  return inv;
}

// Lower Cholesky factor of A^{-1} given the lower Cholesky factor of A (small matrices).
inline Matrix inverse_cholesky(const Matrix& l, const std::string& what) {
  return cholesky_lower(inverse_from_cholesky(l), what);
}

}  // namespace bglmm::linalg
