// SmallCholesky (the per-group factorisation): factor, solves, products, inverse and
// log-determinant against Eigen, for fixed sizes 1-3 and the dynamic type; non-SPD input is
// reported, not factorised.
#include <cmath>

#include "bglmm/linalg/small_cholesky.hpp"
#include "check.hpp"

using bglmm::Index;
namespace la = bglmm::linalg;

template <int Q>
void check_size(Index n) {
  using M = Eigen::Matrix<double, Q, Q, 0, (Q == Eigen::Dynamic ? 12 : Q), (Q == Eigen::Dynamic ? 12 : Q)>;
  using V = Eigen::Matrix<double, Q, 1, 0, (Q == Eigen::Dynamic ? 12 : Q), 1>;
  Eigen::MatrixXd b = Eigen::MatrixXd::Random(n, n);
  const Eigen::MatrixXd a_dyn = b * b.transpose() + 0.5 * Eigen::MatrixXd::Identity(n, n);
  const M a = a_dyn;
  V v(n);
  for (Index i = 0; i < n; ++i) v[i] = 0.3 * static_cast<double>(i) - 0.7;
  la::SmallCholesky<M> c(n);
  CHECK(c.compute(a));
  const Eigen::MatrixXd l = c.lower();
  CHECK(l.isLowerTriangular());
  CHECK((l * l.transpose() - a_dyn).norm() < 1e-12);
  const Eigen::VectorXd vd = v;
  CHECK((Eigen::VectorXd(c.solve(v)) - a_dyn.ldlt().solve(vd)).norm() < 1e-11);
  CHECK((Eigen::VectorXd(c.upper_times(v)) - l.transpose() * vd).norm() < 1e-12);
  CHECK((Eigen::VectorXd(c.upper_solve(v)) -
         l.transpose().triangularView<Eigen::Upper>().solve(vd)).norm() < 1e-11);
  CHECK((Eigen::VectorXd(c.lower_solve(v)) - l.triangularView<Eigen::Lower>().solve(vd)).norm() <
        1e-11);
  CHECK((Eigen::MatrixXd(c.inverse()) - a_dyn.inverse()).norm() < 1e-10);
  CHECK_NEAR(c.log_det_lower(), 0.5 * std::log(a_dyn.determinant()), 1e-12);
}

TEST_CASE("SmallCholesky matches Eigen for q = 1, 2, 3 and dynamic q = 5") {
  check_size<1>(1);
  check_size<2>(2);
  check_size<3>(3);
  check_size<Eigen::Dynamic>(5);
}

TEST_CASE("SmallCholesky reports a non-SPD or non-finite matrix") {
  Eigen::Matrix2d bad;
  bad << 1.0, 2.0, 2.0, 1.0;
  la::SmallCholesky<Eigen::Matrix2d> c;
  CHECK(!c.compute(bad));
  CHECK(!c.ok());
  bad << std::nan(""), 0.0, 0.0, 1.0;
  CHECK(!c.compute(bad));
  bad << 2.0, 0.1, 0.1, 1.0;
  CHECK(c.compute(bad));
  CHECK(c.ok());
}

BGLMM_TEST_MAIN()
