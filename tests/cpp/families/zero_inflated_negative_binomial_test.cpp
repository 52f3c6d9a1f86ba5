// Zero-inflated negative binomial family, log link, with FamilyParams{phi, zi / (1 - zi)}:
// log_lik against the mixture written out (the NB pmf from lgamma), the pmf summing to 1, score
// vs finite differences, Fisher weight vs E_y[-d score / d eta] = E_y[score^2], the limits
// zi -> 0 (the negative binomial) and phi -> infinity (the zero-inflated Poisson), and
// finiteness at |eta| = 700.
#include <cmath>

#include "bglmm/glm.hpp"
#include "check.hpp"
#include "families/family_check.hpp"

using G = bglmm::ZeroInflatedNegBinomialLog;
using bglmm::FamilyParams;
namespace bt = bglmm::testing;

namespace {
FamilyParams params(double phi, double zi) { return {phi, zi / (1.0 - zi)}; }

// log of zi [y = 0] + (1 - zi) NB2(y | mu, phi), in long double.
double direct_log_pmf(double y, double mu, double phi, double zi) {
  using LD = long double;
  const LD ly = y, lmu = mu, lphi = phi;
  const LD log_nb = std::lgamma(ly + lphi) - std::lgamma(lphi) - std::lgamma(ly + 1.0L) +
                    ly * std::log(lmu / (lmu + lphi)) + lphi * std::log(lphi / (lmu + lphi));
  const LD p = (y == 0.0 ? static_cast<LD>(zi) : 0.0L) + (1.0L - zi) * std::exp(log_nb);
  return static_cast<double>(std::log(p));
}
}  // namespace

TEST_CASE("zero_inflated_negbinomial: log_lik equals the mixture written out") {
  for (double zi : {0.02, 0.3, 0.85})
    for (double phi : {0.4, 2.0, 30.0})
      for (double mu : {0.05, 1.0, 3.7, 25.0})
        for (double y : {0.0, 1.0, 4.0, 30.0}) {
          const double expected = direct_log_pmf(y, mu, phi, zi);
          CHECK_NEAR(G::log_lik(y, 0.0, std::log(mu), params(phi, zi)), expected,
                     1e-11 * (1.0 + std::fabs(expected)));
        }
}

TEST_CASE("zero_inflated_negbinomial: pmf sums to 1, score vs differences, weight vs expectation") {
  for (double zi : {0.05, 0.5, 0.9})
    for (double phi : {0.5, 3.0, 40.0})
      for (double eta = -4.0; eta <= 3.0; eta += 0.5) {
        const FamilyParams fp = params(phi, zi);
        const bt::Support ys = bt::count_support<G>(eta, fp, 3000);
        double total = 0.0;
        for (const auto& [y, p] : ys) total += p;
        CHECK_NEAR(total, 1.0, 1e-12);
        for (double y : {0.0, 1.0, 4.0, 17.0}) bt::check_score_fd<G>(y, 1.0, eta, fp);
        bt::check_weight_expectation<G>(ys, 1.0, eta, fp);
      }
  bt::check_kernel<G>(3.0, 1.0, params(2.0, 0.3));
  bt::check_kernel<G>(0.0, 1.0, params(0.7, 0.6));
}

TEST_CASE("zero_inflated_negbinomial: the negative binomial and zero-inflated Poisson limits") {
  for (double eta : {-2.0, 0.3, 2.5})
    for (double y : {0.0, 2.0, 9.0}) {
      const double nb = bglmm::NegBinomialLog::log_lik(y, 1.0, eta, 1.7);
      CHECK_NEAR(G::log_lik(y, 1.0, eta, FamilyParams{1.7, 1e-16}), nb,
                 1e-10 * (1.0 + std::fabs(nb)));
      const double zip = bglmm::ZeroInflatedPoissonLog::log_lik(y, 1.0, eta, 0.4);
      CHECK_NEAR(G::log_lik(y, 1.0, eta, FamilyParams{1e9, 0.4}), zip,
                 1e-6 * (1.0 + std::fabs(zip)));
      CHECK_NEAR(G::weight(1.0, eta, FamilyParams{1e9, 0.4}),
                 bglmm::ZeroInflatedPoissonLog::weight(1.0, eta, 0.4),
                 1e-6 * bglmm::ZeroInflatedPoissonLog::weight(1.0, eta, 0.4));
    }
}

TEST_CASE("zero_inflated_negbinomial: exact at eta = 700 and finite everywhere") {
  // eta = 700: the negative binomial's zero has probability (phi / mu)^phi ~ 0: log p(0) = log zi
  for (double zi : {0.01, 0.4}) {
    CHECK_NEAR(G::log_lik(0.0, 0.0, 700.0, params(2.0, zi)), std::log(zi),
               1e-14 * std::fabs(std::log(zi)));
    CHECK(G::score(0.0, 0.0, 700.0, params(2.0, zi)) == 0.0);
  }
  for (double phi : {0.05, 1.0, 1e3})
    for (double phi2 : {1e-17, 1.0, 1e17})
      bt::check_finite<G>({{0.0, 1.0}, {3.0, 1.0}, {1e6, 1.0}}, FamilyParams{phi, phi2});
}

TEST_CASE("zero_inflated_negbinomial: a row's shift s multiplies the odds by e^s") {
  for (double s : {-3.0, -0.4, 0.0, 1.3})
    for (double eta : {-2.0, 0.5, 3.0})
      for (double y : {0.0, 2.0}) {
        const FamilyParams fp{1.8, 0.6}, moved{1.8, 0.6 * std::exp(s)};
        CHECK_NEAR(G::log_lik(y, s, eta, fp), G::log_lik(y, 0.0, eta, moved), 1e-13);
        CHECK_NEAR(G::score(y, s, eta, fp), G::score(y, 0.0, eta, moved), 1e-13);
        CHECK_NEAR(G::weight(s, eta, fp), G::weight(0.0, eta, moved), 1e-13);
        bt::check_score_fd<G>(y, s, eta, fp);
      }
}

BGLMM_TEST_MAIN()
