// bglmm/families/negative_binomial.hpp — negative binomial NB2(y | mu, phi), log link:
// mean mu = exp(eta), variance mu + mu^2 / phi (phi is MASS's theta, brms's shape).
// log p = lgamma(y + phi) - lgamma(phi) - lgamma(y + 1)
//         + y log(mu / (mu + phi)) + phi log(phi / (mu + phi))
// With l = log phi, log(mu / (mu + phi)) = -softplus(l - eta) and
// log(phi / (mu + phi)) = -softplus(eta - l), so for every |eta| <= 700 nothing overflows:
//   kernel = -y softplus(l - eta) - phi softplus(eta - l)
//   score  = phi (y - mu) / (mu + phi) = y inv_logit(l - eta) - phi inv_logit(eta - l)
//   Fisher weight = mu^2 / var = phi mu / (mu + phi) = phi inv_logit(eta - l).
// The kernel keeps every term that depends on eta (and on phi through them); log_constant
// holds the rest, so log_kernel + log_constant is the full log pmf for the phi update.
#pragma once
#include <cmath>

#include "bglmm/families/special.hpp"
#include "bglmm/links/log.hpp"
#include "bglmm/links/special.hpp"

namespace bglmm::families {
struct NegativeBinomial {
  static constexpr const char* name = "negbinomial";
  static constexpr bool has_trials = false;
  static constexpr bool has_dispersion = true;
  static double variance(double mu, double phi) { return mu + mu * mu / phi; }
  static bool in_support(double y, double /*trials*/) { return y >= 0.0 && y == std::floor(y); }
  static double log_kernel(double y, double /*trials*/, double eta, double phi) {
    const double l = std::log(phi);
    double out = -phi * links::log1p_exp(eta - l);
    if (y > 0.0) out -= y * links::log1p_exp(l - eta);
    return out;
  }
  static double log_constant(double y, double /*trials*/, double phi) {
    return log_rising(phi, y) - std::lgamma(y + 1.0);  // lgamma(y + phi) - lgamma(phi) - ...
  }
  static double score(double y, double /*trials*/, double eta, double phi) {
    const double l = std::log(phi);
    return y * links::inv_logit(l - eta) - phi * links::inv_logit(eta - l);
  }
  static double weight(double /*trials*/, double eta, double phi) {
    return phi * links::inv_logit(eta - std::log(phi));
  }
};
}  // namespace bglmm::families
