// bglmm/families/beta_binomial.hpp — beta-binomial(y | n, mu, phi): y ~ Binomial(n, p),
// p ~ Beta(phi mu, phi (1 - mu)); mean n mu, variance n mu (1 - mu) (n + phi) / (1 + phi).
// Any link with the stable log forms of binomial.hpp. With a = phi mu, b = phi (1 - mu),
// log p = log C(n, y) - log_rising(phi, n) + T(y, a) + T(n - y, b), where
// T(m, a) = lgamma(m + a) - lgamma(a) = log a + lgamma(m + a) - lgamma(1 + a) (0 for m = 0),
// with log a = log phi + log mu(eta) from the link, so mu = 0 or 1 in double precision
// (|eta| = 700) leaves every term finite.
// score: dT(y, a)/deta = dlog_mu + phi mu' (psi(y + a) - psi(1 + a)), and
// dT(n - y, b)/deta = dlog1m_mu - phi mu' (psi(n - y + b) - psi(1 + b)).
// Fisher weight E[score^2]: a sum over y = 0..n (exact) up to kExactWeightTrials = 50 trials
// (its cost grows with n, and the mode search evaluates it for every row); above, the
// quasi-likelihood weight (n mu')^2 / var(y), a lower bound of it (Cauchy-Schwarz on
// cov(score, y) = n mu'), which is all the mode search and a proposal covariance need. The
// GLMM's per-group proposals, evaluated at every step, use the quasi weight for every n
// (likelihood_block.hpp).
#pragma once
#include <cmath>

#include "bglmm/families/special.hpp"

namespace bglmm::families {

template <typename Link>
struct BetaBinomial {
  static constexpr const char* name = "beta_binomial";
  static constexpr bool has_trials = true;
  static constexpr bool has_dispersion = true;
  static constexpr double kExactWeightTrials = 50.0;

  static double variance(double mu, double phi) { return mu * (1.0 - mu) / (1.0 + phi); }
  static bool in_support(double y, double trials) {
    return y >= 0.0 && y <= trials && y == std::floor(y) && trials == std::floor(trials);
  }
  static double log_kernel(double y, double trials, double eta, double phi) {
    const double l = std::log(phi);
    return term(y, l + Link::log_mu(eta)) + term(trials - y, l + Link::log1m_mu(eta));
  }
  static double log_constant(double y, double trials, double phi) {
    return std::lgamma(trials + 1.0) - std::lgamma(y + 1.0) - std::lgamma(trials - y + 1.0) -
           log_rising(phi, trials);
  }
  static double score(double y, double trials, double eta, double phi) {
    const double l = std::log(phi), phi_dmu = phi * Link::dmu_deta(eta);
    double out = 0.0;
    if (y > 0.0) out += Link::dlog_mu(eta) + phi_dmu * dpsi(y, std::exp(l + Link::log_mu(eta)));
    if (trials - y > 0.0)
      out += Link::dlog1m_mu(eta) - phi_dmu * dpsi(trials - y, std::exp(l + Link::log1m_mu(eta)));
    return out;
  }
  // The quasi-likelihood weight (n mu')^2 / var(y), a lower bound of the Fisher weight.
  static double quasi_weight(double trials, double eta, double phi) {
    const double a = Link::dlog_mu(eta), b = -Link::dlog1m_mu(eta);
    if (a == 0.0 || b == 0.0) return 0.0;  // not 0 * inf (see binomial.hpp)
    return trials * a * b * (1.0 + phi) / (trials + phi);
  }
  static double weight(double trials, double eta, double phi) {
    if (trials > kExactWeightTrials) return quasi_weight(trials, eta, phi);
    double out = 0.0;
    for (double y = 0.0; y <= trials; y += 1.0) {
      const double p = std::exp(log_kernel(y, trials, eta, phi) + log_constant(y, trials, phi));
      if (p > 0.0) {  // skip p = 0: its score may be huge (cloglog, eta = 700)
        const double s = score(y, trials, eta, phi);
        out += p * s * s;
      }
    }
    return out;
  }

 private:
  // T(m, a) = lgamma(m + a) - lgamma(a) from log a (log a + lgamma(m + a) - lgamma(1 + a)
  // stays finite as a -> 0)
  static double term(double m, double log_a) {
    if (!(m > 0.0)) return 0.0;
    const double a = std::exp(log_a);
    if (a >= 50.0) return log_rising(a, m);
    return log_a + std::lgamma(m + a) - std::lgamma(1.0 + a);
  }
  // psi(m + a) - psi(1 + a), m >= 1
  static double dpsi(double m, double a) {
    return digamma_difference(1.0 + a, m - 1.0);
  }
};
}  // namespace bglmm::families
