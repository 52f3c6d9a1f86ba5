// Binomial family (trials n; Bernoulli is n = 1) with the logit, probit and cloglog links:
// log_lik against the binomial log pmf with mu from direct long-double formulas, score vs
// finite differences, Fisher weight vs n (dmu/deta)^2 / (mu (1 - mu)) and vs
// E_y[-d score / d eta] = E_y[score^2], fused binomial-logit vs the generic form, exact
// extreme values, and finiteness for |eta| <= 700 with y at 0, n and in between.
#include <cmath>
#include <limits>
#include <vector>

#include "bglmm/glm.hpp"
#include "check.hpp"
#include "families/family_check.hpp"

namespace bt = bglmm::testing;
using bglmm::BinomialCloglog;
using bglmm::BinomialLogit;
using bglmm::BinomialProbit;

namespace {
// mu, 1 - mu and dmu/deta by direct textbook formulas in long double (1 - mu by its own
// formula, so nothing cancels for |eta| <= 8).
long double mu_direct(int link, long double eta) {
  switch (link) {
    case 0: return 1.0L / (1.0L + std::exp(-eta));
    case 1: return 0.5L * std::erfc(-eta / std::sqrt(2.0L));
    default: return -std::expm1(-std::exp(eta));
  }
}
long double one_minus_mu_direct(int link, long double eta) {
  switch (link) {
    case 0: return 1.0L / (1.0L + std::exp(eta));
    case 1: return 0.5L * std::erfc(eta / std::sqrt(2.0L));
    default: return std::exp(-std::exp(eta));
  }
}
long double dmu_direct(int link, long double eta) {
  switch (link) {
    case 0: return std::exp(-eta) / ((1.0L + std::exp(-eta)) * (1.0L + std::exp(-eta)));
    case 1: return std::exp(-0.5L * eta * eta) / std::sqrt(2.0L * std::acos(-1.0L));
    default: return std::exp(eta - std::exp(eta));
  }
}
long double log_pmf_direct(int link, double y, double n, double eta) {
  const long double mu = mu_direct(link, eta);
  return std::lgamma(static_cast<long double>(n) + 1) - std::lgamma(static_cast<long double>(y) + 1) -
         std::lgamma(static_cast<long double>(n - y) + 1) + y * std::log(mu) +
         (n - y) * std::log(one_minus_mu_direct(link, eta));
}

template <typename G>
void check_against_direct(int link) {
  for (double n : {1.0, 7.0, 40.0})
    for (double eta = -8.0; eta <= 8.0; eta += 0.8)
      for (double y : {0.0, std::floor(n / 3.0), n}) {
        const double direct = static_cast<double>(log_pmf_direct(link, y, n, eta));
        CHECK_NEAR(G::log_lik(y, n, eta, 1.0), direct, 1e-12 * (1.0 + std::fabs(direct)));
        const long double mu = mu_direct(link, eta), dmu = dmu_direct(link, eta);
        const long double mu1m = one_minus_mu_direct(link, eta);
        const double w = static_cast<double>(n * dmu * dmu / (mu * mu1m));
        CHECK_NEAR(G::weight(n, eta, 1.0), w, 1e-12 * w);
        // (y - n mu) dmu / (mu (1 - mu)) = y dmu / mu - (n - y) dmu / (1 - mu)
        const double score = static_cast<double>(y * dmu / mu - (n - y) * dmu / mu1m);
        CHECK_NEAR(G::score(y, n, eta, 1.0), score, 1e-11 * (1.0 + std::fabs(score)));
        CHECK_NEAR(G::linkinv(eta), static_cast<double>(mu), 1e-15);
      }
}

template <typename G>
void check_derivatives() {
  for (double n : {1.0, 6.0, 25.0})
    for (double eta = -12.0; eta <= 12.0; eta += 0.55) {
      for (double y : {0.0, 1.0, std::floor(n / 2.0), n}) bt::check_score_fd<G>(y, n, eta, 1.0);
      if (std::fabs(eta) <= 8.0) {
        bt::Support ys;
        for (double y = 0; y <= n; ++y) ys.push_back({y, std::exp(G::log_lik(y, n, eta, 1.0))});
        bt::check_weight_expectation<G>(ys, n, eta, 1.0);
      }
    }
  bt::check_kernel<G>(2.0, 5.0, 1.0);
  bt::check_kernel<G>(0.0, 1.0, 1.0);
}

template <typename G>
void check_all_finite() {
  bt::check_finite<G>({{0.0, 1.0}, {1.0, 1.0}, {0.0, 10.0}, {3.0, 10.0}, {10.0, 10.0},
                       {0.0, 1000.0}, {500.0, 1000.0}, {1000.0, 1000.0}},
                      1.0);
  // no trials: nothing observed, nothing contributed
  for (double eta : bt::extreme_etas()) {
    CHECK(G::log_lik(0.0, 0.0, eta, 1.0) == 0.0);
    CHECK(G::score(0.0, 0.0, eta, 1.0) == 0.0);
    CHECK(G::weight(0.0, eta, 1.0) == 0.0);
  }
}
}  // namespace

