// Philox4x64-10 against known-answer vectors and basic stream properties.
#include "bglmm/rng/philox.hpp"
#include "check.hpp"

using bglmm::rng::Block;
using bglmm::rng::philox4x64_10;

TEST_CASE("philox4x64_10 zero counter and key") {
  const Block out = philox4x64_10({0, 0, 0, 0}, {0, 0});
  CHECK(out[0] == 0x16554d9eca36314cULL);
  CHECK(out[1] == 0xdb20fe9d672d0fdcULL);
  CHECK(out[2] == 0xd7e772cee186176bULL);
  CHECK(out[3] == 0x7e68b68aec7ba23bULL);
}

BGLMM_TEST_MAIN()
