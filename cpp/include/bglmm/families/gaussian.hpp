// bglmm/families/gaussian.hpp — Gaussian(y | mu, phi) with phi = sigma^2, identity link.
// log p = -(y - mu)^2 / (2 phi) - log(2 pi phi) / 2; score (y - mu)/phi; Fisher weight 1/phi.
#pragma once
#include <cmath>

namespace bglmm::families {
struct Gaussian {
  static constexpr const char* name = "gaussian";
  static constexpr bool has_trials = false;
  static double variance(double /*mu*/, double phi) { return phi; }
  // Kernel without the normalising constant (for MH ratios with phi fixed).
  static double log_kernel(double y, double /*trials*/, double eta, double phi) {
    const double r = y - eta;
    return -0.5 * r * r / phi;
  }
  static double log_constant(double /*y*/, double /*trials*/, double phi) {
    constexpr double log_2pi = 1.8378770664093453;  // log(2 pi)
    return -0.5 * (log_2pi + std::log(phi));
  }
  static double score(double y, double /*trials*/, double eta, double phi) {
    return (y - eta) / phi;
  }
  static double weight(double /*trials*/, double /*eta*/, double phi) { return 1.0 / phi; }
};
}  // namespace bglmm::families
