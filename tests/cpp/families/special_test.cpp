// Special functions of the dispersion families: digamma against scipy.special.digamma,
// digamma_difference against the finite sum psi(x + m) - psi(x) = sum_{j < m} 1 / (x + j),
// log_rising against lgamma differences in long double, across the switch at a = 50.
#include <cmath>

#include "bglmm/families/special.hpp"
#include "check.hpp"

using bglmm::families::digamma_difference;
using bglmm::families::digamma_ge1;
using bglmm::families::log_rising;

TEST_CASE("digamma_ge1 equals scipy.special.digamma") {
  struct Row { double x, expected; };
  // scipy.special.digamma(x)
  const Row rows[] = {{1.0, -0.5772156649015329}, {2.5, 0.7031566406452432},
                      {9.99, 2.250700372831201},  {10.0, 2.251752589066721},
                      {37.0, 3.597343531893106},  {1e6, 13.81551005796419}};
  for (const Row& r : rows) CHECK_NEAR(digamma_ge1(r.x), r.expected, 2e-15 * std::fabs(r.expected) + 1e-16);
}

TEST_CASE("digamma_difference equals the finite sum") {
  for (double x : {1.0, 1.5, 9.5, 10.0, 12.3, 1e3, 1e6, 1e9})
    for (double m : {1.0, 2.0, 7.0, 40.0}) {
      long double sum = 0.0L;
      for (double j = 0; j < m; ++j) sum += 1.0L / (x + j);
      CHECK_NEAR(digamma_difference(x, m), static_cast<double>(sum), 1e-14 * static_cast<double>(sum));
    }
  CHECK(digamma_difference(3.0, 0.0) == 0.0);
}

TEST_CASE("log_rising equals lgamma(a + m) - lgamma(a)") {
  for (double a : {0.01, 0.7, 12.0, 49.9, 50.0, 999.0, 1001.0, 5e4, 1e9})
    for (double m : {0.0, 1.0, 3.0, 50.0, 1e4}) {
      long double sum = 0.0L;  // sum_{j < m} log(a + j) in long double (exact in the limit)
      for (double j = 0; j < m; ++j) sum += std::log(static_cast<long double>(a) + j);
      const double expected = static_cast<double>(sum);
      // below a = 50 the documented absolute error ~ eps lgamma(a + m) of the lgamma difference
      const double lgamma_error = a < 50.0 ? 4e-16 * std::fabs(std::lgamma(a + m)) : 0.0;
      CHECK_NEAR(log_rising(a, m), expected, 1e-13 * (1.0 + std::fabs(expected)) + lgamma_error);
    }
}

BGLMM_TEST_MAIN()
