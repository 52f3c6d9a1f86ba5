// Beta-binomial family (logit, probit, cloglog): log_lik against scipy's betabinom.logpmf
// and against a direct lbeta formula, the pmf summing to 1, score vs finite differences and
// vs its definition with finite sums in long double,
// the exact Fisher weight vs E_y[-d score / d eta] and E_y[score^2], the binomial limit,
// the quasi-likelihood weight above kExactWeightTrials, finiteness at |eta| <= 700.
#include <cmath>

#include "bglmm/glm.hpp"
#include "check.hpp"
#include "families/family_check.hpp"

namespace bt = bglmm::testing;
using bglmm::BetaBinomialCloglog;
using bglmm::BetaBinomialLogit;
using bglmm::BetaBinomialProbit;

namespace {
template <typename G>
bt::Support pmf_support(double n, double eta, double phi) {
  bt::Support ys;
  for (double y = 0; y <= n; ++y) ys.push_back({y, std::exp(G::log_lik(y, n, eta, phi))});
  return ys;
}

long double lbeta(long double a, long double b) {
  return std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b);
}

// The score from its definition in long double, with psi(m + a) - psi(a) as the finite sum
// sum_{j < m} 1 / (a + j) (independent of the header's digamma): phi mu' (S(y, a) - S(n - y, b)),
// where phi mu' / a = dlog_mu and phi mu' / b = -dlog1m_mu are taken from the link.
template <typename G>
long double score_direct(double y, double n, double eta, double phi) {
  using Link = typename G::Link;
  const long double mu = std::exp(static_cast<long double>(Link::log_mu(eta)));
  const long double mu1m = std::exp(static_cast<long double>(Link::log1m_mu(eta)));
  const long double a = phi * mu, b = phi * mu1m, phi_dmu = phi * static_cast<long double>(Link::dmu_deta(eta));
  long double out = 0.0L;
  if (y > 0) out += Link::dlog_mu(eta);
  for (double j = 1; j < y; ++j) out += phi_dmu / (a + j);
  if (n - y > 0) out += Link::dlog1m_mu(eta);
  for (double j = 1; j < n - y; ++j) out -= phi_dmu / (b + j);
  return out;
}

// score vs finite differences of log_lik. The log-likelihood is a difference of lgammas of
// size up to L = lgamma(n + phi + 1), so the difference quotient has a rounding error of about
// eps L / h: the tolerance counts L, not |log_lik|.
template <typename G>
void check_score_fd(double y, double n, double eta, double phi) {
  const auto f = [&](double e) { return G::log_lik(y, n, e, phi); };
  const double fd = bt::central_difference(f, eta), s = G::score(y, n, eta, phi);
  const double big = std::fabs(std::lgamma(n + phi + 1.0)) + std::fabs(f(eta));
  CHECK_NEAR(fd, s, 1e-6 * std::fabs(s) + 1e-10 * big + 1e-9);
}

