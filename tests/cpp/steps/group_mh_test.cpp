// Tests of the GLMM steps (steps/group_mh.hpp, steps/fixed_effects.hpp) and driver
// (glmm_sampler.hpp): fused likelihood terms, the per-group data pass against brute-force sums,
// the Laplace proposal being exact for the gaussian family, thread-count independence, what the
// driver reports about its moves, and input checks.
#include <cmath>
#include <vector>

#include "bglmm/glmm_sampler.hpp"
#include "bglmm/steps/fixed_effects.hpp"
#include "bglmm/steps/group_mh.hpp"
#include "check.hpp"

using namespace bglmm;

namespace {

struct Fixture {
  RowMatrix x, z;
  Vector y, trials, offset;
  IndexVector starts;
  // 3 groups of sizes 2, 3, 4; X = [1, t], Z = [1, t]
  explicit Fixture(bool counts = true) {
    const int n = 9;
    x.resize(n, 2);
    z.resize(n, 2);
    y.resize(n);
    trials = Vector::Constant(n, 3.0);
    offset = Vector::LinSpaced(n, -0.2, 0.3);
    for (int i = 0; i < n; ++i) {
      const double t = 0.25 * i - 1.0;
      x(i, 0) = 1.0;
      x(i, 1) = t;
      z(i, 0) = 1.0;
      z(i, 1) = t;
      y[i] = counts ? static_cast<double>(i % 4) : 0.3 * i - 1.1;
    }
    starts.resize(4);
    starts << 0, 2, 5, 9;
  }
  GroupedData grouped(FamilyLink fl) const {
    return make_grouped_data(x, z, y, trials, offset, starts, fl);
  }
};

GlmmPriors make_priors(const GlmmData& d) {
  GlmmPriors pr;
  pr.beta_mean = Vector::Zero(d.p());
  pr.beta_cov = 4.0 * Matrix::Identity(d.p(), d.p());
  pr.cov.iw.df = 4.0;
  pr.cov.iw.scale = Matrix::Identity(d.q(), d.q());
  pr.phi_shape = 2.0;
  pr.phi_scale = 1.0;
  prepare_priors(d, pr);
  return pr;
}

}  // namespace

TEST_CASE("fused likelihood terms equal the Glm functions") {
  for (double eta : {-30.0, -3.0, -0.4, 0.0, 0.7, 5.0, 30.0}) {
    double u, w;
    const double k = LikTerms<PoissonLog>::all(3.0, 1.0, eta, FamilyParams{}, u, w);
    CHECK_NEAR(k, PoissonLog::log_kernel(3.0, 1.0, eta, 1.0), 1e-12 * (1 + std::fabs(k)));
    CHECK_NEAR(u, PoissonLog::score(3.0, 1.0, eta, 1.0), 1e-12 * (1 + std::fabs(u)));
    CHECK_NEAR(w, PoissonLog::weight(1.0, eta, 1.0), 1e-12 * (1 + w));
    const double kb = LikTerms<BinomialLogit>::all(2.0, 5.0, eta, FamilyParams{}, u, w);
    CHECK_NEAR(kb, BinomialLogit::log_kernel(2.0, 5.0, eta, 1.0), 1e-12 * (1 + std::fabs(kb)));
    CHECK_NEAR(u, BinomialLogit::score(2.0, 5.0, eta, 1.0), 1e-12);
    CHECK_NEAR(w, BinomialLogit::weight(5.0, eta, 1.0), 1e-14);
    CHECK_NEAR(LikTerms<BinomialLogit>::kernel(2.0, 5.0, eta, FamilyParams{}), kb, 0.0);
  }
}

