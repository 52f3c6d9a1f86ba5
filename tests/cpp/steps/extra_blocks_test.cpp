// Tests of the extra random-effect blocks (random_blocks.hpp, steps/extra_blocks.hpp): layout
// checks, the translation pairs, the level pass against brute force, the translation and scale
// moves keeping the cached linear predictor equal to a fresh one, the Laplace level step being
// exact for the gaussian family, and thread-count independence of whole chains.
#include <cmath>
#include <vector>

#include "bglmm/glmm_sampler.hpp"
#include "bglmm/steps/extra_blocks.hpp"
#include "check.hpp"

using namespace bglmm;

namespace {

// 12 rows: primary groups of 4 (sorted), a crossed factor with 3 levels (row i -> i % 3),
// X = [1, t], the crossed block's Z = [1, t] (both columns equal X's).
struct Fixture {
  RowMatrix x, z, zk;
  Vector y, trials, offset;
  IndexVector starts, codes, level_start, level_rows;
  Fixture() {
    const int n = 12;
    x.resize(n, 2);
    z.resize(n, 1);
    zk.resize(n, 2);
    y.resize(n);
    trials = Vector::Constant(n, 2.0);
    offset = Vector::LinSpaced(n, -0.1, 0.2);
    codes.resize(n);
    for (int i = 0; i < n; ++i) {
      const double t = 0.2 * i - 1.0;
      x(i, 0) = 1.0;
      x(i, 1) = t;
      z(i, 0) = 1.0;
      zk(i, 0) = 1.0;
      zk(i, 1) = t;
      y[i] = static_cast<double>(i % 3);
      codes[i] = i % 3;
    }
    starts.resize(4);
    starts << 0, 4, 8, 12;
    level_start.resize(4);
    level_start << 0, 4, 8, 12;
    level_rows.resize(n);
    level_rows << 0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11;
  }
  GlmmData data(FamilyLink fl, const std::vector<std::pair<Index, Index>>& centred) const {
    GlmmData d = make_glmm_data(make_grouped_data(x, z, y, trials, offset, starts, fl), centred);
    d.extra.push_back(make_extra_block(codes, zk, level_start, level_rows, d.obs.x, 1));
    return d;
  }
};

GlmmPriors make_priors(const GlmmData& d) {
  GlmmPriors pr;
  pr.beta_mean = Vector::Zero(d.p());
  pr.beta_cov = 4.0 * Matrix::Identity(d.p(), d.p());
  pr.cov.iw.df = 4.0;
  pr.cov.iw.scale = Matrix::Identity(d.q(), d.q());
  steps::CovariancePrior extra;
  extra.iw.df = 5.0;
  extra.iw.scale = Matrix::Identity(2, 2);
  pr.extra_cov.push_back(extra);
  pr.phi_shape = 2.0;
  pr.phi_scale = 1.0;
  prepare_priors(d, pr);
  return pr;
}

GlmmState make_state(const GlmmData& d, Vector& offset) {
  GlmmState s;
  s.beta = Vector(2);
  s.beta << 0.3, -0.2;
  s.gamma = RowMatrix(3, 1);
  s.gamma << 0.5, -0.1, 0.2;  // centred intercept: gamma_j = beta_0 + b_j
  s.set_sigma(Matrix::Constant(1, 1, 0.5));
  s.phi = 0.8;
  s.extra.resize(1);
  ExtraBlockState& st = s.extra[0];
  st.b = RowMatrix(3, 2);
  st.b << 0.1, -0.2, 0.3, 0.05, -0.4, 0.1;
  Matrix sig(2, 2);
  sig << 0.4, 0.05, 0.05, 0.2;
  CHECK(steps::set_extra_sigma(st, sig));
  const ExtraBlock& blk = d.extra[0];
  for (Index i = 0; i < blk.rows(); ++i)
    offset[i] += blk.z.row(i).dot(st.b.row(static_cast<Index>(blk.codes[i])));
  return s;
}

// eta from scratch: offset (user's) + x beta_free + z gamma + zk b_k.
Vector brute_eta(const Fixture& f, const GlmmData& d, const GlmmState& s) {
  Vector eta(f.y.size());
  for (Index i = 0; i < eta.size(); ++i) {
    const Index g = i / 4;
    double e = f.offset[i] + s.gamma(g, 0);
    for (std::size_t k = 0; k < d.free_cols.size(); ++k)
      e += f.x(i, d.free_cols[k]) * s.beta[d.free_cols[k]];
    e += f.zk.row(i).dot(s.extra[0].b.row(f.codes[i]));
    eta[i] = e;
  }
  return eta;
}

}  // namespace

