// Zero-inflated Poisson family, log link, with the core's phi = zi / (1 - zi): log_lik against
// the mixture written out directly, the pmf summing to 1, score vs finite differences, Fisher
// weight vs E_y[-d score / d eta] = E_y[score^2] (summing over the pmf), the Poisson limit
// zi -> 0, exact values and finiteness at |eta| = 700; the trials slot's shift s of the log
// odds (a zi formula) is the odds phi e^s.
#include <cmath>

#include "bglmm/glm.hpp"
#include "check.hpp"
#include "families/family_check.hpp"

using G = bglmm::ZeroInflatedPoissonLog;
namespace bt = bglmm::testing;

namespace {
double odds(double zi) { return zi / (1.0 - zi); }

// log of zi [y = 0] + (1 - zi) Poisson(y | mu), in long double.
double direct_log_pmf(double y, double mu, double zi) {
  using LD = long double;
  const LD log_pois = static_cast<LD>(y) * std::log(static_cast<LD>(mu)) - static_cast<LD>(mu) -
                      std::lgamma(static_cast<LD>(y) + 1.0L);
  const LD p = (y == 0.0 ? static_cast<LD>(zi) : 0.0L) + (1.0L - zi) * std::exp(log_pois);
  return static_cast<double>(std::log(p));
}

}  // namespace

TEST_CASE("zero_inflated_poisson: log_lik equals the mixture written out") {
  for (double zi : {0.02, 0.3, 0.85})
    for (double mu : {0.05, 1.0, 3.7, 25.0})
      for (double y : {0.0, 1.0, 4.0, 30.0}) {
        const double expected = direct_log_pmf(y, mu, zi);
        CHECK_NEAR(G::log_lik(y, 0.0, std::log(mu), odds(zi)), expected,
                   1e-12 * (1.0 + std::fabs(expected)));
      }
}

TEST_CASE("zero_inflated_poisson: pmf sums to 1, score vs differences, weight vs expectation") {
  for (double zi : {0.05, 0.5, 0.9})
    for (double eta = -4.0; eta <= 3.5; eta += 0.5) {
      const double phi = odds(zi);
      const bt::Support ys = bt::count_support<G>(eta, phi, 400);
      double total = 0.0;
      for (const auto& [y, p] : ys) total += p;
      CHECK_NEAR(total, 1.0, 1e-12);
      for (double y : {0.0, 1.0, 4.0, 17.0}) bt::check_score_fd<G>(y, 1.0, eta, phi);
      bt::check_weight_expectation<G>(ys, 1.0, eta, phi);
    }
  bt::check_kernel<G>(3.0, 1.0, 0.4);
  bt::check_kernel<G>(0.0, 1.0, 2.5);
}

TEST_CASE("zero_inflated_poisson: the Poisson limit zi -> 0") {
  for (double eta : {-2.0, 0.3, 2.5})
    for (double y : {0.0, 2.0, 9.0}) {
      const double poisson = bglmm::PoissonLog::log_lik(y, 1.0, eta, 1.0);
      CHECK_NEAR(G::log_lik(y, 1.0, eta, 1e-16), poisson, 1e-10 * (1.0 + std::fabs(poisson)));
      CHECK_NEAR(G::weight(1.0, eta, 1e-16), std::exp(eta), 1e-10 * std::exp(eta));
    }
}

TEST_CASE("zero_inflated_poisson: exact at |eta| = 700 and finite everywhere") {
  for (double zi : {0.01, 0.4}) {
    const double phi = odds(zi);
    // eta = 700: mu = e^700, a zero is structural: log p(0) = log zi to the last digit
    CHECK_NEAR(G::log_lik(0.0, 0.0, 700.0, phi), std::log(zi), 1e-14 * std::fabs(std::log(zi)));
    CHECK(G::score(0.0, 0.0, 700.0, phi) == 0.0);
    // eta = -700: mu ~ 0, p(0) = 1 - (1 - zi)(1 - e^-mu) ~ 1, score y - mu
    CHECK(G::log_lik(0.0, 1.0, -700.0, phi) <= 0.0);
    CHECK(G::log_lik(0.0, 1.0, -700.0, phi) > -1e-300);
    CHECK_NEAR(G::score(3.0, 1.0, -700.0, phi), 3.0, 1e-15);
  }
  for (double phi : {1e-17, 0.05, 1.0, 1e17})
    bt::check_finite<G>({{0.0, 1.0}, {3.0, 1.0}, {1e6, 1.0}}, phi);
}

TEST_CASE("zero_inflated_poisson: a row's shift s multiplies the odds by e^s") {
  for (double s : {-3.0, -0.4, 0.0, 1.3})
    for (double eta : {-2.0, 0.5, 3.0})
      for (double y : {0.0, 2.0}) {
        const double phi = 0.6, moved = phi * std::exp(s);
        CHECK_NEAR(G::log_lik(y, s, eta, phi), G::log_lik(y, 0.0, eta, moved), 1e-13);
        CHECK_NEAR(G::score(y, s, eta, phi), G::score(y, 0.0, eta, moved), 1e-13);
        CHECK_NEAR(G::weight(s, eta, phi), G::weight(0.0, eta, moved), 1e-13);
        CHECK_NEAR(G::log_lik(y, s, eta, phi), direct_log_pmf(y, std::exp(eta), moved / (1 + moved)),
                   1e-12);
        bt::check_score_fd<G>(y, s, eta, phi);
      }
}

BGLMM_TEST_MAIN()
