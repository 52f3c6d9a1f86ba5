// Gamma family, log link: log_lik against scipy's gamma.logpdf, score vs finite differences,
// -d score / d eta = phi y / mu (finite differences) whose expectation, phi, is the weight;
// E[score] = 0 and E[score^2] = phi by quadrature over the density; finiteness at |eta| = 700.
#include <cmath>

#include "bglmm/glm.hpp"
#include "check.hpp"
#include "families/family_check.hpp"

using G = bglmm::GammaLog;
namespace bt = bglmm::testing;

TEST_CASE("gamma: log_lik equals scipy's gamma.logpdf") {
  // scipy.stats.gamma.logpdf(y, shape, scale=mu / shape) for (y, mu, shape):
  struct Row { double y, mu, phi, expected; };
  const Row rows[] = {{0.3, 2.5, 1.3, -1.2591214394185837},
                      {7.0, 2.5, 0.4, -3.817256492634296},
                      {1e-3, 1e-2, 20.0, -20.56918529701845}};
  for (const Row& r : rows)
    CHECK_NEAR(G::log_lik(r.y, 1.0, std::log(r.mu), r.phi), r.expected, 1e-12 * std::fabs(r.expected));
}

TEST_CASE("gamma: score vs finite differences; weight is the expected curvature") {
  for (double phi : {0.4, 1.0, 7.5})
    for (double eta = -5.0; eta <= 5.0; eta += 0.5) {
      for (double y : {0.01, 0.7, 3.0, 40.0}) {
        bt::check_score_fd<G>(y, 1.0, eta, phi);
        const auto s = [&](double e) { return G::score(y, 1.0, e, phi); };
        const double curvature = phi * y * std::exp(-eta);
        CHECK_NEAR(-bt::central_difference(s, eta), curvature, 1e-6 * curvature + 1e-9);
      }
      // E[score] = 0, E[score^2] = weight = phi, by the midpoint rule on a fine grid in
      // v = log y (integrand p(y) y dv), wide enough for the tails
      double e_score = 0.0, e_score2 = 0.0;
      const double dv = 1e-3;
      for (double v = eta - 40.0; v <= eta + 8.0; v += dv) {
        const double y = std::exp(v + 0.5 * dv);
        const double p = std::exp(G::log_lik(y, 1.0, eta, phi)) * y * dv;
        const double sc = G::score(y, 1.0, eta, phi);
        e_score += p * sc;
        e_score2 += p * sc * sc;
      }
      CHECK_NEAR(e_score, 0.0, 1e-6 * (1.0 + phi));
      CHECK_NEAR(e_score2, G::weight(1.0, eta, phi), 1e-6 * phi);
      CHECK(G::weight(1.0, eta, phi) == phi);
    }
  bt::check_kernel<G>(2.0, 1.0, 1.5);
}

TEST_CASE("gamma: finite for |eta| <= 700") {
  for (double phi : {0.5, 2.0}) bt::check_finite<G>({{0.5, 1.0}, {1.0, 1.0}, {3.0, 1.0}}, phi);
  // eta = 700: log p = C - phi (700 + y e^-700)
  const double c = 2.0 * std::log(2.0) - std::lgamma(2.0) + std::log(3.0);
  CHECK_NEAR(G::log_lik(3.0, 1.0, 700.0, 2.0), c - 1400.0, 1e-13 * 1400.0);
  CHECK_NEAR(G::score(3.0, 1.0, 700.0, 2.0), -2.0, 1e-15);
}

BGLMM_TEST_MAIN()
