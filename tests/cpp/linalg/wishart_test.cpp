// Wishart and inverse-Wishart draws by the Bartlett decomposition: E[W] = nu S,
// E[IW] = S / (nu - p - 1), the scalar identities c'Wc / c'Sc ~ chi2(nu),
// c'S^{-1}c / c'W^{-1}c ~ chi2(nu - p + 1) (and their inverse-Wishart counterparts), the
// Cholesky-factor forms, and nu <= p - 1 throwing. Tolerances: kZ Monte-Carlo standard errors
// (stat_check.hpp) at fixed seeds; GOF p-values > 1e-4.
#include <cmath>
#include <limits>
#include <vector>

#include "bglmm/linalg/cholesky.hpp"
#include "bglmm/linalg/wishart.hpp"
#include "check.hpp"
#include "rng/stat_check.hpp"

using bglmm::Index;
using bglmm::Matrix;
using bglmm::Vector;
using bglmm::rng::Rng;
using bglmm::rng::Stream;
namespace la = bglmm::linalg;
namespace bt = bglmm::testing;

namespace {
Matrix example_scale() {
  Matrix s(3, 3);
  s << 2.0, 0.6, -0.4,  //
      0.6, 1.0, 0.2,    //
      -0.4, 0.2, 0.8;
  return s;
}

constexpr int kN = 40000;

std::vector<Matrix> draws(double nu, const Matrix& s, bool inverse, std::uint64_t seed,
                          int n = kN) {
  const Matrix l = la::cholesky_lower(s, "S");
  std::vector<Matrix> out;
  out.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    Rng rng({seed, 0}, static_cast<std::uint64_t>(i), 0, Stream::Covariance);
    out.push_back(inverse ? la::inv_wishart_rng(nu, l, rng) : la::wishart_rng(nu, l, rng));
  }
  return out;
}

void check_mean_matrix(const std::vector<Matrix>& ws, const Matrix& expected) {
  for (Index i = 0; i < expected.rows(); ++i)
    for (Index j = 0; j <= i; ++j) {
      std::vector<double> wij;
      for (const auto& w : ws) wij.push_back(w(i, j));
      CHECK_MEAN(wij, expected(i, j));
    }
}

void check_chi_square(const std::vector<double>& x, int df) {
  CHECK_MEAN(x, static_cast<double>(df));
  CHECK_VARIANCE(x, 2.0 * df);
  std::vector<double> edges;
  const double hi = df + 6.0 * std::sqrt(2.0 * df);
  for (int b = 1; b < 30; ++b) edges.push_back(hi * b / 30.0);
  CHECK(bt::chi_square_gof_pvalue(x, [df](double q) { return bt::chi_square_cdf(q, df); },
                                  edges) > 1e-4);
}

std::vector<Vector> directions() {
  return {(Vector(3) << 1.0, 0.0, 0.0).finished(), (Vector(3) << 0.3, -1.0, 2.0).finished()};
}
}  // namespace

TEST_CASE("wishart_rng: E[W] = nu S, symmetric positive definite draws") {
  const Matrix s = example_scale();
  for (double nu : {3.0, 4.5, 10.0}) {
    const auto ws = draws(nu, s, false, static_cast<std::uint64_t>(nu * 10));
    check_mean_matrix(ws, nu * s);
    bool ok = true;
    for (const auto& w : ws)
      ok = ok && (w - w.transpose()).norm() < 1e-12 * w.norm() &&
           Eigen::LLT<Matrix>(w).info() == Eigen::Success;
    CHECK(ok);
  }
}

TEST_CASE("wishart_rng: Var(W_ij) = nu (S_ij^2 + S_ii S_jj)") {
  const Matrix s = example_scale();
  const double nu = 6.0;
  const auto ws = draws(nu, s, false, 21);
  for (Index i = 0; i < 3; ++i)
    for (Index j = 0; j <= i; ++j) {
      std::vector<double> wij;
      for (const auto& w : ws) wij.push_back(w(i, j));
      CHECK_VARIANCE(wij, nu * (s(i, j) * s(i, j) + s(i, i) * s(j, j)));
    }
}

TEST_CASE("wishart_rng: c'Wc / c'Sc ~ chi2(nu), c'S^-1c / c'W^-1c ~ chi2(nu - p + 1)") {
  const Matrix s = example_scale();
  const Matrix s_inv = s.inverse();
  const int nu = 7;
  const auto ws = draws(nu, s, false, 22);
  for (const Vector& c : directions()) {
    std::vector<double> r1, r2;
    for (const auto& w : ws) {
      r1.push_back(c.dot(w * c) / c.dot(s * c));
      r2.push_back(c.dot(s_inv * c) / c.dot(w.inverse() * c));
    }
    check_chi_square(r1, nu);
    check_chi_square(r2, nu - 3 + 1);
  }
}

