// Tests of steps/covariance_prior.hpp.
//  * The unconstrained coordinates round-trip, and the density in them equals the density of
//    Sigma times the Jacobian |d vech(Sigma) / dx| computed here by finite differences (for the
//    LKJ separation prior and the inverse-Wishart, q = 2, 3, 4): the difference must be the
//    same constant at every point. A Jacobian with the CPC exponent lowered by one (b_j - 1,
//    the Beta density without dz/dx) must fail the same check.
//  * Prior draws: LKJ(eta) correlations have the known marginal Beta(eta - 1 + q/2, same) on
//    (-1, 1) (variance 1 / (2 a + 1)), SDs their half-t law (median by quadrature-free
//    closed forms); tolerances are 4 Monte-Carlo standard errors.
//  * The conditional step leaves p(Sigma | b) invariant: the successive-conditional (Geweke)
//    chain Sigma -> b ~ N(0, Sigma) -> step must reproduce the prior's moments; the same chain
//    with a step that uses a different eta must not.
#include <cmath>
#include <vector>

#include "bglmm/linalg/mvn.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/covariance_prior.hpp"
#include "check.hpp"

using bglmm::Index;
using bglmm::Matrix;
using bglmm::Vector;
namespace st = bglmm::steps;
namespace rng = bglmm::rng;

namespace {

st::CovariancePrior lkj_prior(Index q, double eta) {
  st::CovariancePrior p;
  p.kind = st::CovariancePriorKind::Separation;
  for (Index k = 0; k < q; ++k)
    p.sd.push_back(st::make_scale_prior(1, 3.0, 1.0 + 0.5 * static_cast<double>(k)));
  p.lkj_eta = eta;
  return p;
}

st::CovariancePrior iw_prior(Index q) {
  st::CovariancePrior p;
  p.iw.df = static_cast<double>(q) + 2.0;
  p.iw.scale = Matrix::Identity(q, q) + Matrix::Constant(q, q, 0.3);
  return p;
}

Vector vech(const Matrix& a) {
  const Index q = a.rows();
  Vector v(q * (q + 1) / 2);
  Index c = 0;
  for (Index i = 0; i < q; ++i)
    for (Index j = 0; j <= i; ++j) v[c++] = a(i, j);
  return v;
}

Matrix sigma_of(const Vector& x, Index q) {
  Matrix chol;
  CHECK(st::chol_from_unconstrained(x, q, chol));
  return chol * chol.transpose();
}

// log |d vech(Sigma) / dx| by central differences.
double log_jacobian(const Vector& x, Index q) {
  const Index d = x.size();
  Matrix j(d, d);
  const double h = 1e-6;
  for (Index c = 0; c < d; ++c) {
    Vector xp = x, xm = x;
    xp[c] += h;
    xm[c] -= h;
    j.col(c) = (vech(sigma_of(xp, q)) - vech(sigma_of(xm, q))) / (2.0 * h);
  }
  return std::log(std::fabs(j.determinant()));
}

// The density in x with the CPC exponent lowered by one (a deliberately wrong Jacobian).
double wrong_lkj_density(const st::CovariancePrior& p, const Vector& x, Index q) {
  double lp = st::covariance_log_prior_unconstrained(p, x, q);
  Index c = q;
  for (Index i = 0; i < q; ++i)
    for (Index j = 0; j < i; ++j) lp -= st::detail::log1m_tanh2(x[c++]);
  return lp;
}

Vector random_x(Index q, rng::Rng& r) {
  Vector x(st::unconstrained_dim(q));
  for (Index k = 0; k < x.size(); ++k) x[k] = 0.8 * r.std_normal();
  return x;
}

struct MeanSe {
  double mean, se;
};

// Mean and batch-means standard error of a series.
MeanSe batch_mean(const std::vector<double>& v) {
  const int batches = 40;
  const std::size_t size = v.size() / batches;
  std::vector<double> bm(batches, 0.0);
  double total = 0.0;
  for (int b = 0; b < batches; ++b) {
    for (std::size_t i = 0; i < size; ++i) bm[b] += v[b * size + i];
    bm[b] /= static_cast<double>(size);
    total += bm[b];
  }
  const double mean = total / batches;
  double ss = 0.0;
  for (double x : bm) ss += (x - mean) * (x - mean);
  return {mean, std::sqrt(ss / (batches - 1) / batches)};
}

}  // namespace

TEST_CASE("unconstrained coordinates round-trip") {
  rng::Rng r(rng::ChainKey{1, 0}, 0, 0, rng::Stream::Test);
  for (Index q : {1, 2, 3, 5}) {
    for (int rep = 0; rep < 20; ++rep) {
      const Vector x = random_x(q, r);
      Vector back;
      CHECK(st::unconstrained_from_sigma(sigma_of(x, q), back));
      CHECK_NEAR((back - x).cwiseAbs().maxCoeff(), 0.0, 1e-9);
    }
  }
}

