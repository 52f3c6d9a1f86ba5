// bglmm/rng/distributions.hpp — scalar random variates built on a bglmm::rng::Rng.
// Gamma: Marsaglia & Tsang (2000), with the U^(1/a) boost for shape < 1.
// Truncated normal: Robert (1995), exponential / uniform / normal rejection chosen by region.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "bglmm/error.hpp"
#include "bglmm/rng/philox.hpp"

namespace bglmm::rng {

inline double uniform_rng(Rng& rng) { return rng.uniform(); }
inline double std_normal_rng(Rng& rng) { return rng.std_normal(); }
inline double normal_rng(double mean, double sd, Rng& rng) {
  check_finite("normal_rng", "mean", mean);
  check_positive("normal_rng", "sd", sd);
  return mean + sd * rng.std_normal();
}
inline double exponential_rng(double rate, Rng& rng) {
  check_positive("exponential_rng", "rate", rate);
  return -std::log(rng.uniform()) / rate;
}

// log of a Gamma(shape, 1) draw; finite even when the draw itself underflows (tiny shapes:
// for shape 0.01 about 1 draw in 1000 is below 1e-308, so gamma_rng returns 0 or a
// subnormal there and inv_gamma_rng may return inf; use log_gamma_rng when that matters).
inline double log_gamma_rng(double shape, Rng& rng) {
  if (!(shape > 0.0) || !std::isfinite(shape))
    throw std::invalid_argument(concat("gamma_rng: shape must be positive and finite, got ", shape));
  if (shape < 1.0) {
    // G(a) = G(a + 1) * U^(1/a)
    const double log_u = std::log(rng.uniform());
    return log_gamma_rng(shape + 1.0, rng) + log_u / shape;
  }
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = rng.std_normal();
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = rng.uniform();
    const double x2 = x * x;
    if (u < 1.0 - 0.0331 * x2 * x2) return std::log(d * v);
    if (std::log(u) < 0.5 * x2 + d * (1.0 - v + std::log(v))) return std::log(d * v);
  }
}

// Gamma with shape and rate (mean shape / rate).
inline double gamma_rng(double shape, double rate, Rng& rng) {
  check_positive("gamma_rng", "rate", rate);
  return std::exp(log_gamma_rng(shape, rng)) / rate;
}

inline double chi_square_rng(double df, Rng& rng) {
  check_positive("chi_square_rng", "df", df);
  return 2.0 * gamma_rng(0.5 * df, 1.0, rng);
}

// Inverse-Gamma(shape, scale): 1 / Gamma(shape, rate = scale); mean scale / (shape - 1).
inline double inv_gamma_rng(double shape, double scale, Rng& rng) {
  check_positive("inv_gamma_rng", "shape", shape);
  check_positive("inv_gamma_rng", "scale", scale);
  return scale * std::exp(-log_gamma_rng(shape, rng));
}

// Beta(a, b) = Ga / (Ga + Gb), formed from log-gammas so that tiny shapes do not give 0/0.
inline double beta_rng(double a, double b, Rng& rng) {
  check_positive("beta_rng", "a", a);
  check_positive("beta_rng", "b", b);
  const double la = log_gamma_rng(a, rng);
  const double lb = log_gamma_rng(b, rng);
  const double m = std::max(la, lb);
  const double ea = std::exp(la - m), eb = std::exp(lb - m);
  return ea / (ea + eb);
}

namespace detail {
// Standard normal truncated to [a, +inf), a >= 0: exponential proposal with rate
// (a + sqrt(a^2 + 4)) / 2 (Robert 1995, optimal), efficient arbitrarily far in the tail.
inline double std_normal_lower_tail(double a, Rng& rng) {
  const double rate = 0.5 * (a + std::sqrt(a * a + 4.0));
  for (;;) {
    const double z = a - std::log(rng.uniform()) / rate;
    const double diff = z - rate;
    if (std::log(rng.uniform()) <= -0.5 * diff * diff) return z;
  }
}
}  // namespace detail

// Standard normal truncated to [lower, upper]; either bound may be infinite.
inline double std_truncated_normal_rng(double lower, double upper, Rng& rng) {
  if (std::isnan(lower) || std::isnan(upper) || !(lower < upper))
    throw std::invalid_argument(
        concat("truncated_normal_rng: need lower < upper, got [", lower, ", ", upper, "]"));
  constexpr double inf = std::numeric_limits<double>::infinity();
  if (upper <= 0.0 && lower == -inf) return -detail::std_normal_lower_tail(-upper, rng);
  if (upper < 0.0) return -std_truncated_normal_rng(-upper, -lower, rng);
  // Now upper >= 0 (and upper > lower).
  if (lower >= 0.0) {
    // Whole interval in the right half: compare Robert's exponential and uniform proposals.
    const double root = std::sqrt(lower * lower + 4.0);
    const double uniform_limit =
        2.0 / (lower + root) * std::exp(0.25 * (lower * lower - lower * root) + 0.5);
    if (upper - lower > uniform_limit) {
      for (;;) {
        const double z = detail::std_normal_lower_tail(lower, rng);
        if (z <= upper) return z;
      }
    }
    for (;;) {
      const double z = lower + (upper - lower) * rng.uniform();
      if (std::log(rng.uniform()) <= 0.5 * (lower * lower - z * z)) return z;
    }
  }
  // lower < 0 <= upper: the interval contains the mode.
  constexpr double sqrt_2pi = 2.5066282746310002;
  if (upper - lower < sqrt_2pi) {
    for (;;) {
      const double z = lower + (upper - lower) * rng.uniform();
      if (std::log(rng.uniform()) <= -0.5 * z * z) return z;
    }
  }
  for (;;) {
    const double z = rng.std_normal();
    if (z >= lower && z <= upper) return z;
  }
}

inline double truncated_normal_rng(double mean, double sd, double lower, double upper, Rng& rng) {
  check_finite("truncated_normal_rng", "mean", mean);
  check_positive("truncated_normal_rng", "sd", sd);
  return mean + sd * std_truncated_normal_rng((lower - mean) / sd, (upper - mean) / sd, rng);
}

}  // namespace bglmm::rng
