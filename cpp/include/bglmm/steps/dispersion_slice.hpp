// bglmm/steps/dispersion_slice.hpp — the update of a GLM family's dispersion phi (negative
// binomial / beta-binomial phi, gamma shape) given everything else: one slice-sampling step
// (slice.hpp) on u = log phi, whose target is log_lik(e^u) + log prior(e^u) + u (Jacobian).
// Prior kinds: Gamma(shape a, rate b) on phi, density phi^(a-1) e^(-b phi) (brms's default for
// these families is a = b = 0.01); phi fixed at a (no update); or Beta(a, b) on the probability
// phi / (1 + phi) (the zero-inflated Poisson's phi is the odds of a structural zero), whose
// density on u = log phi = logit zi is zi^a (1 - zi)^b, i.e. a u - (a + b) log(1 + e^u); or a
// half-Student-t(df a, scale b) on phi (the Student-t family's scale sigma), whose log density
// on u is -(a + 1)/2 log(1 + e^(2u) / (a b^2)) + u.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>

#include "bglmm/error.hpp"
#include "bglmm/rng/distributions.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/golden_section.hpp"
#include "bglmm/steps/slice.hpp"

namespace bglmm::steps {

enum class DispersionPriorKind : int { Gamma = 0, Fixed = 1, BetaOdds = 2, HalfStudentT = 3 };

struct DispersionPrior {
  DispersionPriorKind kind = DispersionPriorKind::Gamma;
  double a = 0.01;  // Gamma shape, Beta's first shape, half-t df, or the fixed value
  double b = 0.01;  // Gamma rate, Beta's second shape, or half-t scale
};

// phi is kept in [e^-40, e^40] (4e-18 to 2e17): beyond, the target is -inf, so that the log
// likelihood is never evaluated where lgamma(y + phi) - lgamma(phi) has lost all its digits.
constexpr double kMaxAbsLogPhi = 40.0;

inline void check_dispersion_prior(const DispersionPrior& p) {
  check_positive("dispersion prior", "a", p.a);
  if (p.kind == DispersionPriorKind::Gamma) check_positive("dispersion prior", "rate", p.b);
  else if (p.kind == DispersionPriorKind::BetaOdds) check_positive("dispersion prior", "b", p.b);
  else if (p.kind == DispersionPriorKind::HalfStudentT)
    check_positive("dispersion prior", "scale", p.b);
  else if (p.kind != DispersionPriorKind::Fixed)
    throw std::invalid_argument("dispersion prior: unknown kind");
}

// The prior from the codes the bindings receive (kind 0 Gamma, 1 fixed, 2 Beta on the odds'
// probability), checked.
inline DispersionPrior dispersion_prior_from_code(int kind, double a, double b) {
  if (kind < 0 || kind > 3)
    throw std::invalid_argument(
        concat("dispersion prior: kind must be 0 (Gamma), 1 (fixed), 2 (Beta on "
               "phi / (1 + phi)) or 3 (half-Student-t), got ", kind));
  const DispersionPrior out{static_cast<DispersionPriorKind>(kind), a, b};
  check_dispersion_prior(out);
  return out;
}

// log prior density of u = log phi (Jacobian included), up to a constant.
inline double dispersion_log_prior(const DispersionPrior& p, double u) {
  if (p.kind == DispersionPriorKind::BetaOdds) {
    const double softplus = u > 0.0 ? u + std::log1p(std::exp(-u)) : std::log1p(std::exp(u));
    return p.a * u - (p.a + p.b) * softplus;
  }
  if (p.kind == DispersionPriorKind::HalfStudentT) {
    const double z = std::exp(u) / p.b;
    return -0.5 * (p.a + 1.0) * std::log1p(z * z / p.a) + u;
  }
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
  return std::exp(golden_section_argmax(f, -15.0, 15.0, 1e-6));  // 36 steps from the width 30
}

// One draw of phi from its prior (the Geweke simulators' and prior draws' start).
inline double dispersion_prior_rng(const DispersionPrior& p, rng::Rng& rng) {
  switch (p.kind) {
    case DispersionPriorKind::Fixed: return p.a;
    case DispersionPriorKind::BetaOdds: {
      const double zi = rng::beta_rng(p.a, p.b, rng);
      return zi / (1.0 - zi);
    }
    case DispersionPriorKind::HalfStudentT:
      return p.b * std::fabs(rng.std_normal()) / std::sqrt(rng::chi_square_rng(p.a, rng) / p.a);
    case DispersionPriorKind::Gamma: break;
  }
  return rng::gamma_rng(p.a, p.b, rng);
}

// The slice width of a parameter's step on its log, learned in warm-up: 2.5 SDs of the draws
// of the log (Welford moments), within [1e-3, 1]; the initial width 1 until 20 of them. Any fixed
// width leaves the target invariant; one near the conditional's scale takes the fewest
// likelihood passes.
struct SliceWidth {
  double width = 1.0;
  double count = 0.0, mean = 0.0, m2 = 0.0;
  void learn(double u) {
    const double delta = u - mean;
    count += 1.0;
    mean += delta / count;
    m2 += delta * (u - mean);
    if (count >= 20.0) width = std::min(1.0, std::max(1e-3, 2.5 * std::sqrt(m2 / (count - 1.0))));
  }
};

// One update of phi (returns the new value; phi itself when the prior fixes it).
template <typename LogLik>
double dispersion_slice_step(LogLik&& log_lik, double phi, const DispersionPrior& p,
                             rng::Rng& rng, double width = 1.0) {
  if (p.kind == DispersionPriorKind::Fixed) return p.a;
  const auto target = [&](double u) { return dispersion_log_target(log_lik, p, u); };
  return std::exp(slice_step(target, std::log(phi), width, rng));
}

}  // namespace bglmm::steps