TEST_CASE("make_extra_block checks the layout and finds the translation pairs") {
  Fixture f;
  const GlmmData d = f.data(FamilyLink::PoissonLog, {{0, 0}});
  const ExtraBlock& blk = d.extra[0];
  CHECK(blk.m() == 3 && blk.q() == 2);
  CHECK(blk.shifts.size() == 2);
  CHECK(blk.shifts[0].term == 0 && blk.shifts[0].col == 0);
  CHECK(blk.shifts[1].term == 1 && blk.shifts[1].col == 1);
  IndexVector bad_rows = f.level_rows;
  std::swap(bad_rows[0], bad_rows[4]);  // row 1 listed under level 0
  CHECK_THROWS(make_extra_block(f.codes, f.zk, f.level_start, bad_rows, d.obs.x, 1));
  IndexVector bad_start = f.level_start;
  bad_start[3] = 11;
  CHECK_THROWS(make_extra_block(f.codes, f.zk, bad_start, f.level_rows, d.obs.x, 1));
  IndexVector bad_codes = f.codes;
  bad_codes[2] = 7;
  CHECK_THROWS(make_extra_block(bad_codes, f.zk, f.level_start, f.level_rows, d.obs.x, 1));
  RowMatrix nan_z = f.zk;
  nan_z(3, 1) = std::nan("");
  CHECK_THROWS(make_extra_block(f.codes, nan_z, f.level_start, f.level_rows, d.obs.x, 1));
  GlmmPriors pr = make_priors(d);
  pr.extra_cov.clear();
  CHECK_THROWS(prepare_priors(d, pr));  // one prior per extra block
}

TEST_CASE("level pass equals brute-force sums") {
  Fixture f;
  GlmmData d = f.data(FamilyLink::PoissonLog, {{0, 0}});
  Vector offset = f.offset;
  GlmmState s = make_state(d, offset);
  new (&d.obs.offset) Eigen::Map<const Vector>(offset.data(), offset.size());
  Vector eta;
  full_linear_predictor(d, s, eta, 1);
  const Vector want = brute_eta(f, d, s);
  CHECK((eta - want).cwiseAbs().maxCoeff() < 1e-12);
  QVec delta(2), grad(2);
  delta << 0.3, -0.5;
  QMat info(2, 2);
  const double ll = steps::level_pass<PoissonLog, true>(d, d.extra[0], 1, eta, delta,
                                                         FamilyParams{}, grad, info);
  double ll_b = 0.0, g0 = 0.0, g1 = 0.0, h01 = 0.0;
  for (Index i = 1; i < 12; i += 3) {
    const double e = want[i] + f.zk.row(i).dot(Eigen::RowVector2d(0.3, -0.5));
    ll_b += f.y[i] * e - std::exp(e);
    g0 += f.y[i] - std::exp(e);
    g1 += (f.y[i] - std::exp(e)) * f.zk(i, 1);
    h01 += std::exp(e) * f.zk(i, 1);
  }
  CHECK_NEAR(ll, ll_b, 1e-12);
  CHECK_NEAR(grad[0], g0, 1e-12);
  CHECK_NEAR(grad[1], g1, 1e-12);
  CHECK_NEAR(info(0, 1), h01, 1e-12);
  CHECK_NEAR(info(1, 0), h01, 1e-12);
}