template <typename G>
void check_family() {
  for (double n : {1.0, 6.0, 30.0})
    for (double phi : {0.3, 4.0, 60.0})
      for (double eta = -6.0; eta <= 6.0; eta += 0.75) {
        const long double mu = G::linkinv(eta);
        double total = 0.0;
        for (double y = 0; y <= n; ++y) {
          if (mu > 1e-6L && mu < 1.0L - 1e-6L) {  // the direct form loses digits near 0, 1
            const long double direct = std::lgamma(n + 1.0L) - std::lgamma(y + 1.0L) -
                                       std::lgamma(n - y + 1.0L) +
                                       lbeta(y + phi * mu, n - y + phi * (1 - mu)) -
                                       lbeta(phi * mu, phi * (1 - mu));
            CHECK_NEAR(G::log_lik(y, n, eta, phi), static_cast<double>(direct),
                       1e-10 * (1.0 + std::fabs(static_cast<double>(direct))));
          }
          total += std::exp(G::log_lik(y, n, eta, phi));
          check_score_fd<G>(y, n, eta, phi);
          const double s = G::score(y, n, eta, phi);
          const double scale = std::fabs(G::Link::dlog_mu(eta)) + std::fabs(G::Link::dlog1m_mu(eta));
          CHECK_NEAR(s, static_cast<double>(score_direct<G>(y, n, eta, phi)), 1e-12 * scale * n);
        }
        CHECK_NEAR(total, 1.0, 1e-12);
        if (std::fabs(eta) <= 4.0) bt::check_weight_expectation<G>(pmf_support<G>(n, eta, phi), n, eta, phi);
      }
  bt::check_kernel<G>(2.0, 5.0, 1.3);
  for (double phi : {0.05, 3.0, 1e4})
    bt::check_finite<G>({{0.0, 1.0}, {1.0, 1.0}, {0.0, 10.0}, {3.0, 10.0}, {10.0, 10.0},
                         {0.0, 300.0}, {150.0, 300.0}, {300.0, 300.0}, {7.0, 5000.0}},
                        phi);
}
}  // namespace

TEST_CASE("beta-binomial: scipy's betabinom.logpmf") {
  // scipy.stats.betabinom.logpmf(y, n, phi mu, phi (1 - mu)) for (y, n, mu, phi):
  struct Row { double y, n, mu, phi, expected; };
  const Row rows[] = {{0, 10, 0.3, 2.0, -1.330062753933909},
                      {4, 10, 0.3, 2.0, -2.4995591287298726},
                      {10, 10, 0.9, 0.5, -0.2197471097372654},
                      {17, 40, 0.5, 30.0, -2.6842250170780773}};
  for (const Row& r : rows) {
    const double eta = bglmm::links::Logit::link(r.mu);
    CHECK_NEAR(BetaBinomialLogit::log_lik(r.y, r.n, eta, r.phi), r.expected,
               1e-12 * std::fabs(r.expected));
  }
}

TEST_CASE("beta-binomial-logit: formulas, derivatives, weight, finiteness") {
  check_family<BetaBinomialLogit>();
}
TEST_CASE("beta-binomial-probit: formulas, derivatives, weight, finiteness") {
  check_family<BetaBinomialProbit>();
}
TEST_CASE("beta-binomial-cloglog: formulas, derivatives, weight, finiteness") {
  check_family<BetaBinomialCloglog>();
}

TEST_CASE("beta-binomial: binomial limit and the quasi-likelihood weight") {
  // phi = 1e9: the beta-binomial differs from the binomial by O(n^2 / phi) = 1e-7
  for (double eta : {-2.0, 0.4, 1.5})
    for (double y : {0.0, 3.0, 8.0}) {
      const double b = bglmm::BinomialLogit::log_lik(y, 8.0, eta, 1.0);
      CHECK_NEAR(BetaBinomialLogit::log_lik(y, 8.0, eta, 1e9), b, 1e-6 * (1.0 + std::fabs(b)));
      const double s = bglmm::BinomialLogit::score(y, 8.0, eta, 1.0);
      CHECK_NEAR(BetaBinomialLogit::score(y, 8.0, eta, 1e9), s, 1e-6 * (1.0 + std::fabs(s)));
    }
  // above kExactWeightTrials = 50: n mu (1 - mu) (1 + phi) / (n + phi) for the logit link, a
  // lower bound of the exact weight (checked at n = 50, where the exact sum is used)
  const double n = 80.0, eta = 0.3, phi = 5.0, mu = bglmm::links::inv_logit(eta);
  CHECK_NEAR(BetaBinomialLogit::weight(n, eta, phi), n * mu * (1 - mu) * (1 + phi) / (n + phi),
             1e-12 * n);
  const double exact = BetaBinomialLogit::weight(50.0, eta, phi);
  CHECK(50.0 * mu * (1 - mu) * (1 + phi) / (50.0 + phi) <= exact);
}

BGLMM_TEST_MAIN()
