// Log link: mu = exp(eta), dmu/deta = exp(eta), link = log; finite differences; finite for
// |eta| <= 700.
#include <cmath>

#include "bglmm/links/log.hpp"
#include "check.hpp"
#include "links/link_check.hpp"

using bglmm::links::Log;

TEST_CASE("log link: values, derivative, round trip, finiteness") {
  CHECK(Log::linkinv(0.0) == 1.0);
  CHECK_NEAR(Log::linkinv(1.0), 2.718281828459045, 1e-15);
  for (double x = -30.0; x <= 30.0; x += 0.73) {
    CHECK_NEAR(Log::dmu_deta(x), std::exp(x), 1e-15 * std::exp(x));
    bglmm::testing::check_derivative(Log::linkinv, Log::dmu_deta, x, "dmu_deta");
    CHECK_NEAR(Log::link(Log::linkinv(x)), x, 1e-14 * (1.0 + std::fabs(x)));
  }
  for (double x : {-700.0, -100.0, -30.0, 0.0, 30.0, 100.0, 700.0}) {
    CHECK(std::isfinite(Log::linkinv(x)) && Log::linkinv(x) > 0.0);
    CHECK(std::isfinite(Log::dmu_deta(x)));
  }
}

BGLMM_TEST_MAIN()