TEST_CASE("the extra blocks' moves keep the cached eta and the effective offset exact") {
  for (FamilyLink fl : {FamilyLink::PoissonLog, FamilyLink::BinomialLogit,
                        FamilyLink::GaussianIdentity}) {
    for (int centred = 0; centred < 2; ++centred) {
      Fixture f;
      GlmmData d = f.data(fl, centred ? std::vector<std::pair<Index, Index>>{{0, 0}}
                                      : std::vector<std::pair<Index, Index>>{});
      const GlmmPriors pr = make_priors(d);
      Vector offset = f.offset;
      GlmmState s = make_state(d, offset);
      if (!centred) s.gamma.array() -= s.beta[0];  // uncentred: gamma_j = b_j
      new (&d.obs.offset) Eigen::Map<const Vector>(offset.data(), offset.size());
      const Vector before = brute_eta(f, d, s);
      std::vector<ExtraStepInfo> info;
      for (int it = 1; it <= 30; ++it) {
        steps::ExtraStepArgs a{rng::ChainKey{3, 0}, static_cast<std::uint64_t>(it), 1, true,
                               0.2, false};
        dispatch(fl, [&](auto g) {
          steps::extra_blocks_sweep<decltype(g)>(d, pr, s, offset, a, info);
          return 0;
        });
        // the cache and the offset equal a fresh computation from the state
        const Vector want = brute_eta(f, d, s);
        CHECK((s.work.eta_rows - want).cwiseAbs().maxCoeff() < 1e-10);
        Vector eff = f.offset;
        for (Index i = 0; i < 12; ++i) eff[i] += f.zk.row(i).dot(s.extra[0].b.row(f.codes[i]));
        CHECK((offset - eff).cwiseAbs().maxCoeff() < 1e-10);
        CHECK(!s.cache.valid);
      }
      (void)before;
      if (fl == FamilyLink::GaussianIdentity)  // exact Gibbs: every level accepted
        CHECK_NEAR(info[0].level_accept_mean, 1.0, 1e-9);
    }
  }
}

TEST_CASE("the translation move leaves the linear predictor unchanged") {
  for (int centred = 0; centred < 2; ++centred) {
    Fixture f;
    GlmmData d = f.data(FamilyLink::PoissonLog, centred ? std::vector<std::pair<Index, Index>>{{0, 0}}
                                                         : std::vector<std::pair<Index, Index>>{});
    const GlmmPriors pr = make_priors(d);
    Vector offset = f.offset;
    GlmmState s = make_state(d, offset);
    new (&d.obs.offset) Eigen::Map<const Vector>(offset.data(), offset.size());
    const Vector before = brute_eta(f, d, s);
    const Vector beta0 = s.beta;
    rng::Rng rng(rng::ChainKey{1, 0}, 1, 0, rng::Stream::Test);
    steps::extra_translation_step(d, pr, d.extra[0], s.extra[0], s, rng);
    CHECK((brute_eta(f, d, s) - before).cwiseAbs().maxCoeff() < 1e-12);
    CHECK((s.beta - beta0).cwiseAbs().minCoeff() > 0.0);  // both coefficients moved
  }
}

TEST_CASE("chains with an extra block do not depend on the thread count") {
  Fixture f;
  std::vector<RowMatrix> sig, b;
  for (int threads : {1, 2, 3}) {
    GlmmData d = f.data(FamilyLink::BinomialLogit, {{0, 0}});
    const GlmmPriors pr = make_priors(d);
    GlmmConfig cfg;
    cfg.draws = 30;
    cfg.warmup = 40;
    cfg.threads = threads;
    cfg.min_rows_per_thread = 1;
    const GlmmChainResult r = run_glmm_chain(d, pr, cfg, rng::ChainKey{9, 1}, RunControl{});
    CHECK(r.threads_used == threads);
    sig.push_back(r.extra_sigma[0]);
    b.push_back(r.extra_b[0]);
    CHECK(r.extra_level_acceptance[0] > 0.5);
  }
  for (std::size_t k = 1; k < sig.size(); ++k) {
    CHECK((sig[k] - sig[0]).cwiseAbs().maxCoeff() == 0.0);
    CHECK((b[k] - b[0]).cwiseAbs().maxCoeff() == 0.0);
  }
}

BGLMM_TEST_MAIN()
