// Tests of the case weights in likelihood_block.hpp (lik_kernel, lik_all) and in the GLMM passes
// that use them: a row of integer weight w must count exactly as w copies of it (0: not at all),
// for every family with a row form, for a group's data pass (log-likelihood, score, information)
// and for the dispersion's full log-likelihood (kernels and constants).
#include <cmath>
#include <vector>

#include "bglmm/glmm_sampler.hpp"
#include "bglmm/likelihood_block.hpp"
#include "bglmm/steps/glmm_dispersion.hpp"
#include "bglmm/steps/group_mh.hpp"
#include "check.hpp"

using namespace bglmm;

namespace {

const std::vector<double> kWeights = {2.0, 0.0, 1.0, 3.0, 1.0};

// rows i with y_i, n_i, eta_i, each once with weight w_i, and the same rows repeated w_i times
template <typename G>
void check_weighted_block(const std::vector<double>& y, const std::vector<double>& n,
                          const std::vector<double>& eta, const FamilyParams& fp) {
  const Index len = static_cast<Index>(y.size());
  BlockArray yb(padded_length(len)), nb(padded_length(len)), eb(padded_length(len));
  yb.setZero();
  nb.setZero();
  eb.setZero();
  std::vector<double> yr, nr, er;
  for (Index i = 0; i < len; ++i) {
    yb[i] = y[i];
    nb[i] = n[i];
    eb[i] = eta[i];
    for (int c = 0; c < static_cast<int>(kWeights[i]); ++c) {
      yr.push_back(y[i]);
      nr.push_back(n[i]);
      er.push_back(eta[i]);
    }
  }
  BlockArray u, w;
  const double weighted = lik_all<G>(yb, nb, eb, kWeights.data(), fp, u, w, len);
  const double weighted_kernel = lik_kernel<G>(yb, nb, eb, kWeights.data(), fp, len);
  // the copies, through the unweighted block forms
  const Index lr = static_cast<Index>(yr.size());
  BlockArray yc(padded_length(lr)), nc(padded_length(lr)), ec(padded_length(lr)), uc, wc;
  yc.setZero();
  nc.setZero();
  ec.setZero();
  for (Index i = 0; i < lr; ++i) {
    yc[i] = yr[static_cast<std::size_t>(i)];
    nc[i] = nr[static_cast<std::size_t>(i)];
    ec[i] = er[static_cast<std::size_t>(i)];
  }
  const double copies = lik_all<G>(yc, nc, ec, nullptr, fp, uc, wc, lr);
  const double tol = 1e-11 * (1.0 + std::fabs(copies));
  CHECK_NEAR(weighted, copies, tol);
  CHECK_NEAR(weighted_kernel, copies, tol);
  // score and weight: w_i times the row's own
  for (Index i = 0; i < len; ++i) {
    double ui, wi;
    LikTerms<G>::all(y[i], n[i], eta[i], fp, ui, wi);
    CHECK_NEAR(u[i], kWeights[i] * ui, 1e-12 * (1.0 + std::fabs(ui)));
    CHECK_NEAR(w[i], kWeights[i] * wi, 1e-12 * (1.0 + std::fabs(wi)));
  }
}

}  // namespace

TEST_CASE("weighted block terms equal the rows repeated, for every family with a row form") {
  const std::vector<double> eta = {-1.2, 0.3, 2.0, -0.1, 0.8};
  const std::vector<double> counts = {0, 3, 7, 1, 2}, trials = {4, 5, 9, 2, 2};
  const std::vector<double> ones(5, 1.0), positive = {0.4, 1.3, 5.0, 0.9, 2.2};
  check_weighted_block<PoissonLog>(counts, ones, eta, FamilyParams{});
  check_weighted_block<BinomialLogit>(counts, trials, eta, FamilyParams{});
  check_weighted_block<BinomialProbit>(counts, trials, eta, FamilyParams{});
  check_weighted_block<BinomialCloglog>(counts, trials, eta, FamilyParams{});
  check_weighted_block<NegBinomialLog>(counts, ones, eta, FamilyParams{2.5});
  check_weighted_block<GammaLog>(positive, ones, eta, FamilyParams{3.0});
  check_weighted_block<GaussianIdentity>(positive, ones, eta, FamilyParams{0.7});
  check_weighted_block<BetaBinomialLogit>(counts, trials, eta, FamilyParams{4.0});
  check_weighted_block<ZeroInflatedPoissonLog>(counts, ones, eta, FamilyParams{0.3});
  check_weighted_block<ZeroInflatedNegBinomialLog>(counts, ones, eta, FamilyParams{2.0, 0.4});
  check_weighted_block<StudentIdentity>(positive, ones, eta, FamilyParams{0.5, 4.0});
}

