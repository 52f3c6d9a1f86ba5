// Negative binomial (NB2) family, log link: log_lik against scipy's nbinom.logpmf, the pmf
// summing to 1, score vs finite differences, Fisher weight vs its closed form
// phi mu / (mu + phi) and vs E_y[-d score / d eta] = E_y[score^2] (summing over the pmf),
// the Poisson limit, exact values and finiteness at |eta| = 700.
#include <cmath>

#include "bglmm/glm.hpp"
#include "check.hpp"
#include "families/family_check.hpp"

using G = bglmm::NegBinomialLog;
namespace bt = bglmm::testing;

TEST_CASE("negbinomial: log_lik equals scipy's nbinom.logpmf") {
  // scipy.stats.nbinom.logpmf(y, phi, phi / (mu + phi)) for (y, mu, phi):
  struct Row { double y, mu, phi, expected; };
  const Row rows[] = {{0, 2.5, 1.3, -1.3944278429443036},
                      {7, 2.5, 1.3, -3.6066198673325562},
                      {40, 12.0, 0.4, -5.698195709629035},
                      {3, 0.01, 50.0, -15.55884562688447}};
  for (const Row& r : rows) {
    CHECK_NEAR(G::log_lik(r.y, 1.0, std::log(r.mu), r.phi), r.expected, 1e-12 * std::fabs(r.expected));
    CHECK_NEAR(G::linkinv(std::log(r.mu)), r.mu, 1e-15 * r.mu);
  }
}

TEST_CASE("negbinomial: pmf sums to 1, score vs finite differences, weight vs expectation") {
  for (double phi : {0.5, 2.0, 30.0})
    for (double eta = -4.0; eta <= 3.0; eta += 0.5) {
      const bt::Support ys = bt::count_support<G>(eta, phi, 3000);
      double total = 0.0;
      for (const auto& [y, p] : ys) total += p;
      CHECK_NEAR(total, 1.0, 1e-12);
      for (double y : {0.0, 1.0, 4.0, 17.0, 250.0}) bt::check_score_fd<G>(y, 1.0, eta, phi);
      bt::check_weight_expectation<G>(ys, 1.0, eta, phi);
      const double mu = std::exp(eta);
      CHECK_NEAR(G::weight(1.0, eta, phi), phi * mu / (mu + phi), 1e-14 * phi);
      CHECK_NEAR(G::score(3.0, 1.0, eta, phi), phi * (3.0 - mu) / (mu + phi), 1e-13 * (1.0 + mu));
    }
  bt::check_kernel<G>(3.0, 1.0, 1.7);
  bt::check_kernel<G>(0.0, 1.0, 0.2);
}

TEST_CASE("negbinomial: the Poisson limit phi -> infinity") {
  for (double eta : {-2.0, 0.3, 2.5})
    for (double y : {0.0, 2.0, 9.0}) {
      const double poisson = bglmm::PoissonLog::log_lik(y, 1.0, eta, 1.0);
      CHECK_NEAR(G::log_lik(y, 1.0, eta, 1e9), poisson, 1e-6 * (1.0 + std::fabs(poisson)));
    }
}

TEST_CASE("negbinomial: exact at |eta| = 700 and finite everywhere") {
  // eta = 700, mu >> phi: log p = C(y, phi) - phi (700 - log phi) + O(e^-690)
  for (double phi : {0.3, 2.0}) {
    const double c = std::lgamma(5.0 + phi) - std::lgamma(phi) - std::lgamma(6.0);
    const double expected = c - phi * (700.0 - std::log(phi));
    CHECK_NEAR(G::log_lik(5.0, 1.0, 700.0, phi), expected, 1e-13 * std::fabs(expected));
    CHECK_NEAR(G::score(5.0, 1.0, 700.0, phi), -phi, 1e-15 * phi);
    CHECK_NEAR(G::weight(1.0, 700.0, phi), phi, 1e-15 * phi);
    // eta = -700: y = 0 has log p = -phi log1p(mu / phi) ~ -mu, and y = 3 about 3 * eta
    CHECK(G::log_lik(0.0, 1.0, -700.0, phi) <= 0.0);
    CHECK(G::log_lik(0.0, 1.0, -700.0, phi) > -1e-300);
    CHECK_NEAR(G::score(3.0, 1.0, -700.0, phi), 3.0, 1e-15);
  }
  for (double phi : {0.05, 1.0, 1e3}) bt::check_finite<G>({{0.0, 1.0}, {3.0, 1.0}, {1e6, 1.0}}, phi);
}

BGLMM_TEST_MAIN()
