// Runtime dispatch of glm.hpp: codes 0..kLastFamilyLink map to the documented (family, link)
// pairs (the codes python/bglmm/families.py sends), unknown codes throw; HasDispersion marks the
// families whose dispersion the samplers update, HasCutpoints the cumulative ones.
#include <cstring>
#include <string>

#include "bglmm/glm.hpp"
#include "check.hpp"

TEST_CASE("family_link_from_code and dispatch") {
  const char* expected[][2] = {{"gaussian", "identity"},
                               {"poisson", "log"},
                               {"binomial", "logit"},
                               {"binomial", "probit"},
                               {"binomial", "cloglog"},
                               {"negbinomial", "log"},
                               {"gamma", "log"},
                               {"beta_binomial", "logit"},
                               {"beta_binomial", "probit"},
                               {"beta_binomial", "cloglog"},
                               {"zero_inflated_poisson", "log"},
                               {"zero_inflated_negbinomial", "log"},
                               {"student", "identity"},
                               {"cumulative", "logit"},
                               {"cumulative", "probit"}};
  static_assert(sizeof(expected) / sizeof(expected[0]) == bglmm::kLastFamilyLink + 1,
                "one expected pair per code");
  for (int code = 0; code <= bglmm::kLastFamilyLink; ++code) {
    const auto names = bglmm::dispatch(bglmm::family_link_from_code(code), [](auto g) {
      using G = decltype(g);
      return std::string(G::Family::name) + "/" + G::Link::name;
    });
    CHECK(names == std::string(expected[code][0]) + "/" + expected[code][1]);
    const bool dispersion = bglmm::dispatch(bglmm::family_link_from_code(code), [](auto g) {
      return bglmm::HasDispersion<decltype(g)>;
    });
    CHECK(dispersion == (code >= 5 && code <= 12));
    const bool cutpoints = bglmm::dispatch(bglmm::family_link_from_code(code), [](auto g) {
      return bglmm::HasCutpoints<decltype(g)>;
    });
    CHECK(cutpoints == (code >= 13));
  }
  CHECK_THROWS(bglmm::family_link_from_code(-1));
  CHECK_THROWS(bglmm::family_link_from_code(bglmm::kLastFamilyLink + 1));
}

BGLMM_TEST_MAIN()
