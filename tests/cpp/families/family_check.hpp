// Shared checks of a Glm<Family, Link> pair: score = d log_lik / d eta (central finite
// differences), Fisher weight = E_y[-d score / d eta] (finite differences of the score
// averaged over the exact distribution of y), E_y[score] = 0, log_kernel differing from
// log_lik by a term free of eta, and finiteness for eta in {-700, ..., 700}.
#pragma once
#include <cmath>
#include <cstdio>
#include <functional>
#include <utility>
#include <vector>

#include "check.hpp"

namespace bglmm::testing {

constexpr double kFdStep = 1e-5;

template <typename F>
double central_difference(F f, double x, double h = kFdStep) {
  const double xp = x + h, xm = x - h;
  return (f(xp) - f(xm)) / (xp - xm);
}

// score vs the central difference of log_lik. The difference has truncation error
// ~h^2 |f'''| / 6 and rounding error ~eps |log_lik| / h = 2.2e-11 |log_lik|; hence the
// tolerance 1e-6 |score| + 1e-10 |log_lik| + 1e-9 (absolute floor for score ~ 0).
template <typename G, typename P>
void check_score_fd(double y, double n, double eta, const P& phi) {
  const auto f = [&](double e) { return G::log_lik(y, n, e, phi); };
  const double fd = central_difference(f, eta), s = G::score(y, n, eta, phi);
  const double tol = 1e-6 * std::fabs(s) + 1e-10 * std::fabs(f(eta)) + 1e-9;
  if (!(std::fabs(fd - s) <= tol))
    std::printf("  score(y=%g, n=%g, eta=%g) = %.17g, finite difference %.17g\n", y, n, eta, s,
                fd);
  CHECK(std::fabs(fd - s) <= tol);
}

// The distribution of y as (value, probability) pairs; summed over in expectations.
using Support = std::vector<std::pair<double, double>>;

// The pmf of a count family with no trials on y = 0..y_max.
template <typename G, typename P>
Support count_support(double eta, const P& phi, int y_max) {
  Support ys;
  for (int y = 0; y <= y_max; ++y)
    ys.push_back({static_cast<double>(y), std::exp(G::log_lik(y, 1.0, eta, phi))});
  return ys;
}

// weight = E[-d score/d eta] = E[score^2] and E[score] = 0 under y ~ support.
template <typename G, typename P>
void check_weight_expectation(const Support& ys, double n, double eta, const P& phi) {
  double e_neg_dscore = 0.0, e_score = 0.0, e_score2 = 0.0, scale = 0.0;
  for (const auto& [y, p] : ys) {
    const auto s = [&](double e) { return G::score(y, n, e, phi); };
    e_neg_dscore -= p * central_difference(s, eta);
    const double sc = s(eta);
    e_score += p * sc;
    e_score2 += p * sc * sc;
    scale += p * std::fabs(sc);
  }
  const double w = G::weight(n, eta, phi);
  CHECK_NEAR(e_neg_dscore, w, 1e-6 * w + 1e-9);
  CHECK_NEAR(e_score2, w, 1e-10 * w + 1e-12);
  CHECK_NEAR(e_score, 0.0, 1e-12 * (1.0 + scale));
}

// log_lik - log_kernel does not depend on eta (MH ratios may use the kernel).
template <typename G, typename P>
void check_kernel(double y, double n, const P& phi) {
  const double c0 = G::log_lik(y, n, 0.0, phi) - G::log_kernel(y, n, 0.0, phi);
  for (double eta : {-3.0, -0.5, 0.7, 2.0}) {
    const double c = G::log_lik(y, n, eta, phi) - G::log_kernel(y, n, eta, phi);
    CHECK_NEAR(c, c0, 1e-12 * (1.0 + std::fabs(c0) + std::fabs(G::log_lik(y, n, eta, phi))));
  }
}

inline const std::vector<double>& extreme_etas() {
  static const std::vector<double> etas = {-700.0, -100.0, -30.0, 0.0, 30.0, 100.0, 700.0};
  return etas;
}

// log_lik, score, weight finite at every extreme eta for each (y, n).
template <typename G, typename P>
void check_finite(const std::vector<std::pair<double, double>>& y_n, const P& phi) {
  for (double eta : extreme_etas())
    for (const auto& [y, n] : y_n) {
      const double ll = G::log_lik(y, n, eta, phi), s = G::score(y, n, eta, phi),
                   w = G::weight(n, eta, phi);
      const bool ok = std::isfinite(ll) && std::isfinite(s) && std::isfinite(w) && w >= 0.0 &&
                      std::isfinite(G::log_kernel(y, n, eta, phi));
      if (!ok)
        std::printf("  not finite at y=%g n=%g eta=%g: log_lik %g score %g weight %g\n", y, n,
                    eta, ll, s, w);
      CHECK(ok);
    }
}

}  // namespace bglmm::testing
