// Identity link: mu = eta, dmu/deta = 1, link = linkinv^{-1}.
#include "bglmm/links/identity.hpp"
#include "check.hpp"

using bglmm::links::Identity;

TEST_CASE("identity link") {
  for (double x : {-700.0, -1.5, 0.0, 2.25, 700.0}) {
    CHECK(Identity::linkinv(x) == x);
    CHECK(Identity::link(x) == x);
    CHECK(Identity::dmu_deta(x) == 1.0);
  }
}

BGLMM_TEST_MAIN()