TEST_CASE("binomial-logit: direct formulas, derivatives, finiteness") {
  check_against_direct<BinomialLogit>(0);
  check_derivatives<BinomialLogit>();
  check_all_finite<BinomialLogit>();
}

TEST_CASE("binomial-probit: direct formulas, derivatives, finiteness") {
  check_against_direct<BinomialProbit>(1);
  check_derivatives<BinomialProbit>();
  check_all_finite<BinomialProbit>();
}

TEST_CASE("binomial-cloglog: direct formulas, derivatives, finiteness") {
  check_against_direct<BinomialCloglog>(2);
  check_derivatives<BinomialCloglog>();
  check_all_finite<BinomialCloglog>();
}

TEST_CASE("fused binomial-logit equals the generic Binomial<Logit> form") {
  using Generic = bglmm::families::Binomial<bglmm::links::Logit>;
  for (double n : {1.0, 9.0, 300.0})
    for (double eta : {-700.0, -100.0, -30.0, -5.0, -0.2, 0.0, 0.2, 5.0, 30.0, 100.0, 700.0})
      for (double y : {0.0, 1.0, std::floor(n / 2.0), n}) {
        if (y > n) continue;
        const double generic = Generic::log_kernel(y, n, eta, 1.0) + Generic::log_constant(y, n, 1.0);
        const double fused = BinomialLogit::log_lik(y, n, eta, 1.0);
        // both are sums of terms computed to ~1 ulp; no cancellation in either form
        CHECK_NEAR(fused, generic, 1e-14 * (1.0 + std::fabs(generic)) + 1e-300);
        CHECK_NEAR(BinomialLogit::score(y, n, eta, 1.0), Generic::score(y, n, eta, 1.0),
                   1e-13 * (1.0 + n));
        const double w = Generic::weight(n, eta, 1.0);
        CHECK_NEAR(BinomialLogit::weight(n, eta, 1.0), w, 1e-14 * w + 1e-300);
      }
  // the fused kernel keeps the tiny log-likelihood of a near-certain outcome:
  // y = n = 1 at eta = 30: log mu = -log1p(e^-30) = -9.3576229688397368e-14 (mpmath)
  CHECK_NEAR(BinomialLogit::log_lik(1.0, 1.0, 30.0, 1.0), -9.3576229688397368e-14, 1e-27);
}

TEST_CASE("binomial: exact values at the extremes") {
  // y = 0 or n far on the unlikely side: log_lik = n log(mu) or n log(1 - mu), reference
  // values of log_mu / log1m_mu from tests/cpp/links/make_link_tables.py
  const double n = 10.0;
  CHECK_NEAR(BinomialLogit::log_lik(0.0, n, 700.0, 1.0), -7000.0, 1e-9);
  CHECK_NEAR(BinomialLogit::log_lik(n, n, -700.0, 1.0), -7000.0, 1e-9);
  CHECK_NEAR(BinomialProbit::log_lik(n, n, -700.0, 1.0), 10 * -2.4500747002090905e+5, 1e-6);
  CHECK_NEAR(BinomialProbit::log_lik(0.0, n, 700.0, 1.0), 10 * -2.4500747002090905e+5, 1e-6);
  CHECK_NEAR(BinomialCloglog::log_lik(n, n, -700.0, 1.0), -7000.0, 1e-9);
  CHECK_NEAR(BinomialCloglog::log_lik(0.0, n, 700.0, 1.0), 10 * -1.0142320547350045e+304,
             1e-13 * 1.0142320547350045e+305);
  // and the likely side is ~0
  CHECK_NEAR(BinomialLogit::log_lik(n, n, 700.0, 1.0), 0.0, 1e-300);
  CHECK_NEAR(BinomialProbit::log_lik(0.0, n, -700.0, 1.0), 0.0, 1e-300);
  CHECK_NEAR(BinomialCloglog::log_lik(0.0, n, -700.0, 1.0), 0.0, 1e-300);
  // scores on the unlikely side: y dlog_mu or (n - y) dlog1m_mu
  CHECK_NEAR(BinomialProbit::score(n, n, -700.0, 1.0), 10 * 7.0000142856559773e+2, 1e-10);
  CHECK_NEAR(BinomialLogit::score(0.0, n, 700.0, 1.0), -10.0, 1e-13);
  CHECK_NEAR(BinomialCloglog::score(n, n, -700.0, 1.0), 10.0, 1e-13);
}

