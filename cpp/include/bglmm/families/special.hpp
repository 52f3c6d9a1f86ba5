// bglmm/families/special.hpp — special functions shared by the families with a dispersion:
// log_rising(a, m) = lgamma(a + m) - lgamma(a) without the cancellation of two large lgammas
// when a is large (Stirling's series); digamma_ge1(x), psi(x) for x >= 1, and the difference
// digamma_difference(x, d) = psi(x + d) - psi(x).
#pragma once
#include <cmath>

namespace bglmm::families {

// lgamma(x) - ((x - 1/2) log x - x + log(2 pi) / 2) for x >= 50: the next term of the series,
// 1 / (1680 x^7), is below 1e-15.
inline double stirling_correction(double x) {
  const double f = 1.0 / (x * x);
  return (1.0 / 12 - f * (1.0 / 360 - f / 1260)) / x;
}

// lgamma(a + m) - lgamma(a) for a > 0, m >= 0. Below a = 50 the lgamma difference (absolute
// error ~ eps lgamma(a + m)); above, Stirling's series for the difference, so that a Poisson
// or binomial limit (phi = 1e9) keeps its digits.
inline double log_rising(double a, double m) {
  if (m == 0.0) return 0.0;
  if (a < 50.0) return std::lgamma(a + m) - std::lgamma(a);
  return m * std::log(a) + (a + m - 0.5) * std::log1p(m / a) - m + stirling_correction(a + m) -
         stirling_correction(a);
}

// The asymptotic series of psi(x) - log x + 1/(2x) (Abramowitz & Stegun 6.3.18) for x >= 10,
// through the x^-14 term; the first omitted term is below 3617/8160 x^-16 < 5e-17.
inline double digamma_tail(double x) {
  const double f = 1.0 / (x * x);
  return -f * (1.0 / 12 -
               f * (1.0 / 120 -
                    f * (1.0 / 252 -
                         f * (1.0 / 240 - f * (1.0 / 132 - f * (691.0 / 32760 - f / 12))))));
}

// psi(x) for x >= 1: recurrence up to x >= 10, then the asymptotic series.
inline double digamma_ge1(double x) {
  double out = 0.0;
  while (x < 10.0) {
    out -= 1.0 / x;
    x += 1.0;
  }
  return out + std::log(x) - 0.5 / x + digamma_tail(x);
}

// psi(x + d) - psi(x) for x >= 1, d >= 0, without the cancellation of two large values when
// x is large (the beta-binomial score in its binomial limit): log1p(d / x) and differences of
// the small terms.
inline double digamma_difference(double x, double d) {
  if (d == 0.0) return 0.0;
  if (x < 10.0) return digamma_ge1(x + d) - digamma_ge1(x);
  return std::log1p(d / x) + 0.5 * d / (x * (x + d)) + digamma_tail(x + d) - digamma_tail(x);
}

}  // namespace bglmm::families
