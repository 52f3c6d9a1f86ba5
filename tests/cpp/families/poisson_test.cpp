// Poisson family, log link: log_lik against the Poisson log pmf, score y - exp(eta) against
// finite differences, weight exp(eta) = E[-d score / d eta] = E[score^2] (summing over the
// pmf), finiteness for |eta| <= 700.
#include <cmath>

#include "bglmm/glm.hpp"
#include "check.hpp"
#include "families/family_check.hpp"

using G = bglmm::PoissonLog;
namespace bt = bglmm::testing;

TEST_CASE("poisson: log_lik equals the Poisson log pmf") {
  // direct: log(mu^y e^-mu / y!) with mu = exp(eta) (eta moderate so mu^y is finite);
  // (y! from a table)
  const double factorial[] = {1.0, 1.0, 2.0, 6.0};
  for (double eta : {-5.0, -0.4, 0.0, 1.2, 3.0})
    for (int y = 0; y <= 3; ++y) {
      const double mu = std::exp(eta);
      const double direct = std::log(std::pow(mu, y) * std::exp(-mu) / factorial[y]);
      CHECK_NEAR(G::log_lik(y, 1.0, eta, 1.0), direct, 1e-13 * (1.0 + std::fabs(direct)));
      CHECK_NEAR(G::score(y, 1.0, eta, 1.0), y - mu, 1e-14 * (1.0 + mu));
      CHECK_NEAR(G::weight(1.0, eta, 1.0), mu, 1e-15 * mu);
      CHECK_NEAR(G::linkinv(eta), mu, 1e-15 * mu);
    }
  // large count: log pmf(1000 | mu = 1000) = 1000 log 1000 - 1000 - lgamma(1001)
  //   = -4.3728995060262968 (mpmath, 40 digits: 1000*log(1000) - 1000 - loggamma(1001))
  CHECK_NEAR(G::log_lik(1000.0, 1.0, std::log(1000.0), 1.0), -4.3728995060262968, 1e-10);
}

TEST_CASE("poisson: score vs finite differences, weight vs expectation over y") {
  for (double eta = -4.0; eta <= 3.0; eta += 0.35) {
    for (double y : {0.0, 1.0, 4.0, 17.0}) bt::check_score_fd<G>(y, 1.0, eta, 1.0);
    const double mu = std::exp(eta);
    bt::Support ys;
    double log_p = -mu;  // log pmf(0)
    for (int y = 0; y < 200; ++y) {
      ys.push_back({static_cast<double>(y), std::exp(log_p)});
      log_p += std::log(mu) - std::log(y + 1.0);
    }
    bt::check_weight_expectation<G>(ys, 1.0, eta, 1.0);
  }
  bt::check_kernel<G>(3.0, 1.0, 1.0);
}

TEST_CASE("poisson: finite for |eta| <= 700") {
  bt::check_finite<G>({{0.0, 1.0}, {3.0, 1.0}, {1e6, 1.0}}, 1.0);
}

BGLMM_TEST_MAIN()
