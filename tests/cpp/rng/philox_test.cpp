// Philox4x64-10 against known-answer vectors and the Rng stream built on it: the words of
// Rng(key, iteration, group, stream) are exactly the Philox blocks of the counter
// (iteration, group, stream, block), each index changes every word, and uniform / std_normal
// have the right distribution.
#include <cmath>
#include <cstdint>
#include <set>
#include <vector>

#include "bglmm/rng/philox.hpp"
#include "check.hpp"
#include "rng/stat_check.hpp"

using bglmm::rng::Block;
using bglmm::rng::ChainKey;
using bglmm::rng::philox4x64_10;
using bglmm::rng::Rng;
using bglmm::rng::Stream;

// Known-answer vectors of Random123 (kat_vectors, "philox4x64 10"), Salmon et al. (2011);
// the same values come from numpy.random.Philox(counter=c - 1, key=k).random_raw(4).
TEST_CASE("philox4x64_10 zero counter and key") {
  const Block out = philox4x64_10({0, 0, 0, 0}, {0, 0});
  CHECK(out[0] == 0x16554d9eca36314cULL);
  CHECK(out[1] == 0xdb20fe9d672d0fdcULL);
  CHECK(out[2] == 0xd7e772cee186176bULL);
  CHECK(out[3] == 0x7e68b68aec7ba23bULL);
}

TEST_CASE("philox4x64_10 all-ones counter and key") {
  const std::uint64_t f = ~0ULL;
  const Block out = philox4x64_10({f, f, f, f}, {f, f});
  CHECK(out[0] == 0x87b092c3013fe90bULL);
  CHECK(out[1] == 0x438c3c67be8d0224ULL);
  CHECK(out[2] == 0x9cc7d7c69cd777b6ULL);
  CHECK(out[3] == 0xa09caebf594f0ba0ULL);
}

TEST_CASE("philox4x64_10 digits-of-pi counter and key") {
  const Block out = philox4x64_10(
      {0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL, 0xa4093822299f31d0ULL, 0x082efa98ec4e6c89ULL},
      {0x452821e638d01377ULL, 0xbe5466cf34e90c6cULL});
  CHECK(out[0] == 0xa528f45403e61d95ULL);
  CHECK(out[1] == 0x38c72dbd566e9788ULL);
  CHECK(out[2] == 0xa5a1610e72fd18b5ULL);
  CHECK(out[3] == 0x57bd43b5e52b7fe6ULL);
}

TEST_CASE("Rng words are the Philox blocks of (iteration, group, stream, block)") {
  const ChainKey key{12345, 3};
  Rng rng(key, 17, 42, Stream::GroupProposal);
  for (std::uint64_t block = 0; block < 5; ++block) {
    const Block expected = philox4x64_10({17, 42, static_cast<std::uint64_t>(Stream::GroupProposal),
                                          block},
                                         {12345, 3});
    for (int j = 0; j < 4; ++j) CHECK(rng.next_u64() == expected[static_cast<std::size_t>(j)]);
  }
}

std::vector<std::uint64_t> first_words(ChainKey key, std::uint64_t iteration, std::uint64_t group,
                                       Stream stream, int n = 8) {
  Rng rng(key, iteration, group, stream);
  std::vector<std::uint64_t> out;
  for (int i = 0; i < n; ++i) out.push_back(rng.next_u64());
  return out;
}

