// bglmm/steps/slice.hpp — univariate slice sampling (Neal 2003, Ann. Statist. 31): stepping out
// with a capped number of steps (fig. 3) and shrinkage (fig. 5). The kernel is reversible and
// leaves the density exp(log_f) invariant; it needs no tuning beyond the initial width `w`,
// which only affects the cost (shrinkage adapts to narrow conditionals geometrically).
#pragma once
#include <cmath>

#include "bglmm/rng/distributions.hpp"
#include "bglmm/rng/philox.hpp"

namespace bglmm::steps {

// One slice-sampling update of x0 under log density `log_f` (may return -inf outside the
// support; log_f(x0) must be finite).
template <typename LogF>
double slice_step(LogF&& log_f, double x0, double w, rng::Rng& rng) {
  const double level = log_f(x0) - rng::exponential_rng(1.0, rng);
  double lo = x0 - w * rng.uniform();
  double hi = lo + w;
  const int max_steps = 60;
  int j = static_cast<int>(std::floor(max_steps * rng.uniform()));
  int k = max_steps - 1 - j;
  while (j-- > 0 && log_f(lo) > level) lo -= w;
  while (k-- > 0 && log_f(hi) > level) hi += w;
  for (int it = 0; it < 200; ++it) {
    const double x = lo + (hi - lo) * rng.uniform();
    if (log_f(x) > level) return x;
    if (x < x0) lo = x;
    else hi = x;
  }
  return x0;  // the shrinkage interval collapsed onto x0 (measure-zero event)
}

}  // namespace bglmm::steps
