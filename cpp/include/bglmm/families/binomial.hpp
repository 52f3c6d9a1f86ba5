// bglmm/families/binomial.hpp — Binomial(y | n, mu) for any link with stable log forms
// (Link::log_mu, log1m_mu, dlog_mu, dlog1m_mu). Bernoulli is the case n = 1.
// log p = y log mu + (n - y) log(1 - mu) + log C(n, y)
// score = y dlog_mu + (n - y) dlog1m_mu;  Fisher weight = n (dmu/deta)^2 / (mu (1 - mu))
//       = n * dlog_mu * (-dlog1m_mu).
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
    return trials * Link::dlog_mu(eta) * (-Link::dlog1m_mu(eta));
  }
};
}  // namespace bglmm::families
