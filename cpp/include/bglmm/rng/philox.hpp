// bglmm/rng/philox.hpp — counter-based Philox4x64-10 generator (Salmon et al. 2011,
// "Parallel random numbers: as easy as 1, 2, 3", SC'11).
// Key = (seed, chain); counter = (iteration, group, stream, block). A draw is a pure
// function of these indices, so it never depends on which thread makes it.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

namespace bglmm::rng {

// What a random number is for; each purpose has its own independent stream.
enum class Stream : std::uint64_t {
  Init = 0,
  Beta = 1,
  BetaAccept = 2,
  GroupProposal = 3,
  GroupAccept = 4,
  Covariance = 5,
  Dispersion = 6,
  Mean = 7,
  Hyper = 8,
  Predict = 9,
  Test = 100,
};

struct ChainKey {
  std::uint64_t seed;
  std::uint64_t chain;
};

using Block = std::array<std::uint64_t, 4>;
__extension__ typedef unsigned __int128 UInt128;  // GCC/Clang 128-bit product

// One application of Philox4x64 with 10 rounds.
inline Block philox4x64_10(Block counter, std::array<std::uint64_t, 2> key) {
  constexpr std::uint64_t kMul0 = 0xD2E7470EE14C6C93ULL;
  constexpr std::uint64_t kMul1 = 0xCA5A826395121157ULL;
  constexpr std::uint64_t kWeyl0 = 0x9E3779B97F4A7C15ULL;
  constexpr std::uint64_t kWeyl1 = 0xBB67AE8584CAA73BULL;
  for (int round = 0; round < 10; ++round) {
    const UInt128 p0 = static_cast<UInt128>(kMul0) * counter[0];
    const UInt128 p1 = static_cast<UInt128>(kMul1) * counter[2];
    const auto hi0 = static_cast<std::uint64_t>(p0 >> 64), lo0 = static_cast<std::uint64_t>(p0);
    const auto hi1 = static_cast<std::uint64_t>(p1 >> 64), lo1 = static_cast<std::uint64_t>(p1);
    counter = {hi1 ^ counter[1] ^ key[0], lo1, hi0 ^ counter[3] ^ key[1], lo0};
    key[0] += kWeyl0;
    key[1] += kWeyl1;
  }
  return counter;
}

// A stream of random 64-bit words for one (seed, chain, iteration, group, purpose).
// Cheap to construct: build one where it is used, never share one across threads.
class Rng {
 public:
  Rng(ChainKey key, std::uint64_t iteration, std::uint64_t group, Stream stream)
      : key_{key.seed, key.chain},
        counter_{iteration, group, static_cast<std::uint64_t>(stream), 0} {}

  std::uint64_t next_u64() {
    if (used_ == 4) {
      buffer_ = philox4x64_10(counter_, key_);
      ++counter_[3];
      used_ = 0;
    }
    return buffer_[used_++];
  }

  // Uniform on the open interval (0, 1) with 53 random bits.
  double uniform() {
    return (static_cast<double>(next_u64() >> 11) + 0.5) * 0x1.0p-53;
  }

  // Standard normal by the Marsaglia polar method; the second value is kept.
  double std_normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u, v, s;
    do {
      u = 2.0 * uniform() - 1.0;
      v = 2.0 * uniform() - 1.0;
      s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    const double factor = std::sqrt(-2.0 * std::log(s) / s);
    spare_ = v * factor;
    has_spare_ = true;
    return u * factor;
  }

 private:
  std::array<std::uint64_t, 2> key_;
  Block counter_;
  Block buffer_{};
  int used_ = 4;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace bglmm::rng
