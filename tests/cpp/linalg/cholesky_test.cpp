// Checked Cholesky factorisation: factor, log-determinant, inverse and the factor of the
// inverse against direct Eigen computations; non-SPD input throws the right exception.
#include <cmath>

#include "bglmm/linalg/cholesky.hpp"
#include "check.hpp"

using bglmm::Matrix;
namespace la = bglmm::linalg;

TEST_CASE("cholesky_lower, log_det_from_cholesky, inverse_from_cholesky, inverse_cholesky") {
  Matrix a(3, 3);
  a << 4.0, 1.2, -0.8, 1.2, 2.0, 0.3, -0.8, 0.3, 0.5;
  const Matrix l = la::cholesky_lower(a, "A");
  CHECK(l.isLowerTriangular());
  CHECK((l * l.transpose() - a).norm() < 1e-13);
  CHECK_NEAR(la::log_det_from_cholesky(l), std::log(a.determinant()), 1e-13);
  CHECK((la::inverse_from_cholesky(l) - a.inverse()).norm() < 1e-12);
  const Matrix li = la::inverse_cholesky(l, "A^-1");
  CHECK(li.isLowerTriangular());
  CHECK((li * li.transpose() - a.inverse()).norm() < 1e-12);
}

TEST_CASE("non-SPD input throws NumericalError, or invalid_argument for user input") {
  Matrix bad(2, 2);
  bad << 1.0, 2.0, 2.0, 1.0;  // eigenvalues 3 and -1
  bool numerical = false, invalid = false;
  try {
    la::cholesky_lower(bad, "bad");
  } catch (const bglmm::NumericalError& e) {
    numerical = std::string(e.what()).find("bad") != std::string::npos;
  }
  try {
    la::cholesky_lower(bad, "bad", true);
  } catch (const std::invalid_argument& e) {
    invalid = std::string(e.what()).find("bad") != std::string::npos;
  }
  CHECK(numerical);
  CHECK(invalid);
  Matrix nan_matrix = Matrix::Identity(2, 2);
  nan_matrix(1, 1) = std::nan("");
  CHECK_THROWS(la::cholesky_lower(nan_matrix, "nan"));
}

BGLMM_TEST_MAIN()
