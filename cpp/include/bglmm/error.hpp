// bglmm/error.hpp — exceptions and argument checks of the C++ core.
// User-data problems throw std::invalid_argument (Python: ValueError); numerical
// breakdowns throw NumericalError (Python: bglmm.NumericalError, an ArithmeticError).
#pragma once
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

namespace bglmm {

class NumericalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

inline void check_finite(const char* function, const char* name, double value) {
  if (!std::isfinite(value))
    throw std::invalid_argument(concat(function, ": ", name, " must be finite, got ", value));
}

inline void check_positive(const char* function, const char* name, double value) {
  if (!(value > 0.0) || !std::isfinite(value))
    throw std::invalid_argument(
        concat(function, ": ", name, " must be positive and finite, got ", value));
}

template <typename A, typename B>
void check_size_match(const char* function, const char* name_a, A a, const char* name_b, B b) {
  if (static_cast<long long>(a) != static_cast<long long>(b))
    throw std::invalid_argument(concat(function, ": size of ", name_a, " (", a,
                                       ") does not match size of ", name_b, " (", b, ")"));
}

template <typename MatrixLike>
void check_all_finite(const char* function, const char* name, const MatrixLike& m) {
  if (!m.allFinite())
    throw std::invalid_argument(concat(function, ": ", name, " contains NaN or infinite values"));
}

// Case weights: empty, or n finite values >= 0 with a positive sum.
template <typename VectorLike>
void check_weights(const char* function, const VectorLike& weights, long long n) {
  if (weights.size() == 0) return;
  check_size_match(function, "weights", weights.size(), "y", n);
  check_all_finite(function, "weights", weights);
  for (long long i = 0; i < n; ++i)
    if (weights[i] < 0.0)
      throw std::invalid_argument(
          concat(function, ": weights[", i, "] = ", weights[i], " is negative"));
  if (!(weights.sum() > 0.0))
    throw std::invalid_argument(concat(function, ": the weights are all 0"));
}

}  // namespace bglmm
