// bglmm/families/binomial.hpp — Binomial(y | n, mu) for any link with stable log forms
// (Link::log_mu, log1m_mu, dlog_mu, dlog1m_mu). Bernoulli is the case n = 1.
// log p = y log mu + (n - y) log(1 - mu) + log C(n, y)
// score = y dlog_mu + (n - y) dlog1m_mu;  Fisher weight = n (dmu/deta)^2 / (mu (1 - mu))
//       = n * dlog_mu * (-dlog1m_mu), and 0 when either factor is 0: for cloglog above
// eta = 709.78, dlog_mu = exp(eta - e^eta) / (1 - exp(-e^eta)) is 0 while -dlog1m_mu = e^eta
// overflows to inf, and 0 * inf would be NaN; the weight there, n e^(2 eta - e^eta) /
// (1 - exp(-e^eta)), is far below the smallest double. (dlog_mu is already exactly 0 from
// eta ~ 6.6 on, where the product is 0 as well, so finite cases are unchanged.)
// log p and the score of y < n at such eta are -(n - y) e^eta (up to a vanishing term): -inf
// once that is below -DBL_MAX, the correctly rounded value (a sampler rejects it); y = n gives
// log p = 0 and score 0.
#pragma once
#include <cmath>

namespace bglmm::families {
template <typename Link>
struct Binomial {
  static constexpr const char* name = "binomial";
  static constexpr bool has_trials = true;
  static double variance(double mu, double /*phi*/) { return mu * (1.0 - mu); }
  static double log_kernel(double y, double trials, double eta, double /*phi*/) {
    double out = 0.0;
    if (y > 0.0) out += y * Link::log_mu(eta);
    if (trials - y > 0.0) out += (trials - y) * Link::log1m_mu(eta);
    return out;
  }
  static double log_constant(double y, double trials, double /*phi*/) {
    return std::lgamma(trials + 1.0) - std::lgamma(y + 1.0) - std::lgamma(trials - y + 1.0);
  }
  static double score(double y, double trials, double eta, double /*phi*/) {
    double out = 0.0;
    if (y > 0.0) out += y * Link::dlog_mu(eta);
    if (trials - y > 0.0) out += (trials - y) * Link::dlog1m_mu(eta);
    return out;
  }
  static double weight(double trials, double eta, double /*phi*/) {
    const double a = Link::dlog_mu(eta), b = -Link::dlog1m_mu(eta);
    if (a == 0.0 || b == 0.0) return 0.0;  // not 0 * inf = NaN (cloglog, eta > 709.78)
    return trials * a * b;
  }
};
}  // namespace bglmm::families
