// Runtime dispatch of glm.hpp: codes 0..4 map to the documented (family, link) pairs (the
// codes python/bglmm/families.py sends), unknown codes throw.
#include <cstring>
#include <string>

#include "bglmm/glm.hpp"
#include "check.hpp"

TEST_CASE("family_link_from_code and dispatch") {
  const char* expected[][2] = {{"gaussian", "identity"},
                               {"poisson", "log"},
                               {"binomial", "logit"},
                               {"binomial", "probit"},
                               {"binomial", "cloglog"}};
  for (int code = 0; code <= 4; ++code) {
    const auto names = bglmm::dispatch(bglmm::family_link_from_code(code), [](auto g) {
      using G = decltype(g);
      return std::string(G::Family::name) + "/" + G::Link::name;
    });
    CHECK(names == std::string(expected[code][0]) + "/" + expected[code][1]);
  }
  CHECK_THROWS(bglmm::family_link_from_code(-1));
  CHECK_THROWS(bglmm::family_link_from_code(5));
}

BGLMM_TEST_MAIN()
