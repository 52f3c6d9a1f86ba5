// bglmm/linalg/small_cholesky.hpp — Cholesky factorisation A = L L' of a small SPD matrix (the
// q x q per-group precisions, q <= 12) with plain loops: for fixed-size types they unroll
// completely, several times faster than the general Eigen::LLT for q = 1..3, and it never
// allocates. Same results for every thread count (no reductions across threads).
#pragma once
#include <cmath>

#include "bglmm/types.hpp"

namespace bglmm::linalg {

template <typename M>
class SmallCholesky {
 public:
  explicit SmallCholesky(Index n = M::RowsAtCompileTime == Eigen::Dynamic ? 0 : M::RowsAtCompileTime)
      : l_(n, n) {}

  // Factorises a (only its lower triangle is read). Returns false unless a is numerically SPD.
  bool compute(const M& a) {
    const Index n = a.rows();
    l_.resize(n, n);
    for (Index j = 0; j < n; ++j) {
      double s = a(j, j);
      for (Index k = 0; k < j; ++k) s -= l_(j, k) * l_(j, k);
      if (!(s > 0.0) || !std::isfinite(s)) return ok_ = false;
      const double d = std::sqrt(s);
      l_(j, j) = d;
      for (Index i = j + 1; i < n; ++i) {
        double t = a(i, j);
        for (Index k = 0; k < j; ++k) t -= l_(i, k) * l_(j, k);
        l_(i, j) = t / d;
      }
      for (Index i = 0; i < j; ++i) l_(i, j) = 0.0;
    }
    return ok_ = true;
  }
  bool ok() const { return ok_; }
  const M& lower() const { return l_; }

  // L^{-1} b
  template <typename V>
  V lower_solve(const V& b) const {
    const Index n = l_.rows();
    V x = b;
    for (Index i = 0; i < n; ++i) {
      double t = x[i];
      for (Index k = 0; k < i; ++k) t -= l_(i, k) * x[k];
      x[i] = t / l_(i, i);
    }
    return x;
  }
  // L'^{-1} b
  template <typename V>
  V upper_solve(const V& b) const {
    const Index n = l_.rows();
    V x = b;
    for (Index i = n - 1; i >= 0; --i) {
      double t = x[i];
      for (Index k = i + 1; k < n; ++k) t -= l_(k, i) * x[k];
      x[i] = t / l_(i, i);
    }
    return x;
  }
  // L' v
  template <typename V>
  V upper_times(const V& v) const {
    const Index n = l_.rows();
    V r = v;
    for (Index i = 0; i < n; ++i) {
      double t = 0.0;
      for (Index k = i; k < n; ++k) t += l_(k, i) * v[k];
      r[i] = t;
    }
    return r;
  }
  // A^{-1} b
  template <typename V>
  V solve(const V& b) const { return upper_solve(lower_solve(b)); }
  // A^{-1}
  M inverse() const {
    const Index n = l_.rows();
    M out(n, n);
    using Col = Eigen::Matrix<double, M::RowsAtCompileTime, 1, 0, M::MaxRowsAtCompileTime, 1>;
    for (Index c = 0; c < n; ++c) {
      Col e = Col::Zero(n);
      e[c] = 1.0;
      out.col(c) = solve(e);
    }
    return out;
  }
  // log |L| = sum_k log L_kk: one log of the product when that is a normal number.
  double log_det_lower() const {
    const Index n = l_.rows();
    double prod = 1.0;
    for (Index k = 0; k < n; ++k) prod *= l_(k, k);
    if (std::isnormal(prod) && prod < 1e300) return std::log(prod);
    double s = 0.0;
    for (Index k = 0; k < n; ++k) s += std::log(l_(k, k));
    return s;
  }

 private:
  M l_;
  bool ok_ = false;
};

}  // namespace bglmm::linalg
