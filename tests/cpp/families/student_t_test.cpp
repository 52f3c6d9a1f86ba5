// Student-t family, identity link, FamilyParams{sigma, nu}: log_lik against scipy's
// t.logpdf, the density integrating to 1, score vs finite differences, Fisher weight vs
// E_y[-d score / d eta] = E_y[score^2] (the midpoint rule on a wide grid), the gaussian limit
// nu -> infinity, and finiteness for |eta| = 700.
#include <cmath>

#include "bglmm/glm.hpp"
#include "check.hpp"
#include "families/family_check.hpp"

using G = bglmm::StudentIdentity;
using bglmm::FamilyParams;
namespace bt = bglmm::testing;

namespace {
// The density on a grid of `points` midpoints over eta +- 400 sigma, as (y, p(y) dy) pairs.
bt::Support density_grid(double eta, const FamilyParams& fp, int points) {
  bt::Support ys;
  const double lo = eta - 400.0 * fp.phi, width = 800.0 * fp.phi / points;
  for (int k = 0; k < points; ++k) {
    const double y = lo + (k + 0.5) * width;
    ys.push_back({y, std::exp(G::log_lik(y, 1.0, eta, fp)) * width});
  }
  return ys;
}
}  // namespace

TEST_CASE("student: log_lik equals scipy's t.logpdf") {
  // scipy.stats.t.logpdf(y, nu, loc=mu, scale=sigma) for (y, mu, sigma, nu):
  struct Row { double y, mu, sigma, nu, expected; };
  const Row rows[] = {{1.3, 0.2, 0.7, 3.0, -1.8453226931490185},
                      {-8.0, 1.0, 2.0, 1.5, -5.112483277174997},
                      {0.0, 0.0, 1.0, 30.0, -0.9272703253788479},
                      {250.0, -3.0, 10.0, 4.0, -15.987274612938073}};
  for (const Row& r : rows)
    CHECK_NEAR(G::log_lik(r.y, 1.0, r.mu, FamilyParams{r.sigma, r.nu}), r.expected,
               1e-12 * std::fabs(r.expected));
}

TEST_CASE("student: density integrates to 1, score vs differences, weight vs expectation") {
  for (double nu : {2.5, 5.0, 40.0})
    for (double sigma : {0.3, 2.0})
      for (double eta : {-3.0, 0.0, 1.7}) {
        const FamilyParams fp{sigma, nu};
        const bt::Support ys = density_grid(eta, fp, 400000);
        double total = 0.0, e_neg_dscore = 0.0, e_score2 = 0.0;
        for (const auto& [y, p] : ys) {
          total += p;
          const double u = G::score(y, 1.0, eta, fp), r = y - eta;
          const double dscore = (nu + 1.0) * (r * r - nu * sigma * sigma) /
                                ((nu * sigma * sigma + r * r) * (nu * sigma * sigma + r * r));
          e_neg_dscore -= p * dscore;
          e_score2 += p * u * u;
        }
        // the tails beyond +-400 sigma hold about 400^-nu of the mass
        CHECK_NEAR(total, 1.0, 2e-6);
        const double w = G::weight(1.0, eta, fp);
        CHECK_NEAR(e_neg_dscore, w, 1e-4 * w);
        CHECK_NEAR(e_score2, w, 1e-4 * w);
        for (double y : {-5.0, 0.3, 4.0, 60.0}) bt::check_score_fd<G>(y, 1.0, eta, fp);
      }
  bt::check_kernel<G>(3.0, 1.0, FamilyParams{1.5, 4.0});
}

TEST_CASE("student: the gaussian limit nu -> infinity") {
  for (double eta : {-2.0, 0.3, 2.5})
    for (double y : {0.0, 2.0, 9.0}) {
      const double gauss = bglmm::GaussianIdentity::log_lik(y, 1.0, eta, 1.7 * 1.7);
      CHECK_NEAR(G::log_lik(y, 1.0, eta, FamilyParams{1.7, 1e9}), gauss,
                 1e-6 * (1.0 + std::fabs(gauss)));
    }
}

TEST_CASE("student: finite everywhere") {
  for (double nu : {0.5, 3.0, 1e6})
    bt::check_finite<G>({{0.0, 1.0}, {-3.0, 1.0}, {1e6, 1.0}}, FamilyParams{2.0, nu});
}

BGLMM_TEST_MAIN()
