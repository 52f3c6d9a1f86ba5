// bglmm/links/logit.hpp — logit link: mu = 1 / (1 + exp(-eta)).
// log mu = -log1p(exp(-eta)), log(1 - mu) = -log1p(exp(eta)); derivatives of these are
// 1 - mu and -mu, evaluated by the sign-of-eta branch so nothing overflows.
#pragma once
#include <cmath>

#include "bglmm/links/special.hpp"

namespace bglmm::links {
struct Logit {
  static constexpr const char* name = "logit";
  static double link(double mu) { return std::log(mu) - std::log1p(-mu); }
  static double linkinv(double eta) { return inv_logit(eta); }
  static double dmu_deta(double eta) { return inv_logit(eta) * inv_logit(-eta); }
  static double log_mu(double eta) { return -log1p_exp(-eta); }
  static double log1m_mu(double eta) { return -log1p_exp(eta); }
  static double dlog_mu(double eta) { return inv_logit(-eta); }
  static double dlog1m_mu(double eta) { return -inv_logit(eta); }
  // log of the density dmu/deta = mu (1 - mu), finite for any eta
  static double log_dmu_deta(double eta) { return log_mu(eta) + log1m_mu(eta); }
};
}  // namespace bglmm::links
