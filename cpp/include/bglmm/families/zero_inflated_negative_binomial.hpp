// bglmm/families/zero_inflated_negative_binomial.hpp — zero-inflated negative binomial,
// ZINB(y | mu, phi, zi), log link: a structural zero with probability zi, otherwise NB2(mu, phi)
// (negative_binomial.hpp: var = mu + mu^2 / phi). Two parameters: phi, and phi2 = zi / (1 - zi),
// the odds of a structural zero (as the zero-inflated Poisson's phi; zero_inflated_poisson.hpp).
// With p = inv_logit(eta - log phi) = mu / (mu + phi), a = log NB(0) = -phi softplus(eta - log phi)
// and L = log phi2:
//   log p(y) = -log(1 + phi2) + [y > 0] log NB(y) + [y = 0] log(phi2 + e^a)
//   score:  y > 0: the negative binomial's;  y = 0: s a', a' = -phi p, s = inv_logit(a - L)
//           (the share of the zeros that are the negative binomial's)
//   Fisher weight: E_y[-d^2 log p / d eta^2] = phi p / (1 + phi2) (1 - phi p e^a (1 - s)),
//           positive (phi p e^a <= (phi / (1 + phi))^(phi + 1) < 1); the zero-inflated Poisson's
//           in the limit phi -> infinity.
// With the zero-inflation's own linear predictor, L = log phi2 + s_i, the shift s_i arriving in
// the trials slot (as in zero_inflated_poisson.hpp; below phi2 stands for e^L).
// The kernel keeps every term that depends on eta; log_constant, -log(1 + phi2) +
// lgamma(y + phi) - lgamma(phi) - lgamma(y + 1), the rest.
#pragma once
#include <algorithm>
#include <cmath>

#include "bglmm/families/special.hpp"
#include "bglmm/links/log.hpp"
#include "bglmm/links/special.hpp"

namespace bglmm::families {
struct ZeroInflatedNegativeBinomial {
  static constexpr const char* name = "zero_inflated_negbinomial";
  static constexpr bool has_trials = false;
  static constexpr bool has_dispersion = true;
  static constexpr bool has_second_dispersion = true;
  static constexpr int zero_inflation_param = 1;  // phi2: the odds of a structural zero
  static bool in_support(double y, double /*trials*/) { return y >= 0.0 && y == std::floor(y); }
  // log NB(0 | eta, phi) = -phi softplus(eta - log phi)
  static double log_nb_zero(double eta, double phi) {
    return -phi * links::log1p_exp(eta - std::log(phi));
  }
  static double log_kernel(double y, double shift, double eta, double phi, double phi2) {
    const double l = std::log(phi);
    if (y > 0.0) return -phi * links::log1p_exp(eta - l) - y * links::log1p_exp(l - eta);
    const double a = log_nb_zero(eta, phi), big = std::log(phi2) + shift;
    const double hi = std::max(a, big), lo = std::min(a, big);
    return hi + std::log1p(std::exp(lo - hi));  // log(phi2 + e^a)
  }
  static double log_constant(double y, double shift, double phi, double phi2) {
    return -links::log1p_exp(std::log(phi2) + shift) + log_rising(phi, y) - std::lgamma(y + 1.0);
  }
  static double score(double y, double shift, double eta, double phi, double phi2) {
    const double l = std::log(phi), p = links::inv_logit(eta - l);
    if (y > 0.0) return y * links::inv_logit(l - eta) - phi * p;
    const double share = links::inv_logit(log_nb_zero(eta, phi) - std::log(phi2) - shift);
    return -share * phi * p;
  }
  static double weight(double shift, double eta, double phi, double phi2) {
    const double p = links::inv_logit(eta - std::log(phi)), a = log_nb_zero(eta, phi);
    const double big = std::log(phi2) + shift;
    const double inflated_share = links::inv_logit(big - a);  // 1 - s
    return phi * p * links::inv_logit(-big) * (1.0 - phi * p * std::exp(a) * inflated_share);
  }
};
}  // namespace bglmm::families
