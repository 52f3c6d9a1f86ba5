// bglmm/parallel.hpp — OpenMP shims and an exception vault for parallel loops.
// No exception may leave an OpenMP region: bodies run inside ExceptionVault::run and
// the first exception is rethrown after the loop, on the calling thread.
#pragma once
#include <cstdint>
#include <exception>
#include <mutex>
#include <vector>

#ifdef BGLMM_HAVE_OPENMP
#include <omp.h>
#endif

namespace bglmm {

inline int max_threads() {
#ifdef BGLMM_HAVE_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline bool have_openmp() {
#ifdef BGLMM_HAVE_OPENMP
  return true;
#else
  return false;
#endif
}

// Threads to use: a requested count <= 0 means "all available".
inline int resolve_threads(int requested) {
  constexpr int kMaxThreads = 1024;  // a larger OpenMP team cannot help and may not be creatable
  if (requested <= 0) return max_threads();
#ifdef BGLMM_HAVE_OPENMP
  return requested < kMaxThreads ? requested : kMaxThreads;
#else
  return 1;
#endif
}

// Groups per dynamic-schedule chunk: small enough to balance very unequal group sizes.
inline int group_chunk(std::int64_t m, int threads) {
  const std::int64_t c = m / (static_cast<std::int64_t>(threads) * 64);
  return static_cast<int>(c < 1 ? 1 : (c > 256 ? 256 : c));
}

class ExceptionVault {
 public:
  template <typename Body>
  void run(Body&& body) noexcept {
    try {
      body();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }
  bool failed() const { return static_cast<bool>(error_); }

 private:
  std::exception_ptr error_;
  std::mutex mutex_;
};


// Reduction over fixed chunks of [0, n): chunk c's part starts as a copy of `zero` and is
// filled by f(begin, end, part); the parts are then added to `zero` in chunk order. The chunks
// are the same whatever the thread count, so the result is bitwise reproducible (no OpenMP
// reduction on doubles). T: a double, an Eigen vector or matrix, or a struct with +=.
template <typename T, typename ChunkFn>
T chunked_reduce(std::int64_t n, std::int64_t chunk, int threads, const T& zero, ChunkFn&& f) {
  (void)threads;
  T total = zero;
  const std::int64_t n_chunks = (n + chunk - 1) / chunk;
  if (n_chunks <= 1) {
    if (n > 0) f(std::int64_t{0}, n, total);
    return total;
  }
  std::vector<T> parts(static_cast<std::size_t>(n_chunks), zero);
  ExceptionVault vault;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
  for (std::int64_t c = 0; c < n_chunks; ++c) {
    vault.run([&] {
      const std::int64_t begin = c * chunk;
      const std::int64_t end = begin + chunk < n ? begin + chunk : n;
      f(begin, end, parts[static_cast<std::size_t>(c)]);
    });
  }
  vault.rethrow();
  for (const T& part : parts) total += part;
  return total;
}

// Sum of f(begin, end) over fixed chunks of [0, n), added in order (chunked_reduce).
template <typename ChunkSum>
double chunked_sum(std::int64_t n, std::int64_t chunk, int threads, ChunkSum&& f) {
  return chunked_reduce(n, chunk, threads, 0.0,
                        [&](std::int64_t begin, std::int64_t end, double& part) {
                          part = f(begin, end);
                        });
}

}  // namespace bglmm
