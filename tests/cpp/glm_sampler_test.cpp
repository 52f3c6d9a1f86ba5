// Tests of glm_sampler.hpp's case weights: the log-likelihood, the posterior mode and the
// exact conjugate draws with integer weights equal those of the rows repeated; weights of 0
// drop a row; bad weights throw.
#include <cmath>

#include "bglmm/glm_sampler.hpp"
#include "check.hpp"

using namespace bglmm;

namespace {

struct Rows {
  RowMatrix x;
  Vector y, trials, offset;
};

// 8 rows, X = [1, t], counts y; and the weights 0, 1, 2, 3, 0, 1, 2, 3
Rows make_rows() {
  Rows r;
  const int n = 8;
  r.x.resize(n, 2);
  r.y.resize(n);
  r.trials = Vector::Constant(n, 5.0);
  r.offset = Vector::LinSpaced(n, 0.0, 0.35);
  for (int i = 0; i < n; ++i) {
    r.x(i, 0) = 1.0;
    r.x(i, 1) = 0.3 * i - 1.0;
    r.y[i] = static_cast<double>((3 * i + 1) % 6);
  }
  return r;
}

Vector weights() {
  Vector w(8);
  for (int i = 0; i < 8; ++i) w[i] = static_cast<double>(i % 4);
  return w;
}

Rows repeat(const Rows& r, const Vector& w) {
  Rows out;
  const Index n = static_cast<Index>(w.sum());
  out.x.resize(n, r.x.cols());
  out.y.resize(n);
  out.trials.resize(n);
  out.offset.resize(n);
  Index k = 0;
  for (Index i = 0; i < r.y.size(); ++i)
    for (int c = 0; c < static_cast<int>(w[i]); ++c, ++k) {
      out.x.row(k) = r.x.row(i);
      out.y[k] = r.y[i];
      out.trials[k] = r.trials[i];
      out.offset[k] = r.offset[i];
    }
  return out;
}

GlmPrior make_prior() {
  GlmPrior p;
  p.mean = Vector::Zero(2);
  p.covariance = 9.0 * Matrix::Identity(2, 2);
  p.sigma2_shape = 1.0;
  p.sigma2_scale = 2.0;
  return p;
}

}  // namespace

TEST_CASE("weighted GLM log-likelihood and mode equal those of the rows repeated") {
  const Rows r = make_rows();
  const Vector w = weights();
  const Rows rep = repeat(r, w);
  const Vector beta = (Vector(2) << 0.4, -0.6).finished();
  for (FamilyLink fl : {FamilyLink::PoissonLog, FamilyLink::BinomialLogit,
                        FamilyLink::BinomialCloglog, FamilyLink::NegBinomialLog}) {
    const GlmData dw = make_glm_data(r.x, r.y, r.trials, r.offset, fl, w);
    const GlmData dr = make_glm_data(rep.x, rep.y, rep.trials, rep.offset, fl);
    const FamilyParams fp{2.0};
    const double a = glm_log_kernel(dw, beta, fp, 1), b = glm_log_kernel(dr, beta, fp, 1);
    CHECK_NEAR(a, b, 1e-11 * (1.0 + std::fabs(b)));
    const GlmMode ma = glm_mode(dw, make_prior(), fp, 1), mb = glm_mode(dr, make_prior(), fp, 1);
    CHECK_NEAR((ma.beta - mb.beta).norm(), 0.0, 1e-8);
    CHECK_NEAR((ma.covariance - mb.covariance).norm(), 0.0, 1e-8);
  }
  // the joint mode of (beta, phi) for a family with a dispersion
  GlmPrior pd = make_prior();
  const GlmData dw = make_glm_data(r.x, r.y, r.trials, r.offset, FamilyLink::NegBinomialLog, w);
  const GlmData dr =
      make_glm_data(rep.x, rep.y, rep.trials, rep.offset, FamilyLink::NegBinomialLog);
  FamilyParams fa, fb;
  const GlmMode ja = glm_joint_mode(dw, pd, 1, fa), jb = glm_joint_mode(dr, pd, 1, fb);
  CHECK_NEAR(fa.phi, fb.phi, 1e-6 * fb.phi);
  CHECK_NEAR((ja.beta - jb.beta).norm(), 0.0, 1e-7);
}

TEST_CASE("weighted conjugate gaussian draws equal those of the rows repeated") {
  Rows r = make_rows();
  for (Index i = 0; i < r.y.size(); ++i) r.y[i] = 0.5 * r.y[i] + 0.1 * std::sin(3.0 * i);
  const Vector w = weights();
  const Rows rep = repeat(r, w);
  const GlmData dw = make_glm_data(r.x, r.y, r.trials, r.offset, FamilyLink::GaussianIdentity, w);
  const GlmData dr =
      make_glm_data(rep.x, rep.y, rep.trials, rep.offset, FamilyLink::GaussianIdentity);
  GlmConfig cfg;
  cfg.method = GlmMethod::Conjugate;
  cfg.draws = 50;
  const GlmChainResult a = run_glm_chain(dw, make_prior(), cfg, rng::ChainKey{9, 0}, RunControl{});
  const GlmChainResult b = run_glm_chain(dr, make_prior(), cfg, rng::ChainKey{9, 0}, RunControl{});
  CHECK_NEAR((a.beta - b.beta).cwiseAbs().maxCoeff(), 0.0, 1e-10);
  CHECK_NEAR((a.sigma - b.sigma).cwiseAbs().maxCoeff(), 0.0, 1e-10);
  CHECK_NEAR((a.log_posterior - b.log_posterior).cwiseAbs().maxCoeff(), 0.0, 1e-8);
}

TEST_CASE("bad GLM case weights throw") {
  const Rows r = make_rows();
  Vector w = weights();
  w[3] = -1.0;
  CHECK_THROWS(make_glm_data(r.x, r.y, r.trials, r.offset, FamilyLink::PoissonLog, w));
  CHECK_THROWS(make_glm_data(r.x, r.y, r.trials, r.offset, FamilyLink::PoissonLog,
                             Vector::Zero(8)));
  CHECK_THROWS(make_glm_data(r.x, r.y, r.trials, r.offset, FamilyLink::PoissonLog,
                             Vector::Ones(3)));
}

BGLMM_TEST_MAIN()