// The vectorised negative-binomial, gamma and zero-inflated Poisson blocks (and the fused scalar
// NB terms) against the families' own functions, for |eta| up to `max_eta` (700 unless said) and
// dispersions from 0.05 to 1e6.
template <typename G>
void check_block_against_family(double y, double phi, double max_eta = 700.0) {
  std::vector<double> etas;
  for (double e : {-700.0, -40.0, -3.0, -0.4, 0.0, 0.7, 5.0, 40.0, 700.0})
    if (std::fabs(e) <= max_eta) etas.push_back(e);
  const Index len = static_cast<Index>(etas.size()), padded = padded_length(len);
  BlockArray yb = BlockArray::Constant(padded, y), nb = BlockArray::Ones(padded);
  BlockArray eta = BlockArray::Zero(padded), u, w;
  for (Index i = 0; i < len; ++i) eta[i] = etas[static_cast<std::size_t>(i)];
  const double total = LikBlock<G>::all(yb, nb, eta, FamilyParams{phi}, u, w, len);
  double ref_total = 0.0;
  for (Index i = 0; i < len; ++i) {
    const double k = G::log_kernel(y, 1.0, eta[i], phi), s = G::score(y, 1.0, eta[i], phi);
    ref_total += k;
    if (!std::isfinite(s)) {  // gamma, y e^-eta beyond 1e308: the family's own value is -inf
      CHECK(u[i] == s);
      continue;
    }
    CHECK_NEAR(u[i], s, 1e-12 * (1 + std::fabs(u[i])));
    CHECK_NEAR(w[i], G::weight(1.0, eta[i], phi), 1e-12 * (1 + w[i]));
  }
  if (!std::isfinite(ref_total)) {
    CHECK(total == ref_total);
    return;
  }
  CHECK_NEAR(total, ref_total, 1e-12 * (1 + std::fabs(ref_total)));
  CHECK_NEAR(LikBlock<G>::kernel(yb, nb, eta, FamilyParams{phi}, len), total,
             1e-12 * (1 + std::fabs(total)));
}

TEST_CASE("vectorised negative-binomial, gamma and ZIP terms equal the family functions") {
  for (double phi : {0.05, 2.0, 1e6}) {
    for (double y : {0.0, 1.0, 7.0}) check_block_against_family<NegBinomialLog>(y, phi);
    for (double y : {0.01, 1.0, 7.0}) check_block_against_family<GammaLog>(y, phi);
    // ZIP: mu = e^eta from the vectorised exp, as poisson's block: within 1e-12 up to
    // |eta| = 40; at eta = 700 that exp is 6e-5 off relative (checked finite below)
    for (double y : {0.0, 1.0, 7.0})
      check_block_against_family<ZeroInflatedPoissonLog>(y, phi, 40.0);
    for (double eta : {-700.0, -3.0, 0.0, 4.0, 700.0}) {
      double u, w;
      const double k = LikTerms<NegBinomialLog>::all(3.0, 1.0, eta, FamilyParams{phi}, u, w);
      CHECK_NEAR(k, NegBinomialLog::log_kernel(3.0, 1.0, eta, phi), 1e-12 * (1 + std::fabs(k)));
      CHECK_NEAR(u, NegBinomialLog::score(3.0, 1.0, eta, phi), 1e-12 * (1 + std::fabs(u)));
      CHECK_NEAR(w, NegBinomialLog::weight(1.0, eta, phi), 1e-12 * (1 + w));
      CHECK_NEAR(LikTerms<NegBinomialLog>::kernel(3.0, 1.0, eta, FamilyParams{phi}), k, 0.0);
    }
  }
  check_block_against_family<ZeroInflatedPoissonLog>(0.0, 1e-17, 40.0);  // the odds' floor
  for (double y : {0.0, 3.0}) {
    BlockArray yb = BlockArray::Constant(8, y), nb = BlockArray::Ones(8), u, w;
    BlockArray eta = BlockArray::Zero(8);
    eta[0] = 700.0, eta[1] = -700.0;
    const double total = LikBlock<ZeroInflatedPoissonLog>::all(yb, nb, eta, FamilyParams{0.5},
                                                               u, w, 2);
    CHECK(std::isfinite(total) && std::isfinite(u[0]) && std::isfinite(u[1]));
    CHECK(std::isfinite(w[0]) && w[0] > 0.0 && std::isfinite(w[1]) && w[1] >= 0.0);
  }
}

