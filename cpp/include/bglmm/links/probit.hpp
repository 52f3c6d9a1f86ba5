// bglmm/links/probit.hpp — probit link: mu = Phi(eta).
// log mu = log Phi(eta), log(1 - mu) = log Phi(-eta), both through erfc and, deep in the
// tail, an asymptotic series; d log mu / d eta = phi/Phi (inverse Mills ratio).
#pragma once
#include <cmath>

#include "bglmm/links/special.hpp"

namespace bglmm::links {
struct Probit {
  static constexpr const char* name = "probit";
  // Inverse of Phi by bisection-refined Newton; only used outside the sampler hot loops.
  static double link(double mu) {
    double x = 0.0;
    for (int it = 0; it < 100; ++it) {
      const double f = linkinv(x) - mu;
      const double d = std::exp(std_normal_log_pdf(x));
      if (d <= 0.0) break;
      const double step = f / d;
      x -= step;
      if (std::fabs(step) < 1e-14 * (1.0 + std::fabs(x))) break;
    }
    return x;
  }
  static double linkinv(double eta) { return 0.5 * std::erfc(-eta * kInvSqrt2); }
  static double dmu_deta(double eta) { return std::exp(std_normal_log_pdf(eta)); }
  static double log_mu(double eta) { return std_normal_log_cdf(eta); }
  static double log1m_mu(double eta) { return std_normal_log_cdf(-eta); }
  static double dlog_mu(double eta) { return std_normal_mills(eta); }
  static double dlog1m_mu(double eta) { return -std_normal_mills(-eta); }
};
}  // namespace bglmm::links
