// bglmm/families/poisson.hpp — Poisson(y | mu) with the log link (canonical):
// log p = y eta - exp(eta) - lgamma(y + 1); score y - exp(eta); Fisher weight exp(eta).
#pragma once
#include <cmath>

namespace bglmm::families {
struct Poisson {
  static constexpr const char* name = "poisson";
  static constexpr bool has_trials = false;
  static double variance(double mu, double /*phi*/) { return mu; }
  static double log_kernel(double y, double /*trials*/, double eta, double /*phi*/) {
    return y * eta - std::exp(eta);
  }
  static double log_constant(double y, double /*trials*/, double /*phi*/) {
    return -std::lgamma(y + 1.0);
  }
  static double score(double y, double /*trials*/, double eta, double /*phi*/) {
    return y - std::exp(eta);
  }
  static double weight(double /*trials*/, double eta, double /*phi*/) { return std::exp(eta); }
};
}  // namespace bglmm::families
