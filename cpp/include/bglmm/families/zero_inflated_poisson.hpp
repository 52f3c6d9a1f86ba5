// bglmm/families/zero_inflated_poisson.hpp — zero-inflated Poisson ZIP(y | mu, zi), log link:
// a structural zero with probability zi, otherwise Poisson(mu), mu = exp(eta).
//   p(0) = zi + (1 - zi) e^-mu,   p(y) = (1 - zi) Poisson(y | mu) for y > 0.
// The core's dispersion slot holds the odds phi = zi / (1 - zi) (so that log phi = logit zi, and
// the positive-dispersion machinery of dispersion_slice.hpp applies unchanged); then
//   log p(y) = -log(1 + phi) - lgamma(y + 1) + [y > 0] (y eta - mu) + [y = 0] log(phi + e^-mu).
// The zero-inflation's own linear predictor (`zi = "~ x"`): row i's log odds are
// l_i = log phi + s_i, where the shift s_i = x_zi,i' alpha arrives in the trials slot, which this
// family has no other use for (0: the same odds phi on every row); below phi stands for
// e^l_i = phi e^s_i.
// log_constant holds -log(1 + phi) - lgamma(y + 1) and the kernel the rest: every term that
// depends on eta, so log_kernel + log_constant is the full log pmf for the phi update.
// log(phi + e^-mu) = l + log1p(e^-(l + mu)) where l + mu > 0 (no cancellation for mu up to
// e^700), and log1p_exp(l + mu) - mu otherwise (then mu < -l).
//   score:  y > 0: y - mu;   y = 0: -mu e^-mu / (phi + e^-mu) = -mu inv_logit(-(l + mu)).
//   Fisher weight: E_y[-d^2 log p / d eta^2] = mu / (1 + phi) (1 - mu phi e^-mu / (phi + e^-mu))
//     = mu / (1 + phi) (1 - mu e^-mu inv_logit(l + mu)), positive (mu e^-mu <= 1/e).
#pragma once
#include <cmath>

#include "bglmm/links/log.hpp"
#include "bglmm/links/special.hpp"

namespace bglmm::families {
struct ZeroInflatedPoisson {
  static constexpr const char* name = "zero_inflated_poisson";
  static constexpr bool has_trials = false;
  static constexpr bool has_dispersion = true;
  static constexpr int zero_inflation_param = 0;  // phi: the odds of a structural zero
  // Var y = (1 - zi) mu (1 + zi mu), with zi = phi / (1 + phi).
  static double variance(double mu, double phi) {
    const double zi = phi / (1.0 + phi);
    return (1.0 - zi) * mu * (1.0 + zi * mu);
  }
  static bool in_support(double y, double /*trials*/) { return y >= 0.0 && y == std::floor(y); }
  static double log_kernel(double y, double shift, double eta, double phi) {
    const double mu = std::exp(eta);
    if (y > 0.0) return y * eta - mu;
    const double l = std::log(phi) + shift;
    if (l + mu > 0.0) return l + std::log1p(std::exp(-(l + mu)));
    return links::log1p_exp(l + mu) - mu;
  }
  static double log_constant(double y, double shift, double phi) {
    return -links::log1p_exp(std::log(phi) + shift) - std::lgamma(y + 1.0);
  }
  static double score(double y, double shift, double eta, double phi) {
    const double mu = std::exp(eta);
    if (y > 0.0) return y - mu;
    return -mu * links::inv_logit(-(std::log(phi) + shift + mu));
  }
  static double weight(double shift, double eta, double phi) {
    const double mu = std::exp(eta), l = std::log(phi) + shift;
    const double zero_share = mu * std::exp(-mu) * links::inv_logit(l + mu);
    return mu * links::inv_logit(-l) * (1.0 - zero_share);
  }
};
}  // namespace bglmm::families
