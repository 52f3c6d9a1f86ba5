// bglmm/links/cloglog.hpp — complementary log-log link: mu = 1 - exp(-exp(eta)).
// log(1 - mu) = -exp(eta); log mu = log(-expm1(-exp(eta))); d log mu / d eta =
// exp(eta) / expm1(exp(eta)) (-> 1 as eta -> -inf, -> 0 as eta -> +inf, never NaN).
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
  static double log_mu(double eta) { return log1m_exp(-std::exp(eta)); }
  static double log1m_mu(double eta) { return -std::exp(eta); }
  static double dlog_mu(double eta) {
    const double e = std::exp(eta);
    if (e < 1e-8) return 1.0 - 0.5 * e;  // e / expm1(e) = 1 - e/2 + O(e^2)
    return e / std::expm1(e);
  }
  static double dlog1m_mu(double eta) { return -std::exp(eta); }
};
}  // namespace bglmm::links
