// bglmm/links/probit.hpp — probit link: mu = Phi(eta).
// log mu = log Phi(eta), log(1 - mu) = log Phi(-eta), both through erfc and, deep in the
// tail, an asymptotic series; d log mu / d eta = phi/Phi (inverse Mills ratio).
#pragma once
#include <cmath>
#include <limits>

#include "bglmm/links/special.hpp"

namespace bglmm::links {
struct Probit {
  static constexpr const char* name = "probit";
  // Inverse of Phi (only used outside the sampler hot loops, e.g. for starting values).
  // Newton on g(x) = log Phi(x) - log p for p = min(mu, 1 - mu) <= 1/2: g is concave and
  // increasing, so after the first step the iterates increase monotonically to the root
  // (about 6 steps even for p = 1e-300, where plain Newton on Phi needs hundreds).
  static double link(double mu) {
    if (std::isnan(mu) || mu < 0.0 || mu > 1.0) return std::numeric_limits<double>::quiet_NaN();
    if (mu == 0.0) return -std::numeric_limits<double>::infinity();
    if (mu == 1.0) return std::numeric_limits<double>::infinity();
    if (mu > 0.5) return -lower_quantile(1.0 - mu);
    return lower_quantile(mu);
  }
  static double linkinv(double eta) { return 0.5 * std::erfc(-eta * kInvSqrt2); }
  static double dmu_deta(double eta) { return std::exp(std_normal_log_pdf(eta)); }
  static double log_mu(double eta) { return std_normal_log_cdf(eta); }
  static double log1m_mu(double eta) { return std_normal_log_cdf(-eta); }
  static double dlog_mu(double eta) { return std_normal_mills(eta); }
  static double dlog1m_mu(double eta) { return -std_normal_mills(-eta); }
  static double log_dmu_deta(double eta) { return std_normal_log_pdf(eta); }

 private:
  static double lower_quantile(double p) {  // 0 < p <= 1/2
    const double log_p = std::log(p);
    // start: the tail asymptote -sqrt(-2 log p) for small p, else 0
    double x = p < 0.1 ? -std::sqrt(-2.0 * log_p) : 0.0;
    for (int it = 0; it < 100; ++it) {
      const double step = (std_normal_log_cdf(x) - log_p) / std_normal_mills(x);
      x -= step;
      if (std::fabs(step) <= 1e-15 * (1.0 + std::fabs(x))) break;
    }
    return x;
  }
};
}  // namespace bglmm::links
