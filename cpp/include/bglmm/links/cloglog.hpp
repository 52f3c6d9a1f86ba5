// bglmm/links/cloglog.hpp — complementary log-log link: mu = 1 - exp(-exp(eta)).
// log(1 - mu) = -exp(eta); log mu = log(-expm1(-exp(eta))); d log mu / d eta =
// exp(eta) / expm1(exp(eta)) (-> 1 as eta -> -inf, -> 0 as eta -> +inf, never NaN).
// Below eta ~ -37, exp(eta) is below eps: log mu = eta - exp(eta)/2 (+ O(e^2)) stays finite
// even where exp(eta) underflows to 0.
#pragma once
#include <cmath>

#include "bglmm/links/special.hpp"

namespace bglmm::links {
struct Cloglog {
  static constexpr const char* name = "cloglog";
  static double link(double mu) { return std::log(-std::log1p(-mu)); }
  static double linkinv(double eta) { return -std::expm1(-std::exp(eta)); }
  static double dmu_deta(double eta) {
    const double e = std::exp(eta);
    return std::exp(eta - e);
  }
  static double log_mu(double eta) {
    const double e = std::exp(eta);
    // log(1 - exp(-e)) = log(e) + log((1 - exp(-e)) / e) = eta - e/2 + e^2/24 - ...
    if (e < 1e-8) return eta - 0.5 * e;
    return log1m_exp(-e);
  }
  static double log1m_mu(double eta) { return -std::exp(eta); }
  static double dlog_mu(double eta) {
    const double e = std::exp(eta);
    if (e < 1e-8) return 1.0 - 0.5 * e;  // e / expm1(e) = 1 - e/2 + O(e^2)
    // = exp(eta - e) / (1 - exp(-e)): no inf/inf when exp(eta) overflows (eta > 709.78).
    return std::exp(eta - e) / -std::expm1(-e);
  }
  static double dlog1m_mu(double eta) { return -std::exp(eta); }
};
}  // namespace bglmm::links