TEST_CASE("inv_wishart_rng: E = S / (nu - p - 1)") {
  const Matrix s = example_scale();
  for (double nu : {7.5, 9.0, 20.0}) {
    const auto ws = draws(nu, s, true, static_cast<std::uint64_t>(nu * 10) + 1);
    check_mean_matrix(ws, s / (nu - 3.0 - 1.0));
  }
}

TEST_CASE("inv_wishart_rng: c'Sigma^-1 c / c'S^-1 c ~ chi2(nu), c'Sc / c'Sigma c ~ chi2(nu - p + 1)") {
  // Sigma ~ IW(nu, S) <=> Sigma^{-1} ~ W(nu, S^{-1}):
  //   c'Sigma^{-1}c / c'S^{-1}c ~ chi2(nu) and c'Sc / c'Sigma c ~ chi2(nu - p + 1).
  const Matrix s = example_scale();
  const Matrix s_inv = s.inverse();
  const int nu = 8;
  const auto sigmas = draws(nu, s, true, 31);
  for (const Vector& c : directions()) {
    std::vector<double> r1, r2;
    for (const auto& sigma : sigmas) {
      r1.push_back(c.dot(sigma.inverse() * c) / c.dot(s_inv * c));
      r2.push_back(c.dot(s * c) / c.dot(sigma * c));
    }
    check_chi_square(r1, nu);
    check_chi_square(r2, nu - 3 + 1);
  }
}

TEST_CASE("p = 1: Wishart is s chi2(nu), inverse-Wishart is s / chi2(nu)") {
  Matrix s(1, 1);
  s << 2.5;
  const double nu = 5.0;
  std::vector<double> w, iw;
  for (const auto& m : draws(nu, s, false, 41)) w.push_back(m(0, 0) / 2.5);
  for (const auto& m : draws(nu, s, true, 42)) iw.push_back(2.5 / m(0, 0));
  check_chi_square(w, 5);
  check_chi_square(iw, 5);
}

TEST_CASE("Cholesky-factor forms: lower triangular, positive diagonal, same draw") {
  const Matrix s = example_scale();
  const Matrix l = la::cholesky_lower(s, "S");
  for (int i = 0; i < 200; ++i) {
    const auto it = static_cast<std::uint64_t>(i);
    Rng a({3, 1}, it, 0, Stream::Covariance), b({3, 1}, it, 0, Stream::Covariance);
    const Matrix lw = la::wishart_cholesky_rng(4.0, l, a);
    const Matrix w = la::wishart_rng(4.0, l, b);
    CHECK(lw.isLowerTriangular() && (lw.diagonal().array() > 0.0).all());
    CHECK((lw * lw.transpose() - w).norm() <= 1e-12 * w.norm());
    Rng c({3, 1}, it, 0, Stream::Covariance), d({3, 1}, it, 0, Stream::Covariance);
    const Matrix liw = la::inv_wishart_cholesky_rng(4.0, l, c);
    const Matrix iw = la::inv_wishart_rng(4.0, l, d);
    CHECK(liw.isLowerTriangular() && (liw.diagonal().array() > 0.0).all());
    CHECK((liw * liw.transpose() - iw).norm() <= 1e-10 * iw.norm());
  }
}

TEST_CASE("only the lower triangle of the scale factor is read") {
  const Matrix l = la::cholesky_lower(example_scale(), "S");
  Matrix l_dirty = l;
  l_dirty(0, 2) = 123.0;
  l_dirty(1, 2) = -7.0;
  Rng a({4, 0}, 1, 0, Stream::Test), b({4, 0}, 1, 0, Stream::Test);
  CHECK((la::inv_wishart_rng(5.0, l, a) - la::inv_wishart_rng(5.0, l_dirty, b)).norm() == 0.0);
  Rng c({4, 0}, 1, 0, Stream::Test), d({4, 0}, 1, 0, Stream::Test);
  CHECK((la::wishart_rng(5.0, l, c) - la::wishart_rng(5.0, l_dirty, d)).norm() == 0.0);
}

TEST_CASE("nu <= p - 1 (and non-finite nu) throw") {
  const Matrix l = la::cholesky_lower(example_scale(), "S");  // p = 3
  Rng r({1, 0}, 0, 0, Stream::Test);
  for (double nu : {2.0, 1.0, 0.0, -1.0, std::numeric_limits<double>::quiet_NaN(),
                    std::numeric_limits<double>::infinity()}) {
    CHECK_THROWS(la::wishart_rng(nu, l, r));
    CHECK_THROWS(la::inv_wishart_rng(nu, l, r));
    CHECK_THROWS(la::wishart_cholesky_rng(nu, l, r));
    CHECK_THROWS(la::inv_wishart_cholesky_rng(nu, l, r));
  }
  // just above p - 1 is a valid (if extreme) Wishart
  const Matrix w = la::wishart_rng(2.0001, l, r);
  CHECK(w.allFinite());
}

BGLMM_TEST_MAIN()
