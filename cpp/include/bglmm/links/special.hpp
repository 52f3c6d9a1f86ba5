// bglmm/links/special.hpp — overflow-safe scalar functions shared by the links.
// log1p_exp (softplus), inv_logit, and the standard normal log-CDF / inverse Mills ratio
// with an asymptotic expansion deep in the lower tail (where erfc underflows).
#pragma once
#include <cmath>

namespace bglmm::links {

// log(1 + exp(x)) without overflow.
inline double log1p_exp(double x) {
  return x > 0.0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

// 1 / (1 + exp(-x)), branching on the sign of x.
inline double inv_logit(double x) {
  if (x >= 0.0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

// log(1 - exp(x)) for x < 0 (Maechler 2012).
inline double log1m_exp(double x) {
  return x > -0.6931471805599453 ? std::log(-std::expm1(x)) : std::log1p(-std::exp(x));
}

constexpr double kLogSqrt2Pi = 0.9189385332046728;
constexpr double kInvSqrt2 = 0.7071067811865476;

inline double std_normal_log_pdf(double x) { return -0.5 * x * x - kLogSqrt2Pi; }

// log Phi(x). erfc is accurate (relative) down to x ~ -37; below -35 use the asymptotic
// series Phi(x) = phi(x)/|x| * (1 - 1/x^2 + 3/x^4 - 15/x^6 + 105/x^8 - 945/x^10 ...).
// (The truncation error of the series at x = -35 is 10395 / x^12 ~ 3e-15, relative.)
inline double std_normal_tail_series(double x) {  // x <= -35
  const double r = 1.0 / (x * x);
  return 1.0 - r * (1.0 - r * (3.0 - r * (15.0 - r * (105.0 - r * 945.0))));
}

// For x > 0 log1p(-Phi(-x)) avoids log(1 - q) (which loses eps / q relative accuracy, 8e-10
// at x = 5). erfc(z) has condition number 2 z^2, so the rounding of x / sqrt 2 costs about
// x^2 * 1.5e-16 relative in Phi(-x) (4e-14 at x = 20), negligible on the log scale.
inline double std_normal_log_cdf(double x) {
  if (x > 0.0) return std::log1p(-0.5 * std::erfc(x * kInvSqrt2));
  if (x > -35.0) return std::log(0.5 * std::erfc(-x * kInvSqrt2));
  return std_normal_log_pdf(x) - std::log(-x) + std::log(std_normal_tail_series(x));
}

// phi(x) / Phi(x) (inverse Mills ratio of the lower tail); ~ -x for x -> -inf. Below -35
// it is -x / series exactly (no difference of two huge logs); above, exp(log phi - log Phi)
// loses at most |log phi| * eps ~ 7e-14 relative.
inline double std_normal_mills(double x) {
  if (x <= -35.0) return -x / std_normal_tail_series(x);
  return std::exp(std_normal_log_pdf(x) - std_normal_log_cdf(x));
}

}  // namespace bglmm::links
