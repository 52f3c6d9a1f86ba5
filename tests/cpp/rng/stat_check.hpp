// Statistical helpers for the RNG / linalg tests: sample moments with their Monte-Carlo
// standard errors, a Pearson chi-square goodness-of-fit test against a CDF, the chi-square
// CDF for integer degrees of freedom, and digamma / trigamma (for E and Var of log Gamma).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <vector>

#include "check.hpp"

namespace bglmm::testing {

// Tolerance of every moment check, in Monte-Carlo standard errors. The seeds are fixed, so
// the tests are deterministic; 4.5 se is a two-sided tail of 7e-6 per check under a correct
// generator, while a bias of a few percent in a mean or a variance at n = 2e5 is > 10 se.
constexpr double kZ = 4.5;

struct Moments {
  double n = 0, mean = 0, var = 0, m4 = 0;  // var and m4 are central sample moments
};

inline Moments moments(const std::vector<double>& x) {
  Moments m;
  m.n = static_cast<double>(x.size());
  for (double v : x) m.mean += v;
  m.mean /= m.n;
  for (double v : x) {
    const double d = v - m.mean, d2 = d * d;
    m.var += d2;
    m.m4 += d2 * d2;
  }
  m.var /= m.n - 1.0;
  m.m4 /= m.n;
  return m;
}

// The sample mean is within kZ standard errors (sd / sqrt(n), sd from the sample) of `exact`.
#define CHECK_MEAN(xs, exact)                                                          \
  do {                                                                                 \
    const auto mo_ = ::bglmm::testing::moments(xs);                                    \
    CHECK_NEAR(mo_.mean, (exact), ::bglmm::testing::kZ * std::sqrt(mo_.var / mo_.n)); \
  } while (0)

// The sample variance is within kZ standard errors (sqrt((m4 - s^4) / n)) of `exact`.
#define CHECK_VARIANCE(xs, exact)                                                      \
  do {                                                                                 \
    const auto mo_ = ::bglmm::testing::moments(xs);                                    \
    CHECK_NEAR(mo_.var, (exact),                                                       \
               ::bglmm::testing::kZ * std::sqrt((mo_.m4 - mo_.var * mo_.var) / mo_.n)); \
  } while (0)

// A proportion p_hat of n draws is within kZ binomial standard errors of p.
#define CHECK_PROPORTION(count, n, p)                                                  \
  do {                                                                                 \
    const double nn_ = static_cast<double>(n), pp_ = (p);                              \
    CHECK_NEAR(static_cast<double>(count) / nn_, pp_,                                  \
               ::bglmm::testing::kZ * std::sqrt(pp_ * (1.0 - pp_) / nn_) + 1e-12);     \
  } while (0)

// Regularised lower incomplete gamma P(k/2, x/2), i.e. the chi-square CDF with k (integer)
// degrees of freedom, by the recursion P(a + 1, x) = P(a, x) - x^a e^-x / Gamma(a + 1)
// from P(1/2, x) = erf(sqrt x) or P(1, x) = 1 - e^-x. Accurate to ~1e-13 for k <= 200.
inline double chi_square_cdf(double q, int k) {
  if (q <= 0.0) return 0.0;
  const double x = 0.5 * q;
  double a = (k % 2 == 1) ? 0.5 : 1.0;
  double p = (k % 2 == 1) ? std::erf(std::sqrt(x)) : -std::expm1(-x);
  for (; a < 0.5 * k - 1e-9; a += 1.0)
    p -= std::exp(a * std::log(x) - x - std::lgamma(a + 1.0));
  return std::clamp(p, 0.0, 1.0);
}

// Pearson chi-square goodness of fit of `x` against `cdf` on bins cut at `edges` (the outer
// bins run to -inf and +inf). Adjacent bins are merged until each expects >= 5 draws (the
// usual validity condition of the chi-square approximation). Returns the p-value with
// (merged bins - 1) degrees of freedom.
inline double chi_square_gof_pvalue(const std::vector<double>& x,
                                    const std::function<double(double)>& cdf,
                                    const std::vector<double>& edges) {
  const std::size_t k = edges.size() + 1;
  std::vector<double> observed(k, 0.0);
  for (double v : x) {
    const auto bin = std::upper_bound(edges.begin(), edges.end(), v) - edges.begin();
    observed[static_cast<std::size_t>(bin)] += 1.0;
  }
  const double n = static_cast<double>(x.size());
  double stat = 0.0, previous = 0.0, obs = 0.0, expected = 0.0;
  int bins = 0;
  for (std::size_t b = 0; b < k; ++b) {
    const double upper = b + 1 < k ? cdf(edges[b]) : 1.0;
    expected += n * (upper - previous);
    obs += observed[b];
    previous = upper;
    if (expected >= 5.0 || b + 1 == k) {
      const double d = obs - expected;
      stat += d * d / std::max(expected, 1e-300);
      ++bins;
      obs = expected = 0.0;
    }
  }
  const double p = 1.0 - chi_square_cdf(stat, std::max(bins - 1, 1));
  if (p < 1e-4) std::printf("  chi-square GOF statistic %.3f on %d bins\n", stat, bins);
  return p;
}

// digamma(x), x > 0: recurrence up to x >= 8, then the asymptotic series.
inline double digamma(double x) {
  double out = 0.0;
  while (x < 8.0) {
    out -= 1.0 / x;
    x += 1.0;
  }
  const double r = 1.0 / (x * x);
  return out + std::log(x) - 0.5 / x -
         r * (1.0 / 12 - r * (1.0 / 120 - r * (1.0 / 252 - r * (1.0 / 240 - r / 132))));
}

// trigamma(x), x > 0.
inline double trigamma(double x) {
  double out = 0.0;
  while (x < 8.0) {
    out += 1.0 / (x * x);
    x += 1.0;
  }
  const double r = 1.0 / (x * x);
  return out + 1.0 / x + 0.5 * r +
         r / x * (1.0 / 6 - r * (1.0 / 30 - r * (1.0 / 42 - r * (1.0 / 30 - r * 5.0 / 66))));
}

}  // namespace bglmm::testing
