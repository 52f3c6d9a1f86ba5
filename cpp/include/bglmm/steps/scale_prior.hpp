// bglmm/steps/scale_prior.hpp — Gibbs/slice update of the variance tau^2 of m one-dimensional
// effects u_j ~ N(0, tau^2) given their sum of squares ss = sum_j u_j^2, under a choice of prior.
//   Inverse-Gamma(a, b) on tau^2:  tau^2 | ss ~ IG(a + m/2, b + ss/2)            (conjugate, exact)
//   Half-Student-t(nu, s) on tau:  parameter expansion of Wand et al. (2011, Bayesian Analysis 6,
//     Result 5): tau^2 | c ~ IG(nu/2, nu/c), c ~ IG(1/2, 1/s^2) gives tau ~ half-t(nu, s); one
//     update draws c | tau^2 ~ IG((nu+1)/2, nu/tau^2 + 1/s^2), then tau^2 | c, ss ~
//     IG((nu+m)/2, nu/c + ss/2). Both draws are exact; c needs no storage (its conditional
//     depends on tau^2 only), so the step is a function of the current tau^2 alone.
//   Uniform(0, U) on tau (Gelman 2006): U = inf gives tau^2 | ss ~ IG((m-1)/2, ss/2) (needs m >= 2);
//     finite U and the half-normal(s) prior on tau use a slice sampler on log tau (Neal 2003,
//     stepping out + shrinkage), a reversible kernel leaving the exact conditional invariant.
// A flat prior on log tau is not offered: it makes the posterior improper (Gelman 2006).
#pragma once
#include <cmath>
#include <limits>
#include <stdexcept>

#include "bglmm/error.hpp"
#include "bglmm/rng/distributions.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/slice.hpp"

namespace bglmm::steps {

enum class ScalePriorKind : int { InverseGamma = 0, HalfStudentT = 1, Uniform = 2, HalfNormal = 3 };

// a, b mean: InverseGamma (shape, scale) on tau^2; HalfStudentT (df, scale) on tau;
// Uniform (unused, upper bound U, may be +inf) on tau; HalfNormal (unused, scale) on tau.
struct ScalePrior {
  ScalePriorKind kind = ScalePriorKind::InverseGamma;
  double a = 1.0;
  double b = 1.0;
};

inline ScalePrior make_scale_prior(int kind, double a, double b) {
  const char* fn = "scale prior";
  ScalePrior p{static_cast<ScalePriorKind>(kind), a, b};
  switch (p.kind) {
    case ScalePriorKind::InverseGamma:
    case ScalePriorKind::HalfStudentT:
      check_positive(fn, "first parameter", a);
      check_positive(fn, "second parameter", b);
      break;
    case ScalePriorKind::Uniform:
      if (!(b > 0.0)) throw std::invalid_argument("scale prior: uniform upper bound must be > 0");
      break;
    case ScalePriorKind::HalfNormal:
      check_positive(fn, "scale", b);
      break;
    default:
      throw std::invalid_argument(concat("scale prior: unknown kind ", kind));
  }
  return p;
}

// log prior density of tau (up to a constant), tau > 0.
inline double scale_prior_log_density(const ScalePrior& p, double tau) {
  if (!(tau > 0.0)) return -std::numeric_limits<double>::infinity();
  switch (p.kind) {
    case ScalePriorKind::InverseGamma: {  // density of tau^2 times |d tau^2 / d tau| = 2 tau
      const double v = tau * tau;
      return -(p.a + 1.0) * std::log(v) - p.b / v + std::log(tau);
    }
    case ScalePriorKind::HalfStudentT: {
      const double r = tau / p.b;
      return -0.5 * (p.a + 1.0) * std::log1p(r * r / p.a);
    }
    case ScalePriorKind::Uniform:
      return tau < p.b ? 0.0 : -std::numeric_limits<double>::infinity();
    case ScalePriorKind::HalfNormal: {
      const double r = tau / p.b;
      return -0.5 * r * r;
    }
  }
  return -std::numeric_limits<double>::infinity();
}

namespace detail {
// log density of x = log tau given ss and m (likelihood tau^-m exp(-ss / (2 tau^2)), prior,
// Jacobian tau).
inline double log_tau_conditional(const ScalePrior& p, double ss, double m, double x) {
  const double tau = std::exp(x);
  const double lp = scale_prior_log_density(p, tau);
  if (!std::isfinite(lp)) return lp;
  return -m * x - 0.5 * ss * std::exp(-2.0 * x) + lp + x;
}

inline double slice_log_tau(const ScalePrior& p, double ss, double m, double x0, rng::Rng& rng) {
  return slice_step([&](double x) { return log_tau_conditional(p, ss, m, x); }, x0, 1.0, rng);
}
}  // namespace detail

// One draw of tau^2 from its conditional given ss = sum of m squared effects and the current
// tau^2 (used by the half-t expansion and the slice sampler).
inline double draw_variance(const ScalePrior& p, double ss, double m, double current,
                            rng::Rng& rng) {
  if (!(ss >= 0.0) || !std::isfinite(ss))
    throw NumericalError(concat("scale step: sum of squares is ", ss));
  switch (p.kind) {
    case ScalePriorKind::InverseGamma:
      return rng::inv_gamma_rng(p.a + 0.5 * m, p.b + 0.5 * ss, rng);
    case ScalePriorKind::HalfStudentT: {
      const double c = rng::inv_gamma_rng(0.5 * (p.a + 1.0), p.a / current + 1.0 / (p.b * p.b), rng);
      return rng::inv_gamma_rng(0.5 * (p.a + m), p.a / c + 0.5 * ss, rng);
    }
    case ScalePriorKind::Uniform:
      if (std::isinf(p.b)) {
        if (!(m > 1.0))
          throw std::invalid_argument(
              "scale step: a flat prior on the SD needs at least 2 effects");
        if (!(ss > 0.0)) throw NumericalError("scale step: all effects are equal");
        return rng::inv_gamma_rng(0.5 * (m - 1.0), 0.5 * ss, rng);
      }
      [[fallthrough]];
    case ScalePriorKind::HalfNormal: {
      double x0 = 0.5 * std::log(current);
      if (!std::isfinite(detail::log_tau_conditional(p, ss, m, x0))) {
        // Start inside the support (e.g. current tau above the uniform bound).
        x0 = std::log(0.5 * p.b);
      }
      const double x = detail::slice_log_tau(p, ss, m, x0, rng);
      return std::exp(2.0 * x);
    }
  }
  throw std::invalid_argument("scale step: unknown prior");
}

}  // namespace bglmm::steps
