// bglmm/families/student_t.hpp — Student-t(y | mu, sigma, nu), identity link: robust regression.
// Two parameters: phi = sigma (the scale) and phi2 = nu (the degrees of freedom). With r = y - mu,
//   log p = lgamma((nu + 1)/2) - lgamma(nu/2) - log(nu pi)/2 - log sigma
//           - (nu + 1)/2 log(1 + r^2 / (nu sigma^2))
//   score = (nu + 1) r / (nu sigma^2 + r^2)
//   Fisher weight = E[-d^2 log p / d mu^2] = (nu + 1) / ((nu + 3) sigma^2).
// The kernel keeps the last term (every term that depends on eta); log_constant the rest.
#pragma once
#include <cmath>

namespace bglmm::families {
struct StudentT {
  static constexpr const char* name = "student";
  static constexpr bool has_trials = false;
  static constexpr bool has_dispersion = true;
  static constexpr bool has_second_dispersion = true;
  static bool in_support(double y, double /*trials*/) { return std::isfinite(y); }
  static double log_kernel(double y, double /*trials*/, double eta, double sigma, double nu) {
    const double z = (y - eta) / sigma;
    return -0.5 * (nu + 1.0) * std::log1p(z * z / nu);
  }
  static double log_constant(double /*y*/, double /*trials*/, double sigma, double nu) {
    constexpr double log_pi = 1.1447298858494002;
    return std::lgamma(0.5 * (nu + 1.0)) - std::lgamma(0.5 * nu) - 0.5 * (std::log(nu) + log_pi) -
           std::log(sigma);
  }
  static double score(double y, double /*trials*/, double eta, double sigma, double nu) {
    const double r = y - eta;
    return (nu + 1.0) * r / (nu * sigma * sigma + r * r);
  }
  static double weight(double /*trials*/, double /*eta*/, double sigma, double nu) {
    return (nu + 1.0) / ((nu + 3.0) * sigma * sigma);
  }
};
}  // namespace bglmm::families
