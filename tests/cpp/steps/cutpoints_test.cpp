// The cutpoint steps (steps/cutpoints.hpp) with no data: the slice steps of theta_1.. and of c_0
// then draw from the prior alone, the order statistics of K - 1 = 3 draws from N(0, s^2), whose
// means are (-1, 0, 1) 3 s / (2 sqrt(pi)) and second moments (1 + sqrt(3)/(2 pi),
// 1 - sqrt(3)/pi, 1 + sqrt(3)/(2 pi)) s^2; the direct prior draws match them too. Tolerances:
// 5 Monte-Carlo standard errors from batch means. With data: a cutpoint's likelihood with case
// weights equals the one of the rows repeated (both links, the first cutpoint's shifted form),
// and the starting cutpoints count the weights.
#include <algorithm>
#include <cmath>
#include <vector>

#include "bglmm/glm.hpp"
#include "bglmm/steps/cutpoints.hpp"
#include "check.hpp"

namespace {
constexpr double kSd = 1.5;
const double kPi = 3.14159265358979323846;

struct Moments {
  std::vector<std::vector<double>> draws = std::vector<std::vector<double>>(3);
  void add(const bglmm::Vector& c) {
    for (int k = 0; k < 3; ++k) draws[k].push_back(c[k]);
  }
  // |mean - exact| / (batch-means standard error)
  static double z(const std::vector<double>& v, double exact, bool square) {
    const int batches = 50, per = static_cast<int>(v.size()) / batches;
    double total = 0.0, ss = 0.0;
    std::vector<double> means(batches, 0.0);
    for (int b = 0; b < batches; ++b) {
      for (int i = 0; i < per; ++i) {
        const double x = v[b * per + i];
        means[b] += (square ? x * x : x) / per;
      }
      total += means[b] / batches;
    }
    for (double m : means) ss += (m - total) * (m - total);
    return std::fabs(total - exact) / std::sqrt(ss / (batches - 1) / batches);
  }
  double max_z() const {
    const double e1 = 3.0 / (2.0 * std::sqrt(kPi)) * kSd;
    const double tails = (1.0 + std::sqrt(3.0) / (2.0 * kPi)) * kSd * kSd;
    const double mid = (1.0 - std::sqrt(3.0) / kPi) * kSd * kSd;
    return std::max({z(draws[0], -e1, false), z(draws[1], 0.0, false), z(draws[2], e1, false),
                     z(draws[0], tails, true), z(draws[1], mid, true), z(draws[2], tails, true)});
  }
};
}  // namespace

TEST_CASE("cutpoints: prior draws are the normal order statistics") {
  Moments m;
  bglmm::Vector theta;
  for (int t = 0; t < 50000; ++t) {
    bglmm::rng::Rng rng(bglmm::rng::ChainKey{3, 0}, static_cast<std::uint64_t>(t), 0,
                        bglmm::rng::Stream::Test);
    const double beta0 = bglmm::steps::cutpoint_prior_rng(kSd, 4, theta, rng);
    m.add(theta.array() - beta0);
  }
  CHECK(m.max_z() < 5.0);
}

namespace {
// The chain of the steps without data; intercept_sd: the SD of the exact beta_0 | theta draw
// (s / sqrt(3) is right; anything else is the negative control).
Moments chain_without_data(double intercept_sd) {
  using G = bglmm::CumulativeLogit;
  const bglmm::steps::CategoryRows cats = bglmm::steps::make_category_rows(nullptr, 0, 4);
  bglmm::Vector theta(3);
  theta << 0.0, 0.4, 1.1;
  double beta0 = 0.3;
  std::vector<bglmm::steps::SliceWidth> widths;
  bglmm::steps::SliceWidth first;
  Moments m;
  for (int t = 0; t < 200000; ++t) {
    bglmm::rng::Rng rng(bglmm::rng::ChainKey{5, 0}, static_cast<std::uint64_t>(t), 0,
                        bglmm::rng::Stream::Test);
    // beta_0 | theta ~ N(mean theta, s^2 / 3) exactly (the fixed-effect steps' part)
    beta0 = theta.mean() + intercept_sd * rng.std_normal();
    beta0 += bglmm::steps::first_cutpoint_shift<G>(cats, nullptr, nullptr, theta, beta0, kSd,
                                                   first, t < 1000, 1, rng);
    bglmm::steps::cutpoint_step<G>(cats, nullptr, nullptr, theta, beta0, kSd, widths, t < 1000,
                                   1, rng);
    CHECK(theta[0] == 0.0 && theta[1] > 0.0 && theta[2] > theta[1]);
    if (t >= 1000) m.add(theta.array() - beta0);
  }
  return m;
}
}  // namespace

TEST_CASE("cutpoints: the slice steps without data leave the prior invariant") {
  CHECK(chain_without_data(kSd / std::sqrt(3.0)).max_z() < 5.0);
  // negative control: beta_0's conditional prior 20% too wide
  CHECK(chain_without_data(1.2 * kSd / std::sqrt(3.0)).max_z() > 5.0);
}

namespace {
// the cutpoint log-likelihood of theta_k = t, with 8 rows weighted and with the rows repeated
template <typename G>
void check_weighted_cutpoint_lik() {
  const std::vector<double> y = {0, 1, 2, 3, 1, 2, 0, 3}, eta = {-1.0, 0.2, 0.9, 2.0, -0.3, 1.4,
                                                                  0.5, 1.1};
  const std::vector<double> w = {2, 0, 1, 3, 1, 2, 1, 1};
  std::vector<double> yr, er;
  for (std::size_t i = 0; i < y.size(); ++i)
    for (int c = 0; c < static_cast<int>(w[i]); ++c) {
      yr.push_back(y[i]);
      er.push_back(eta[i]);
    }
  const auto cw = bglmm::steps::make_category_rows(y.data(), 8, 4, w.data());
  const auto cr = bglmm::steps::make_category_rows(yr.data(), static_cast<bglmm::Index>(yr.size()), 4);
  bglmm::Vector theta(3);
  theta << 0.0, 0.7, 1.9;
  for (bglmm::Index k = 1; k < 3; ++k) {
    const bglmm::steps::CutpointLogLik<G> lw(cw, y.data(), eta.data(), theta, k, 1);
    const bglmm::steps::CutpointLogLik<G> lr(cr, yr.data(), er.data(), theta, k, 1);
    for (double t : {theta[k - 1] + 0.1, theta[k] + 0.05, (k < 2 ? theta[k + 1] : 3.0) - 0.1})
      CHECK_NEAR(lw(t), lr(t), 1e-11 * (1.0 + std::fabs(lr(t))));
  }
  const bglmm::steps::CutpointLogLik<G> sw(cw, y.data(), eta.data(), theta, 0, 1, 0.4);
  const bglmm::steps::CutpointLogLik<G> sr(cr, yr.data(), er.data(), theta, 0, 1, 0.4);
  CHECK_NEAR(sw(-0.3), sr(-0.3), 1e-11 * (1.0 + std::fabs(sr(-0.3))));
  bglmm::Vector mw, mr;
  CHECK_NEAR(bglmm::steps::marginal_cutpoints<G>(cw, mw), bglmm::steps::marginal_cutpoints<G>(cr, mr),
             1e-12);
  CHECK_NEAR((mw - mr).norm(), 0.0, 1e-12);
}
}  // namespace

TEST_CASE("cutpoints: weighted rows count as repeated rows") {
  check_weighted_cutpoint_lik<bglmm::CumulativeLogit>();
  check_weighted_cutpoint_lik<bglmm::CumulativeProbit>();
}

BGLMM_TEST_MAIN()
