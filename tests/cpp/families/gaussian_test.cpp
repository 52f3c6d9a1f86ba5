// Gaussian family, identity link: log_lik against the normal log density, score
// (y - eta) / phi against finite differences, weight 1 / phi = E[-d score / d eta],
// finiteness for |eta| <= 700.
#include <cmath>

#include "bglmm/glm.hpp"
#include "check.hpp"
#include "families/family_check.hpp"

using G = bglmm::GaussianIdentity;
namespace bt = bglmm::testing;

TEST_CASE("gaussian: log_lik equals the normal log density") {
  const double log_2pi = std::log(2.0 * std::acos(-1.0));
  for (double phi : {0.01, 1.0, 7.5})
    for (double y : {-3.0, 0.0, 2.5})
      for (double eta : {-700.0, -1.0, 0.0, 0.3, 700.0}) {
        const double direct = -0.5 * log_2pi - 0.5 * std::log(phi) - 0.5 * (y - eta) * (y - eta) / phi;
        CHECK_NEAR(G::log_lik(y, 1.0, eta, phi), direct, 1e-13 * (1.0 + std::fabs(direct)));
        CHECK_NEAR(G::score(y, 1.0, eta, phi), (y - eta) / phi, 1e-12 * (1.0 + std::fabs(y - eta) / phi));
        CHECK(G::weight(1.0, eta, phi) == 1.0 / phi);
        CHECK(G::linkinv(eta) == eta);
      }
}

TEST_CASE("gaussian: score vs finite differences, weight vs expectation") {
  for (double phi : {0.5, 2.0})
    for (double eta = -5.0; eta <= 5.0; eta += 0.9) {
      for (double y : {-2.0, 0.0, 1.7}) bt::check_score_fd<G>(y, 1.0, eta, phi);
      // score is linear in y, so a two-point distribution with mean eta reproduces E[.]
      const double sd = std::sqrt(phi);
      bt::check_weight_expectation<G>({{eta - sd, 0.5}, {eta + sd, 0.5}}, 1.0, eta, phi);
    }
  bt::check_kernel<G>(1.3, 1.0, 0.7);
}

TEST_CASE("gaussian: finite for |eta| <= 700") {
  bt::check_finite<G>({{0.0, 1.0}, {3.0, 1.0}, {-1e3, 1.0}}, 1.0);
  bt::check_finite<G>({{0.0, 1.0}, {3.0, 1.0}}, 1e-3);
}

BGLMM_TEST_MAIN()
