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

// One update of phi (returns the new value; phi itself when the prior fixes it).
template <typename LogLik>
double dispersion_slice_step(LogLik&& log_lik, double phi, const DispersionPrior& p,
                             rng::Rng& rng) {
  if (p.kind == DispersionPriorKind::Fixed) return p.a;
  const auto target = [&](double u) { return dispersion_log_target(log_lik, p, u); };
  return std::exp(slice_step(target, std::log(phi), 1.0, rng));
}

}  // namespace bglmm::steps