TEST_CASE("group data pass equals brute-force sums (centred intercept, free slope)") {
  Fixture f;
  const GlmmData d = make_glmm_data(f.grouped(FamilyLink::PoissonLog), {{0, 0}});
  CHECK(d.p_free() == 1 && d.p_centred() == 1 && d.intercept_term == 0);
  const double beta_free[1] = {0.4};
  const double gamma[2] = {-0.3, 0.2};
  QVec grad(2);
  QMat info(2, 2);
  const double ll =
      steps::group_data_pass<PoissonLog, true>(d, 2, beta_free, gamma, FamilyParams{}, grad, info);
  double ll_ref = 0.0, g0 = 0.0, g1 = 0.0, h00 = 0.0, h01 = 0.0, h11 = 0.0;
  for (int i = 5; i < 9; ++i) {
    const double eta = f.offset[i] + f.x(i, 1) * 0.4 + gamma[0] + gamma[1] * f.z(i, 1);
    const double mu = std::exp(eta);
    ll_ref += f.y[i] * eta - mu;
    g0 += f.y[i] - mu;
    g1 += (f.y[i] - mu) * f.z(i, 1);
    h00 += mu;
    h01 += mu * f.z(i, 1);
    h11 += mu * f.z(i, 1) * f.z(i, 1);
  }
  CHECK_NEAR(ll, ll_ref, 1e-12);
  CHECK_NEAR(grad[0], g0, 1e-12);
  CHECK_NEAR(grad[1], g1, 1e-12);
  CHECK_NEAR(info(0, 0), h00, 1e-12);
  CHECK_NEAR(info(0, 1), h01, 1e-12);
  CHECK_NEAR(info(1, 0), h01, 1e-12);
  CHECK_NEAR(info(1, 1), h11, 1e-12);
  // without derivatives: the same kernel
  const double ll_kernel = steps::group_data_pass<PoissonLog, false>(d, 2, beta_free, gamma,
                                                                     FamilyParams{}, grad, info);
  CHECK_NEAR(ll_kernel, ll_ref, 1e-12);
}

TEST_CASE("Laplace proposal is the exact conditional for the gaussian family") {
  Fixture f(false);
  const GlmmData d = make_glmm_data(f.grouped(FamilyLink::GaussianIdentity), {{0, 0}, {1, 1}});
  const double phi = 0.7;
  QVec x(2), mu(2), grad(2), mean(2);
  x << 0.5, -0.2;
  mu << 0.1, 0.3;
  QMat prec(2, 2), info(2, 2);
  prec << 2.0, 0.3, 0.3, 1.5;
  steps::group_data_pass<GaussianIdentity, true>(d, 1, nullptr, x.data(), FamilyParams{phi}, grad,
                                                 info);
  linalg::SmallCholesky<QMat> llt(2);
  CHECK(steps::laplace_moments(x, grad, info, mu, prec, mean, llt));
  // exact: (Z'Z/phi + P)^{-1} (Z'(y - offset)/phi + P mu)
  Matrix zz = Matrix::Zero(2, 2);
  Vector zr = Vector::Zero(2);
  for (int i = 2; i < 5; ++i) {
    Vector zi(2);
    zi << f.z(i, 0), f.z(i, 1);
    zz += zi * zi.transpose() / phi;
    zr += zi * (f.y[i] - f.offset[i]) / phi;
  }
  const Vector exact = (zz + Matrix(prec)).ldlt().solve(zr + Matrix(prec) * Vector(mu));
  CHECK_NEAR(mean[0], exact[0], 1e-10);
  CHECK_NEAR(mean[1], exact[1], 1e-10);
  // ... so the mean does not depend on the starting point and the MH ratio is exactly 1
  QVec x2(2), mean2(2);
  x2 << -3.0, 4.0;
  steps::group_data_pass<GaussianIdentity, true>(d, 1, nullptr, x2.data(), FamilyParams{phi}, grad,
                                                 info);
  CHECK(steps::laplace_moments(x2, grad, info, mu, prec, mean2, llt));
  CHECK_NEAR(mean2[0], exact[0], 1e-10);
  CHECK_NEAR(mean2[1], exact[1], 1e-10);
}

TEST_CASE("chains are bitwise identical for 1 and 3 threads") {
  Fixture f;
  const GlmmData d = make_glmm_data(f.grouped(FamilyLink::BinomialLogit), {{0, 0}});
  const GlmmPriors pr = make_priors(d);
  GlmmConfig cfg;
  cfg.draws = 30;
  cfg.warmup = 30;
  cfg.min_rows_per_thread = 1;
  RunControl control;
  cfg.threads = 1;
  const GlmmChainResult a = run_glmm_chain(d, pr, cfg, rng::ChainKey{9, 0}, control);
  cfg.threads = 3;
  const GlmmChainResult b = run_glmm_chain(d, pr, cfg, rng::ChainKey{9, 0}, control);
  CHECK(b.threads_used == 3);
  CHECK(a.beta == b.beta);
  CHECK(a.sigma == b.sigma);
  CHECK(a.b == b.b);
  cfg.kernel = GroupKernel::RandomWalk;
  const GlmmChainResult c = run_glmm_chain(d, pr, cfg, rng::ChainKey{9, 0}, control);
  cfg.threads = 1;
  const GlmmChainResult e = run_glmm_chain(d, pr, cfg, rng::ChainKey{9, 0}, control);
  CHECK(c.b == e.b);
  CHECK(!(c.b == a.b));
}

