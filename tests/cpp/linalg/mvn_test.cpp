// Multivariate normal draws (covariance, precision and canonical forms) reproduce the mean
// and covariance (within kZ Monte-Carlo standard errors, fixed seeds), Mahalanobis distances
// are chi-square(p), and the log density matches the textbook formula.
#include <cmath>
#include <vector>

#include "bglmm/linalg/cholesky.hpp"
#include "bglmm/linalg/mvn.hpp"
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
Matrix example_cov() {
  Matrix s(3, 3);
  s << 4.0, 1.2, -0.8,  //
      1.2, 2.0, 0.3,    //
      -0.8, 0.3, 0.5;
  return s;
}
Vector example_mean() {
  Vector m(3);
  m << 1.0, -2.0, 0.5;
  return m;
}

constexpr int kN = 100000;

// Draw n vectors with `draw(rng)`, one Rng per draw keyed by the draw index (as a sampler
// keys by iteration), and check mean and covariance against (m, s).
template <typename Draw>
std::vector<Vector> draws_and_check(const Vector& m, const Matrix& s, std::uint64_t seed,
                                    Draw draw) {
  std::vector<Vector> xs;
  xs.reserve(kN);
  for (int i = 0; i < kN; ++i) {
    Rng rng({seed, 0}, static_cast<std::uint64_t>(i), 0, Stream::Test);
    xs.push_back(draw(rng));
  }
  const Index p = m.size();
  for (Index j = 0; j < p; ++j) {
    std::vector<double> xj;
    for (const auto& x : xs) xj.push_back(x[j]);
    CHECK_MEAN(xj, m[j]);
    for (Index k = 0; k <= j; ++k) {
      // centred at the exact mean, (x_j - m_j)(x_k - m_k) has mean S_jk
      std::vector<double> prod;
      for (const auto& x : xs) prod.push_back((x[j] - m[j]) * (x[k] - m[k]));
      CHECK_MEAN(prod, s(j, k));
    }
  }
  // Mahalanobis distance (x - m)' S^{-1} (x - m) ~ chi-square(p)
  const Matrix s_inv = s.inverse();
  std::vector<double> d2;
  for (const auto& x : xs) d2.push_back((x - m).dot(s_inv * (x - m)));
  std::vector<double> edges;
  for (int b = 1; b < 30; ++b) edges.push_back(b * 0.5);
  CHECK(bt::chi_square_gof_pvalue(
            d2, [p](double q) { return bt::chi_square_cdf(q, static_cast<int>(p)); }, edges) >
        1e-4);
  return xs;
}
}  // namespace

TEST_CASE("multi_normal_chol_rng: covariance form reproduces mean and covariance") {
  const Matrix s = example_cov();
  const Matrix l = la::cholesky_lower(s, "S");
  const Vector m = example_mean();
  draws_and_check(m, s, 11, [&](Rng& r) { return la::multi_normal_chol_rng(m, l, r); });
}

TEST_CASE("multi_normal_prec_chol_rng: precision form reproduces mean and covariance") {
  const Matrix s = example_cov();
  const Matrix l_prec = la::cholesky_lower(s.inverse(), "Q");
  const Vector m = example_mean();
  draws_and_check(m, s, 12, [&](Rng& r) { return la::multi_normal_prec_chol_rng(m, l_prec, r); });
}

TEST_CASE("multi_normal_canonical_rng: N(Q^{-1} h, Q^{-1})") {
  const Matrix s = example_cov();
  const Matrix q = s.inverse();
  const Matrix l_prec = la::cholesky_lower(q, "Q");
  const Vector m = example_mean();
  const Vector h = q * m;
  draws_and_check(m, s, 13, [&](Rng& r) { return la::multi_normal_canonical_rng(h, l_prec, r); });
}

TEST_CASE("covariance and precision forms are deterministic given the Rng indices") {
  const Matrix l = la::cholesky_lower(example_cov(), "S");
  const Vector m = example_mean();
  Rng a({5, 1}, 3, 4, Stream::Beta), b({5, 1}, 3, 4, Stream::Beta), c({5, 1}, 3, 5, Stream::Beta);
  const Vector xa = la::multi_normal_chol_rng(m, l, a);
  CHECK(xa == la::multi_normal_chol_rng(m, l, b));
  CHECK(xa != la::multi_normal_chol_rng(m, l, c));
  // both forms use the same standard normals z: x = m + L z and x = m + L_Q^{-T} z
  Rng d({5, 1}, 3, 4, Stream::Beta), e({5, 1}, 3, 4, Stream::Beta);
  Vector z(3);
  la::fill_std_normal(z, d);
  CHECK(((xa - m) - l * z).norm() < 1e-12);
  const Matrix l_prec = la::cholesky_lower(example_cov().inverse(), "Q");
  const Vector xp = la::multi_normal_prec_chol_rng(m, l_prec, e);
  CHECK(((l_prec.transpose() * (xp - m)) - z).norm() < 1e-12);
}

TEST_CASE("multi_normal_chol_lpdf equals the direct formula") {
  const Matrix s = example_cov();
  const Matrix l = la::cholesky_lower(s, "S");
  const Vector m = example_mean();
  const double log_2pi = std::log(2.0 * std::acos(-1.0));
  for (const Vector& x : {Vector(m), Vector(m + Vector::Constant(3, 0.7)),
                          Vector((Vector(3) << 10.0, -30.0, 4.0).finished())}) {
    const Vector r = x - m;
    const double direct =
        -0.5 * r.dot(s.inverse() * r) - 0.5 * std::log(s.determinant()) - 1.5 * log_2pi;
    CHECK_NEAR(la::multi_normal_chol_lpdf(x, m, l), direct, 1e-10 * (1.0 + std::fabs(direct)));
  }
  // one dimension: the univariate normal log density
  Matrix l1(1, 1);
  l1 << 2.0;
  Vector x1(1), m1(1);
  x1 << 3.0;
  m1 << 1.0;
  CHECK_NEAR(la::multi_normal_chol_lpdf(x1, m1, l1), -0.5 * 1.0 - std::log(2.0) - 0.5 * log_2pi,
             1e-14);
}

BGLMM_TEST_MAIN()