TEST_CASE("every index changes the stream (seed, chain, iteration, group, stream)") {
  const auto base = first_words({7, 0}, 5, 9, Stream::Beta);
  const std::vector<std::vector<std::uint64_t>> others = {
      first_words({8, 0}, 5, 9, Stream::Beta),  first_words({7, 1}, 5, 9, Stream::Beta),
      first_words({7, 0}, 6, 9, Stream::Beta),  first_words({7, 0}, 5, 10, Stream::Beta),
      first_words({7, 0}, 5, 9, Stream::Init),  first_words({7, 0}, 5, 9, Stream::GroupAccept),
      // keys and counters are tuples, not sums: swapping two indices gives another stream
      first_words({0, 7}, 5, 9, Stream::Beta),  first_words({7, 0}, 9, 5, Stream::Beta)};
  std::set<std::uint64_t> words(base.begin(), base.end());
  for (const auto& o : others) {
    CHECK(o != base);
    words.insert(o.begin(), o.end());
  }
  // no word repeats across the 9 streams (72 words; a collision would signal shared counters)
  CHECK(words.size() == 9 * base.size());
}

TEST_CASE("a draw does not depend on construction order or interleaving") {
  // Two generators used alternately (as two threads would) give the same values as each
  // used alone: a draw is a pure function of its indices.
  const ChainKey key{99, 2};
  std::vector<double> alone_a, alone_b, mixed_a, mixed_b;
  {
    Rng a(key, 1, 0, Stream::GroupProposal);
    for (int i = 0; i < 50; ++i) alone_a.push_back(a.std_normal());
    Rng b(key, 1, 1, Stream::GroupProposal);
    for (int i = 0; i < 50; ++i) alone_b.push_back(b.uniform());
  }
  Rng b(key, 1, 1, Stream::GroupProposal);
  Rng a(key, 1, 0, Stream::GroupProposal);
  for (int i = 0; i < 50; ++i) {
    mixed_b.push_back(b.uniform());
    mixed_a.push_back(a.std_normal());
  }
  CHECK(alone_a == mixed_a);
  CHECK(alone_b == mixed_b);
}

TEST_CASE("uniform is in (0, 1) with mean 1/2, variance 1/12 and uniform bins") {
  Rng rng({2024, 0}, 0, 0, Stream::Test);
  const int n = 200000;
  std::vector<double> u(n);
  double lo = 1.0, hi = 0.0;
  for (auto& v : u) {
    v = rng.uniform();
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  CHECK(lo > 0.0);
  CHECK(hi < 1.0);
  CHECK_MEAN(u, 0.5);
  CHECK_VARIANCE(u, 1.0 / 12.0);
  std::vector<double> edges;
  for (int k = 1; k < 50; ++k) edges.push_back(k / 50.0);
  // p-value threshold 1e-4: fails only 1 in 10^4 under a correct generator (fixed seed).
  CHECK(bglmm::testing::chi_square_gof_pvalue(u, [](double x) { return x; }, edges) > 1e-4);
}

TEST_CASE("std_normal has mean 0, variance 1, kurtosis 3 and normal bins") {
  Rng rng({2024, 1}, 0, 0, Stream::Test);
  const int n = 200000;
  std::vector<double> z(n);
  for (auto& v : z) v = rng.std_normal();
  CHECK_MEAN(z, 0.0);
  CHECK_VARIANCE(z, 1.0);
  const auto m = bglmm::testing::moments(z);
  // kurtosis m4 / s^4 = 3; its standard error at n is sqrt(96 / n) = 0.022
  CHECK_NEAR(m.m4 / (m.var * m.var), 3.0, bglmm::testing::kZ * std::sqrt(96.0 / n));
  // consecutive draws are uncorrelated (the polar method returns its two values in turn):
  // the lag-1 and lag-2 products have mean 0 and standard error 1 / sqrt(n)
  for (int lag : {1, 2}) {
    std::vector<double> prod;
    for (int i = lag; i < n; ++i) prod.push_back(z[static_cast<std::size_t>(i)] *
                                                 z[static_cast<std::size_t>(i - lag)]);
    CHECK_MEAN(prod, 0.0);
  }
  std::vector<double> edges;
  for (double x = -4.0; x <= 4.0 + 1e-9; x += 0.25) edges.push_back(x);
  const auto phi = [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); };
  CHECK(bglmm::testing::chi_square_gof_pvalue(z, phi, edges) > 1e-4);
}

BGLMM_TEST_MAIN()