TEST_CASE("density in x = density of Sigma times the Jacobian, up to one constant") {
  rng::Rng r(rng::ChainKey{2, 0}, 0, 0, rng::Stream::Test);
  for (Index q : {2, 3, 4}) {
    for (int which = 0; which < 3; ++which) {
      const st::CovariancePrior p = which == 2 ? iw_prior(q) : lkj_prior(q, which == 0 ? 1.0 : 2.5);
      double ref = 0.0, worst = 0.0, worst_wrong = 0.0, ref_wrong = 0.0;
      for (int rep = 0; rep < 12; ++rep) {
        const Vector x = random_x(q, r);
        Matrix chol;
        CHECK(st::chol_from_unconstrained(x, q, chol));
        const double via_sigma = st::covariance_log_prior(p, chol) + log_jacobian(x, q);
        const double diff = st::covariance_log_prior_unconstrained(p, x, q) - via_sigma;
        const double diff_wrong = wrong_lkj_density(p, x, q) - via_sigma;
        if (rep == 0) {
          ref = diff;
          ref_wrong = diff_wrong;
        }
        worst = std::max(worst, std::fabs(diff - ref));
        worst_wrong = std::max(worst_wrong, std::fabs(diff_wrong - ref_wrong));
      }
      CHECK_NEAR(worst, 0.0, 1e-5);
      CHECK(worst_wrong > 0.05);  // the negative control is caught
    }
  }
}

TEST_CASE("LKJ prior draws: correlation marginals and SDs") {
  const Index q = 3;
  for (double eta : {1.0, 2.0}) {
    const st::CovariancePrior p = lkj_prior(q, eta);
    const int n = 40000;
    std::vector<double> r01, r12sq, below;
    for (int i = 0; i < n; ++i) {
      rng::Rng r(rng::ChainKey{3, 0}, static_cast<std::uint64_t>(i), 0, rng::Stream::Test);
      const Matrix s = st::covariance_prior_rng(p, q, r);
      r01.push_back(s(0, 1) / std::sqrt(s(0, 0) * s(1, 1)));
      const double r12 = s(1, 2) / std::sqrt(s(1, 1) * s(2, 2));
      r12sq.push_back(r12 * r12);
      below.push_back(std::sqrt(s(0, 0)) < 1.0 ? 1.0 : 0.0);  // half-t(3, 1): P(s < 1)
    }
    const double a = eta - 1.0 + 0.5 * static_cast<double>(q);
    const MeanSe m01 = batch_mean(r01), v12 = batch_mean(r12sq), pb = batch_mean(below);
    CHECK_NEAR(m01.mean, 0.0, 4.0 * m01.se);
    CHECK_NEAR(v12.mean, 1.0 / (2.0 * a + 1.0), 4.0 * v12.se);
    // P(|t_3| < 1) = 2 F_t3(1) - 1 = 0.6089977...
    CHECK_NEAR(pb.mean, 0.6089977810, 4.0 * pb.se);
  }
}

namespace {
// Successive-conditional chain: Sigma from the step under `step_prior`, effects b ~ N(0, Sigma);
// returns the series of r_01 and log s_0.
void geweke_chain(const st::CovariancePrior& prior, const st::CovariancePrior& step_prior, Index q,
                  Index m, int n, std::vector<double>& r01, std::vector<double>& log_s0) {
  rng::Rng r0(rng::ChainKey{5, 0}, 0, 0, rng::Stream::Test);
  Matrix sigma = st::covariance_prior_rng(prior, q, r0);
  for (int t = 0; t < n; ++t) {
    rng::Rng r(rng::ChainKey{5, 0}, static_cast<std::uint64_t>(t) + 1, 0, rng::Stream::Test);
    const Matrix l = bglmm::linalg::cholesky_lower(sigma, "test Sigma");
    Matrix scatter = Matrix::Zero(q, q);
    for (Index j = 0; j < m; ++j) {
      const Vector b = bglmm::linalg::multi_normal_chol_rng(Vector::Zero(q), l, r);
      scatter += b * b.transpose();
    }
    sigma = st::covariance_conditional_step(step_prior, scatter, m, sigma, r);
    r01.push_back(sigma(0, 1) / std::sqrt(sigma(0, 0) * sigma(1, 1)));
    log_s0.push_back(0.5 * std::log(sigma(0, 0)));
  }
}
}  // namespace

TEST_CASE("the LKJ conditional step leaves p(Sigma | b) invariant (Geweke)") {
  const Index q = 3, m = 6;
  const st::CovariancePrior p = lkj_prior(q, 3.0);
  // prior moments by direct draws
  std::vector<double> pr01, pls;
  for (int i = 0; i < 40000; ++i) {
    rng::Rng r(rng::ChainKey{6, 0}, static_cast<std::uint64_t>(i), 0, rng::Stream::Test);
    const Matrix s = st::covariance_prior_rng(p, q, r);
    pr01.push_back(s(0, 1) * s(0, 1) / (s(0, 0) * s(1, 1)));
    pls.push_back(0.5 * std::log(s(0, 0)));
  }
  const MeanSe prior_r2 = batch_mean(pr01), prior_ls = batch_mean(pls);
  auto z_scores = [&](const st::CovariancePrior& step, double& z_r2, double& z_ls) {
    std::vector<double> r01, ls;
    geweke_chain(p, step, q, m, 40000, r01, ls);
    for (double& v : r01) v *= v;
    const MeanSe a = batch_mean(r01), b = batch_mean(ls);
    z_r2 = (a.mean - prior_r2.mean) / std::hypot(a.se, prior_r2.se);
    z_ls = (b.mean - prior_ls.mean) / std::hypot(b.se, prior_ls.se);
  };
  double z1 = 0.0, z2 = 0.0;
  z_scores(p, z1, z2);
  CHECK(std::fabs(z1) < 4.0);
  CHECK(std::fabs(z2) < 4.0);
  // negative control: the step believes eta = 1 while the prior has eta = 3
  double w1 = 0.0, w2 = 0.0;
  z_scores(lkj_prior(q, 1.0), w1, w2);
  CHECK(std::fabs(w1) > 6.0);
}

BGLMM_TEST_MAIN()