TEST_CASE("the driver reports whether the marginal move ran, and the block scale only for the random walk") {
  Fixture f;
  const GlmmData d = make_glmm_data(f.grouped(FamilyLink::BinomialLogit), {{0, 0}});
  const GlmmPriors pr = make_priors(d);
  GlmmConfig cfg;
  cfg.draws = 10;
  cfg.warmup = 40;
  cfg.threads = 1;
  RunControl control;
  const GlmmChainResult on = run_glmm_chain(d, pr, cfg, rng::ChainKey{9, 0}, control);
  CHECK(on.marginal_status == MarginalStatus::On);
  CHECK(on.marginal_warmup_draws == 30);  // the last three quarters of warm-up
  CHECK(on.marginal_dim == 4);            // beta_C (1) and the Cholesky factor of Sigma (3)
  CHECK(std::isfinite(on.marginal_acceptance) && std::isfinite(on.interweave_acceptance));
  CHECK(std::isnan(on.fixed_scale) && on.fixed_proposal_cov.size() == 0);  // Newton step
  cfg.warmup = 8;  // 6 draws of a 4-vector: too few to fit the proposal
  const GlmmChainResult refused = run_glmm_chain(d, pr, cfg, rng::ChainKey{9, 0}, control);
  CHECK(refused.marginal_status == MarginalStatus::NotFitted);
  CHECK(refused.marginal_warmup_draws == 6);
  CHECK(std::isnan(refused.marginal_acceptance));
  cfg.warmup = 0;
  CHECK(run_glmm_chain(d, pr, cfg, rng::ChainKey{9, 0}, control).marginal_status ==
        MarginalStatus::NoWarmup);
  cfg.warmup = 40;
  cfg.marginal_move = false;
  CHECK(run_glmm_chain(d, pr, cfg, rng::ChainKey{9, 0}, control).marginal_status ==
        MarginalStatus::NotRequested);
  cfg.marginal_move = true;
  cfg.kernel = GroupKernel::RandomWalk;
  const GlmmChainResult rw = run_glmm_chain(d, pr, cfg, rng::ChainKey{9, 0}, control);
  CHECK(rw.marginal_status == MarginalStatus::NotRequested);
  CHECK(std::isnan(rw.marginal_acceptance) && std::isnan(rw.interweave_acceptance));
  CHECK(rw.fixed_scale > 0.0 && rw.fixed_proposal_cov.rows() == 1);
}

TEST_CASE("bad data and centring are rejected") {
  Fixture f;
  f.y[3] = 1.5;
  CHECK_THROWS(make_glmm_data(f.grouped(FamilyLink::PoissonLog), {}));
  Fixture g;
  g.y[0] = 4.0;  // > 3 trials
  CHECK_THROWS(make_glmm_data(g.grouped(FamilyLink::BinomialLogit), {}));
  Fixture h;
  // the slope column varies within groups: it cannot join the random intercept's mean
  CHECK_THROWS(make_glmm_data(h.grouped(FamilyLink::PoissonLog), {{1, 0}}));
  CHECK_THROWS(make_glmm_data(h.grouped(FamilyLink::PoissonLog), {{0, 0}, {0, 1}}));
  CHECK_THROWS(make_glmm_data(h.grouped(FamilyLink::PoissonLog), {{5, 0}}));
  const GlmmData d = make_glmm_data(h.grouped(FamilyLink::PoissonLog), {});
  GlmmPriors pr;
  pr.beta_mean = Vector::Zero(3);  // wrong size
  pr.beta_cov = Matrix::Identity(2, 2);
  pr.cov.iw.df = 3.0;
  pr.cov.iw.scale = Matrix::Identity(2, 2);
  CHECK_THROWS(prepare_priors(d, pr));
}

BGLMM_TEST_MAIN()