TEST_CASE("binomial-cloglog: limits beyond exp overflow and underflow (|eta| > 709)") {
  using G = BinomialCloglog;
  const double inf = std::numeric_limits<double>::infinity();
  for (double n : {1.0, 10.0, 1000.0}) {
    // exp(eta) overflows above 709.7827: the weight n e^(2 eta - e^eta) / (1 - exp(-e^eta))
    // is 0 (was 0 * inf = NaN); y = n: mu = 1 exactly, log_lik and score 0; y < n: log_lik and
    // score are -(n - y) e^eta, below -DBL_MAX: -inf (not NaN)
    for (double eta : {709.79, 710.0, 745.0, 800.0, 1000.0, 1e300}) {
      CHECK(G::weight(n, eta, 1.0) == 0.0);
      CHECK(G::log_lik(n, n, eta, 1.0) == 0.0);
      CHECK(G::score(n, n, eta, 1.0) == 0.0);
      for (double y : {0.0, std::floor(n / 3.0), n - 1.0}) {
        CHECK(G::log_lik(y, n, eta, 1.0) == -inf);
        CHECK(G::score(y, n, eta, 1.0) == -inf);
      }
    }
    // below the overflow: the weight is 0 from eta ~ 6.6 on (the true value underflows), and
    // log_lik(y = 0) = -n e^eta, finite while that is above -DBL_MAX
    for (double eta : {7.0, 30.0, 700.0, 709.0, 709.78}) {
      CHECK(G::weight(n, eta, 1.0) == 0.0);
      CHECK(G::score(n, n, eta, 1.0) == 0.0);
      const double expected = -n * std::exp(eta);
      if (std::isfinite(expected)) {
        CHECK_NEAR(G::log_lik(0.0, n, eta, 1.0), expected, 1e-15 * -expected);
        CHECK_NEAR(G::score(0.0, n, eta, 1.0), expected, 1e-15 * -expected);
      } else {
        CHECK(G::log_lik(0.0, n, eta, 1.0) == -inf);
      }
    }
    // exp(eta) underflows below -745.13: weight n e^eta (1 - e^eta / 2 + ...) -> 0, score of
    // y = n: n (1 - e^eta / 2 + ...) -> n, log_lik of y = n: n (eta - e^eta / 2 + ...) -> n eta
    for (double eta : {-700.0, -745.0, -746.0, -800.0, -1000.0, -1e300}) {
      const double w = G::weight(n, eta, 1.0);
      CHECK(std::isfinite(w) && w >= 0.0);
      CHECK_NEAR(w, n * std::exp(eta), 1e-15 * n * std::exp(eta) + 1e-320);
      CHECK_NEAR(G::score(n, n, eta, 1.0), n, 1e-15 * n);
      CHECK_NEAR(G::score(0.0, n, eta, 1.0), 0.0, 1e-300);
      CHECK_NEAR(G::log_lik(0.0, n, eta, 1.0), 0.0, 1e-300);
      CHECK_NEAR(G::log_lik(n, n, eta, 1.0), n * eta, 1e-15 * n * std::fabs(eta));
    }
  }
  // a weight that does not underflow, against n e^(2 eta - e^eta) / (1 - exp(-e^eta)) with
  // exp(-e^eta) = 0: at eta = 6.5 (e^eta = 665.1), 10 exp(13 - e^6.5) = 3.9e-283
  const double expected = 10.0 * std::exp(13.0 - std::exp(6.5));
  CHECK_NEAR(G::weight(10.0, 6.5, 1.0), expected, 1e-12 * expected);
}

BGLMM_TEST_MAIN()
