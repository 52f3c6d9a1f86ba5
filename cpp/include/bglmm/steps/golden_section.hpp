// bglmm/steps/golden_section.hpp — the maximiser of a unimodal function on an interval by
// golden-section search (starting values only: the dispersion's conditional mode, the cutpoints'
// coordinate-wise modes).
#pragma once

namespace bglmm::steps {

// The midpoint of the final bracket after narrowing [lo, hi] to a width below `tol` or after
// `max_steps` steps, whichever comes first.
template <typename F>
double golden_section_argmax(F&& f, double lo, double hi, double tol, int max_steps = 200) {
  constexpr double kInvGolden = 0.6180339887498949;
  double x1 = hi - kInvGolden * (hi - lo), x2 = lo + kInvGolden * (hi - lo);
  double f1 = f(x1), f2 = f(x2);
  for (int step = 0; step < max_steps && hi - lo > tol; ++step) {
    if (f1 >= f2) {
      hi = x2, x2 = x1, f2 = f1;
      x1 = hi - kInvGolden * (hi - lo), f1 = f(x1);
    } else {
      lo = x1, x1 = x2, f1 = f2;
      x2 = lo + kInvGolden * (hi - lo), f2 = f(x2);
    }
  }
  return 0.5 * (lo + hi);
}

}  // namespace bglmm::steps
