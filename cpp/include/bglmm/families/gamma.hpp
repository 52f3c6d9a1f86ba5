// bglmm/families/gamma.hpp — Gamma(y | mu, shape) with the log link: y > 0, mean
// mu = exp(eta), variance mu^2 / shape (shape = phi, brms's shape; 1 / phi is glm's dispersion).
// log p = phi log phi - lgamma(phi) + (phi - 1) log y - phi eta - phi y exp(-eta)
//   kernel = -phi (eta + exp(log y - eta));  score = phi (y exp(-eta) - 1);  weight = phi
// (the log link's Fisher weight mu'^2 / var = mu^2 / (mu^2 / phi) is constant).
// y exp(-eta) is formed as exp(log y - eta): finite for |eta| <= 700 unless the true value
// exceeds DBL_MAX, where the kernel is -inf, the correctly rounded value (a sampler rejects it).
#pragma once
#include <cmath>

namespace bglmm::families {
struct Gamma {
  static constexpr const char* name = "gamma";
  static constexpr bool has_trials = false;
  static constexpr bool has_dispersion = true;
  static double variance(double mu, double phi) { return mu * mu / phi; }
  static bool in_support(double y, double /*trials*/) { return y > 0.0; }
  static double log_kernel(double y, double /*trials*/, double eta, double phi) {
    return -phi * (eta + std::exp(std::log(y) - eta));
  }
  static double log_constant(double y, double /*trials*/, double phi) {
    return phi * std::log(phi) - std::lgamma(phi) + (phi - 1.0) * std::log(y);
  }
  static double score(double y, double /*trials*/, double eta, double phi) {
    return phi * std::expm1(std::log(y) - eta);
  }
  static double weight(double /*trials*/, double /*eta*/, double phi) { return phi; }
};
}  // namespace bglmm::families
