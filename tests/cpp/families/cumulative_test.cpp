// Cumulative ordinal family (logit and probit), FamilyParams with K - 1 = 3 cutpoints: the
// category probabilities summing to 1, log_lik against scipy, score vs finite differences,
// Fisher weight vs E_y[-d score / d eta] = E_y[score^2] over the exact distribution of y,
// accuracy far in the tails, and finiteness for |eta| = 700.
#include <cmath>

#include "bglmm/glm.hpp"
#include "check.hpp"
#include "families/family_check.hpp"

using bglmm::FamilyParams;
namespace bt = bglmm::testing;

namespace {
const double kCut[3] = {-1.0, 0.5, 2.0};
FamilyParams params() { return FamilyParams{1.0, 1.0, kCut, 3}; }

template <typename G>
void check_family() {
  const FamilyParams fp = params();
  for (double eta : {-4.0, -1.2, 0.0, 0.6, 3.0}) {
    const bt::Support ys = bt::count_support<G>(eta, fp, 3);
    double total = 0.0;
    for (const auto& [y, p] : ys) total += p;
    CHECK_NEAR(total, 1.0, 1e-14);
    bt::check_weight_expectation<G>(ys, 1.0, eta, fp);
    for (double y : {0.0, 1.0, 2.0, 3.0}) bt::check_score_fd<G>(y, 1.0, eta, fp);
  }
  bt::check_kernel<G>(2.0, 1.0, fp);
  bt::check_finite<G>({{0.0, 1.0}, {1.0, 1.0}, {2.0, 1.0}, {3.0, 1.0}}, fp);
}
}  // namespace

TEST_CASE("cumulative logit: probabilities, score, weight, finiteness") {
  check_family<bglmm::CumulativeLogit>();
}

TEST_CASE("cumulative probit: probabilities, score, weight, finiteness") {
  check_family<bglmm::CumulativeProbit>();
}

TEST_CASE("cumulative: log_lik equals scipy") {
  // log(expit(c_k - eta) - expit(c_{k-1} - eta)) and the same with ndtr, from scipy:
  struct Row { double y, eta, logit, probit; };
  const Row rows[] = {{0.0, 0.3, -1.5410084538329922, -2.335103278662442},
                      {1.0, 0.3, -1.091629782140038, -0.728858869849768},
                      {2.0, -2.0, -2.8495221211358137, -5.086761642086883},
                      {3.0, 5.0, -0.04858735157374202, -0.0013508099647482027}};
  const FamilyParams fp = params();
  for (const Row& r : rows) {
    CHECK_NEAR(bglmm::CumulativeLogit::log_lik(r.y, 1.0, r.eta, fp), r.logit,
               1e-13 * std::fabs(r.logit));
    CHECK_NEAR(bglmm::CumulativeProbit::log_lik(r.y, 1.0, r.eta, fp), r.probit,
               1e-12 * std::fabs(r.probit));
  }
}

TEST_CASE("cumulative: tails keep their digits") {
  const FamilyParams fp = params();
  using L = bglmm::CumulativeLogit;
  // category 0 at eta = 700: log expit(-701) = -701 - log1p(e^-701)
  CHECK_NEAR(L::log_lik(0.0, 1.0, 700.0, fp), -701.0, 1e-12 * 701.0);
  // the top category at eta = -700: log(1 - expit(702)) = -702
  CHECK_NEAR(L::log_lik(3.0, 1.0, -700.0, fp), -702.0, 1e-12 * 702.0);
  // a middle category with both thresholds deep in the upper tail (eta = -40):
  // expit(-40.5) - expit(-42) = e^-40.5 (1 - e^-1.5) to relative 1e-17
  const double expected = -40.5 + std::log1p(-std::exp(-1.5));
  CHECK_NEAR(L::log_lik(2.0, 1.0, -40.0, fp), expected, 1e-12 * 40.5);
}

BGLMM_TEST_MAIN()
