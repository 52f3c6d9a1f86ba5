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


// Sum of f(begin, end) over fixed chunks of [0, n): the chunks are the same whatever the
// thread count and their partial sums are added in order, so the result is bitwise
// reproducible (no OpenMP reduction on doubles).
template <typename ChunkSum>
double chunked_sum(std::int64_t n, std::int64_t chunk, int threads, ChunkSum&& f) {
  (void)threads;
  const std::int64_t n_chunks = (n + chunk - 1) / chunk;
  if (n_chunks <= 1) return n > 0 ? f(std::int64_t{0}, n) : 0.0;
  std::vector<double> partial(static_cast<std::size_t>(n_chunks));
  ExceptionVault vault;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
  for (std::int64_t c = 0; c < n_chunks; ++c) {
    vault.run([&] {
      const std::int64_t begin = c * chunk;
      const std::int64_t end = begin + chunk < n ? begin + chunk : n;
      partial[static_cast<std::size_t>(c)] = f(begin, end);
    });
  }
  vault.rethrow();
  double total = 0.0;
  for (double v : partial) total += v;
  return total;
}

}  // namespace bglmm
