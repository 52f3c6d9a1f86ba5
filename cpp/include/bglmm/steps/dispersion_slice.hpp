// bglmm/steps/dispersion_slice.hpp — the update of a GLM family's dispersion phi (negative
// binomial / beta-binomial phi, gamma shape) given everything else: one slice-sampling step
// (slice.hpp) on u = log phi, whose target is log_lik(e^u) + log prior(e^u) + u (Jacobian).
// Prior kinds: Gamma(shape a, rate b) on phi, density phi^(a-1) e^(-b phi) (brms's default for
// these families is a = b = 0.01); or phi fixed at a (no update).
#pragma once
#include <cmath>
#include <limits>

#include "bglmm/error.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/slice.hpp"

namespace bglmm::steps {

enum class DispersionPriorKind : int { Gamma = 0, Fixed = 1 };

struct DispersionPrior {
  DispersionPriorKind kind = DispersionPriorKind::Gamma;
  double a = 0.01;  // Gamma shape, or the fixed value
  double b = 0.01;  // Gamma rate
};

// phi is kept in [e^-40, e^40] (4e-18 to 2e17): beyond, the target is -inf, so that the log
// likelihood is never evaluated where lgamma(y + phi) - lgamma(phi) has lost all its digits.
constexpr double kMaxAbsLogPhi = 40.0;

inline void check_dispersion_prior(const DispersionPrior& p) {
  check_positive("dispersion prior", "a", p.a);
  if (p.kind == DispersionPriorKind::Gamma) check_positive("dispersion prior", "rate", p.b);
  else if (p.kind != DispersionPriorKind::Fixed)
    throw std::invalid_argument("dispersion prior: unknown kind");
}

// log prior density of u = log phi (Jacobian included), up to a constant.
inline double dispersion_log_prior(const DispersionPrior& p, double u) {
  return p.a * u - p.b * std::exp(u);
}

// The log target of u = log phi for log_lik(phi), -inf outside the kept range or where the
// log-likelihood is not finite.
template <typename LogLik>
double dispersion_log_target(LogLik&& log_lik, const DispersionPrior& p, double u) {
  if (!(std::fabs(u) <= kMaxAbsLogPhi)) return -std::numeric_limits<double>::infinity();
  const double out = log_lik(std::exp(u)) + dispersion_log_prior(p, u);
  return std::isfinite(out) ? out : -std::numeric_limits<double>::infinity();
}

// The phi maximising log_lik(phi) plus the log prior of u = log phi: golden-section search on u
// in [-15, 15] to a width of 1e-6 (the conditional is unimodal for these families); the fixed
// value if the prior fixes phi.
template <typename LogLik>
double dispersion_mode(LogLik&& log_lik, const DispersionPrior& p) {
  if (p.kind == DispersionPriorKind::Fixed) return p.a;
  const auto f = [&](double u) { return dispersion_log_target(log_lik, p, u); };
  constexpr double kInvGolden = 0.6180339887498949;
  double lo = -15.0, hi = 15.0;
  double x1 = hi - kInvGolden * (hi - lo), x2 = lo + kInvGolden * (hi - lo);
  double f1 = f(x1), f2 = f(x2);
  while (hi - lo > 1e-6) {  // 36 steps from the width 30
    if (f1 >= f2) {
      hi = x2, x2 = x1, f2 = f1;
      x1 = hi - kInvGolden * (hi - lo), f1 = f(x1);
    } else {
      lo = x1, x1 = x2, f1 = f2;
      x2 = lo + kInvGolden * (hi - lo), f2 = f(x2);
    }
  }
  return std::exp(0.5 * (lo + hi));
}

// One update of phi (returns the new value; phi itself when the prior fixes it).
template <typename LogLik>
double dispersion_slice_step(LogLik&& log_lik, double phi, const DispersionPrior& p,
                             rng::Rng& rng, double width = 1.0) {
  if (p.kind == DispersionPriorKind::Fixed) return p.a;
  const auto target = [&](double u) { return dispersion_log_target(log_lik, p, u); };
  return std::exp(slice_step(target, std::log(phi), width, rng));
}

}  // namespace bglmm::steps
