// Shared checks of a link with the stable log forms (logit, probit, cloglog): a table of
// reference values (mpmath, 60 digits: script /tests/cpp/links/make_link_tables.py), central
// finite differences of linkinv / log_mu / log1m_mu against dmu_deta / dlog_mu / dlog1m_mu,
// internal identities, round trips through link(), and finiteness for |eta| <= 700.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "check.hpp"

namespace bglmm::testing {

struct LinkRow {
  double eta, mu, dmu, log_mu, log1m_mu, dlog_mu, dlog1m_mu;
};

// |a - b| <= rtol |b| + 1e-300 (values that underflow in double are tabulated as 0).
#define CHECK_REL(a, b, rtol) CHECK_NEAR(a, b, (rtol) * std::fabs(b) + 1e-300)

template <typename Link>
void check_link_table(const std::vector<LinkRow>& rows, double rtol) {
  for (const auto& r : rows) {
    CHECK_REL(Link::linkinv(r.eta), r.mu, rtol);
    CHECK_REL(Link::dmu_deta(r.eta), r.dmu, rtol);
    CHECK_REL(Link::log_mu(r.eta), r.log_mu, rtol);
    CHECK_REL(Link::log1m_mu(r.eta), r.log1m_mu, rtol);
    CHECK_REL(Link::dlog_mu(r.eta), r.dlog_mu, rtol);
    CHECK_REL(Link::dlog1m_mu(r.eta), r.dlog1m_mu, rtol);
  }
}

// Central difference (f(x + h) - f(x - h)) / (x_+ - x_-) with the step actually taken.
template <typename F>
double central_difference(F f, double x, double h = 1e-5) {
  const double xp = x + h, xm = x - h;
  return (f(xp) - f(xm)) / (xp - xm);
}

// Derivative vs central difference. With the step h = 1e-5 / max(1, |f'/f|) (these
// functions vary on the scale |f / f'|, e.g. exp(-exp(eta)) in the cloglog tail), the
// truncation error h^2 f'''/6 is ~2e-11 relative and the rounding error eps |f| / h is at
// most 2.2e-11 (|f| + |f'|); so the tolerance is 1e-7 |f'| + 1e-10 |f| (+1e-300 for underflow).
template <typename F, typename D>
void check_derivative(F f, D d, double x, const char* what) {
  const double exact = d(x), fx = f(x);
  const double scale = fx != 0.0 ? std::fabs(exact / fx) : 1.0;
  const double fd = central_difference(f, x, 1e-5 / std::max(1.0, scale));
  const double tol = 1e-7 * std::fabs(exact) + 1e-10 * std::fabs(fx) + 1e-300;
  if (!(std::fabs(fd - exact) <= tol))
    std::printf("  derivative %s at eta = %g: %.17g vs finite difference %.17g\n", what, x, exact,
                fd);
  CHECK(std::fabs(fd - exact) <= tol);
}

inline std::vector<double> fd_grid() {
  std::vector<double> g;
  for (double x = -30.0; x <= 30.0; x += 0.73) g.push_back(x);
  for (double x : {-1e-3, 0.0, 1e-3, 0.5, -0.5}) g.push_back(x);
  return g;
}

template <typename Link>
void check_link_derivatives() {
  for (double x : fd_grid()) {
    check_derivative(Link::linkinv, Link::dmu_deta, x, "dmu_deta");
    check_derivative(Link::log_mu, Link::dlog_mu, x, "dlog_mu");
    check_derivative(Link::log1m_mu, Link::dlog1m_mu, x, "dlog1m_mu");
  }
}

// exp(log_mu) = mu, exp(log1m_mu) = 1 - mu (where 1 - mu is not a cancellation),
// dlog_mu * mu = dmu_deta = -dlog1m_mu * (1 - mu); mu increasing in eta.
template <typename Link>
void check_link_identities() {
  double previous = -1.0;
  for (double x = -35.0; x <= 35.0; x += 0.05) {
    const double mu = Link::linkinv(x);
    CHECK(mu >= previous);
    previous = mu;
    CHECK_REL(std::exp(Link::log_mu(x)), mu, 1e-13 * (1.0 + std::fabs(Link::log_mu(x))));
    if (mu < 0.5) {
      CHECK_REL(std::exp(Link::log1m_mu(x)), 1.0 - mu, 1e-14);
      CHECK_REL(Link::dlog_mu(x) * mu, Link::dmu_deta(x), 1e-12);
    } else {
      CHECK_REL(-Link::dlog1m_mu(x) * std::exp(Link::log1m_mu(x)), Link::dmu_deta(x), 1e-12);
    }
  }
}

// link(linkinv(eta)) = eta while mu is not rounded to 1; link(0.5) etc.
template <typename Link>
void check_link_round_trip(double lo, double hi) {
  for (double x = lo; x <= hi; x += 0.25) {
    const double mu = Link::linkinv(x);
    // d eta = d mu / (dmu/deta); mu carries relative error eps, hence the tolerance
    const double tol = 4e-16 * mu / Link::dmu_deta(x) + 1e-13 * (1.0 + std::fabs(x));
    CHECK_NEAR(Link::link(mu), x, tol);
  }
  CHECK(std::isinf(Link::link(0.0)) && Link::link(0.0) < 0.0);
  CHECK(std::isinf(Link::link(1.0)) && Link::link(1.0) > 0.0);
}

// Every function is finite (no inf / NaN) with the right sign for |eta| <= 700.
template <typename Link>
void check_link_finite() {
  for (double x : {-700.0, -500.0, -100.0, -37.5, -30.0, -1.0, 0.0, 1.0, 30.0, 37.5, 100.0,
                   500.0, 700.0}) {
    const double mu = Link::linkinv(x);
    CHECK(std::isfinite(mu) && mu >= 0.0 && mu <= 1.0);
    CHECK(std::isfinite(Link::dmu_deta(x)) && Link::dmu_deta(x) >= 0.0);
    CHECK(std::isfinite(Link::log_mu(x)) && Link::log_mu(x) <= 0.0);
    CHECK(std::isfinite(Link::log1m_mu(x)) && Link::log1m_mu(x) <= 0.0);
    CHECK(std::isfinite(Link::dlog_mu(x)) && Link::dlog_mu(x) >= 0.0);
    CHECK(std::isfinite(Link::dlog1m_mu(x)) && Link::dlog1m_mu(x) <= 0.0);
  }
  // beyond 700 nothing is NaN (values may saturate to 0, 1 or +-inf)
  for (double x : {-1e4, -800.0, -745.5, 710.0, 800.0, 1e4}) {
    CHECK(!std::isnan(Link::linkinv(x)) && !std::isnan(Link::dmu_deta(x)));
    CHECK(!std::isnan(Link::log_mu(x)) && !std::isnan(Link::log1m_mu(x)));
    CHECK(!std::isnan(Link::dlog_mu(x)) && !std::isnan(Link::dlog1m_mu(x)));
  }
}

}  // namespace bglmm::testing