namespace {

// Two groups (rows 0-2 and 3-4) with X = Z = [1, t]; the weighted rows and, separately, the
// rows repeated by their weights (within their groups).
struct WeightedData {
  RowMatrix x, z, xr, zr;
  Vector y, trials, offset, yr, trials_r, offset_r, weights;
  IndexVector start, start_r;
  WeightedData() {
    const int n = 5;
    x.resize(n, 2);
    y.resize(n);
    trials = Vector::Constant(n, 6.0);
    offset = Vector::LinSpaced(n, -0.1, 0.2);
    weights = Eigen::Map<const Vector>(kWeights.data(), n);
    for (int i = 0; i < n; ++i) {
      x(i, 0) = 1.0;
      x(i, 1) = 0.4 * i - 0.7;
      y[i] = static_cast<double>((2 * i + 1) % 5);
    }
    z = x;
    start.resize(3);
    start << 0, 3, 5;
    const int nr = static_cast<int>(weights.sum());
    xr.resize(nr, 2);
    yr.resize(nr);
    trials_r.resize(nr);
    offset_r.resize(nr);
    start_r.resize(3);
    start_r[0] = 0;
    int r = 0;
    for (int i = 0; i < n; ++i) {
      for (int c = 0; c < static_cast<int>(weights[i]); ++c, ++r) {
        xr.row(r) = x.row(i);
        yr[r] = y[i];
        trials_r[r] = trials[i];
        offset_r[r] = offset[i];
      }
      if (i == 2) start_r[1] = r;
    }
    start_r[2] = r;
    zr = xr;
  }
};

template <typename G>
void check_group_pass(FamilyLink fl, const FamilyParams& fp) {
  const WeightedData w;
  const GlmmData dw = make_glmm_data(
      make_grouped_data(w.x, w.z, w.y, w.trials, w.offset, w.start, fl, w.weights), {});
  const GlmmData dr = make_glmm_data(
      make_grouped_data(w.xr, w.zr, w.yr, w.trials_r, w.offset_r, w.start_r, fl), {});
  const Vector beta = (Vector(2) << 0.2, -0.5).finished();
  const Vector gamma = (Vector(2) << 0.3, 0.1).finished();
  for (Index g = 0; g < 2; ++g) {
    QVec gw(2), gr(2);
    QMat iw(2, 2), ir(2, 2);
    const double lw = steps::group_data_pass<G, true>(dw, g, beta.data(), gamma.data(), fp, gw, iw);
    const double lr = steps::group_data_pass<G, true>(dr, g, beta.data(), gamma.data(), fp, gr, ir);
    CHECK_NEAR(lw, lr, 1e-11 * (1.0 + std::fabs(lr)));
    CHECK_NEAR((gw - gr).norm(), 0.0, 1e-11 * (1.0 + gr.norm()));
    CHECK_NEAR((iw - ir).norm(), 0.0, 1e-11 * (1.0 + ir.norm()));
  }
  // the full log-likelihood with its constants (the dispersion steps' target)
  if constexpr (HasDispersion<G>) {
    Vector ew = w.x * beta + w.offset, er = w.xr * beta + w.offset_r;
    const double a = steps::dispersion_log_lik<G>(dw, ew, fp, 1);
    const double b = steps::dispersion_log_lik<G>(dr, er, fp, 1);
    CHECK_NEAR(a, b, 1e-11 * (1.0 + std::fabs(b)));
    CHECK_NEAR(dw.total_weight, 7.0, 0.0);
  }
}

}  // namespace

TEST_CASE("a weighted group pass and dispersion likelihood equal the rows repeated") {
  check_group_pass<PoissonLog>(FamilyLink::PoissonLog, FamilyParams{});
  check_group_pass<BinomialLogit>(FamilyLink::BinomialLogit, FamilyParams{});
  check_group_pass<NegBinomialLog>(FamilyLink::NegBinomialLog, FamilyParams{1.7});
  check_group_pass<BetaBinomialProbit>(FamilyLink::BetaBinomialProbit, FamilyParams{3.0});
  check_group_pass<GaussianIdentity>(FamilyLink::GaussianIdentity, FamilyParams{0.8});
}

TEST_CASE("bad case weights throw") {
  const WeightedData w;
  Vector negative = w.weights;
  negative[1] = -1.0;
  CHECK_THROWS(make_grouped_data(w.x, w.z, w.y, w.trials, w.offset, w.start,
                                 FamilyLink::PoissonLog, negative));
  CHECK_THROWS(make_grouped_data(w.x, w.z, w.y, w.trials, w.offset, w.start,
                                 FamilyLink::PoissonLog, Vector::Zero(5)));
  CHECK_THROWS(make_grouped_data(w.x, w.z, w.y, w.trials, w.offset, w.start,
                                 FamilyLink::PoissonLog, Vector::Ones(4)));
  Vector nan = w.weights;
  nan[0] = std::nan("");
  CHECK_THROWS(make_grouped_data(w.x, w.z, w.y, w.trials, w.offset, w.start,
                                 FamilyLink::PoissonLog, nan));
}

BGLMM_TEST_MAIN()
