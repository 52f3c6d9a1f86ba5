// Tests of steps/scale_prior.hpp: each prior's chain of tau^2 draws at fixed (ss, m) must have
// the exact conditional p(tau | ss) as its stationary law. Reference moments come from
// trapezoidal quadrature of the conditional density written out here independently; the
// tolerance is 4 Monte-Carlo standard errors from batch means (50 batches), so a correct step
// fails with probability ~1e-4 and a wrong conditional (e.g. a df or scale off by a factor
// of 2, which moves E[tau] by > 10%) fails for sure at these sizes.
#include <cmath>
#include <functional>
#include <vector>

#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/scale_prior.hpp"
#include "check.hpp"

using bglmm::steps::ScalePrior;
using bglmm::steps::ScalePriorKind;

namespace {

struct Moments {
  double mean, mcse;
};

Moments chain_mean_tau(const ScalePrior& prior, double ss, double m, std::int64_t n) {
  std::vector<double> tau(static_cast<std::size_t>(n));
  double v = 1.0;
  for (std::int64_t i = 0; i < n; ++i) {
    bglmm::rng::Rng rng(bglmm::rng::ChainKey{42, 0}, static_cast<std::uint64_t>(i), 0,
                        bglmm::rng::Stream::Test);
    v = bglmm::steps::draw_variance(prior, ss, m, v, rng);
    tau[static_cast<std::size_t>(i)] = std::sqrt(v);
  }
  const int batches = 50;
  const std::int64_t size = n / batches;
  double total = 0.0;
  std::vector<double> bm(batches, 0.0);
  for (int b = 0; b < batches; ++b) {
    for (std::int64_t i = 0; i < size; ++i) bm[b] += tau[static_cast<std::size_t>(b * size + i)];
    bm[b] /= static_cast<double>(size);
    total += bm[b];
  }
  const double mean = total / batches;
  double var = 0.0;
  for (double x : bm) var += (x - mean) * (x - mean);
  var /= (batches - 1);
  return {mean, std::sqrt(var / batches)};
}

// E[tau] under density exp(logf(tau)) on (0, upper) by the trapezoid rule on a fine grid.
double quadrature_mean(const std::function<double(double)>& logf, double upper) {
  const int n = 200000;
  const double h = upper / n;
  double z = 0.0, t1 = 0.0;
  for (int i = 1; i < n; ++i) {
    const double t = i * h;
    const double f = std::exp(logf(t));
    z += f;
    t1 += t * f;
  }
  return t1 / z;
}

}  // namespace

TEST_CASE("inverse-gamma prior: conjugate conditional") {
  const ScalePrior prior = bglmm::steps::make_scale_prior(0, 2.0, 3.0);
  const double ss = 7.0, m = 6.0;
  auto logf = [&](double t) {  // IG(a + m/2, b + ss/2) on t^2, times 2t
    const double a = 2.0 + m / 2, b = 3.0 + ss / 2;
    return -(a + 1) * std::log(t * t) - b / (t * t) + std::log(t);
  };
  const Moments mo = chain_mean_tau(prior, ss, m, 200000);
  CHECK_NEAR(mo.mean, quadrature_mean(logf, 50.0), 4 * mo.mcse);
}

TEST_CASE("half-Cauchy and half-t priors: parameter expansion") {
  for (double nu : {1.0, 4.0}) {
    const double s = 2.0, ss = 3.0, m = 4.0;
    const ScalePrior prior = bglmm::steps::make_scale_prior(1, nu, s);
    auto logf = [&](double t) {
      return -m * std::log(t) - ss / (2 * t * t) - 0.5 * (nu + 1) * std::log1p(t * t / (nu * s * s));
    };
    const Moments mo = chain_mean_tau(prior, ss, m, 200000);
    CHECK_NEAR(mo.mean, quadrature_mean(logf, 400.0), 4 * mo.mcse);
  }
}

TEST_CASE("uniform prior on the SD: conjugate when unbounded, slice when bounded") {
  const double ss = 5.0, m = 5.0;
  auto logf = [&](double t) { return -m * std::log(t) - ss / (2 * t * t); };
  const Moments free = chain_mean_tau(bglmm::steps::make_scale_prior(2, 0.0, INFINITY), ss, m, 200000);
  CHECK_NEAR(free.mean, quadrature_mean(logf, 400.0), 4 * free.mcse);
  const Moments bounded = chain_mean_tau(bglmm::steps::make_scale_prior(2, 0.0, 1.2), ss, m, 200000);
  CHECK_NEAR(bounded.mean, quadrature_mean(logf, 1.2), 4 * bounded.mcse);
}

TEST_CASE("half-normal prior: slice sampler") {
  const double s = 0.7, ss = 2.0, m = 3.0;
  auto logf = [&](double t) { return -m * std::log(t) - ss / (2 * t * t) - t * t / (2 * s * s); };
  const Moments mo = chain_mean_tau(bglmm::steps::make_scale_prior(3, 0.0, s), ss, m, 200000);
  CHECK_NEAR(mo.mean, quadrature_mean(logf, 20.0), 4 * mo.mcse);
}

TEST_CASE("invalid priors and inputs throw") {
  CHECK_THROWS(bglmm::steps::make_scale_prior(0, -1.0, 1.0));
  CHECK_THROWS(bglmm::steps::make_scale_prior(1, 1.0, 0.0));
  CHECK_THROWS(bglmm::steps::make_scale_prior(2, 0.0, -1.0));
  CHECK_THROWS(bglmm::steps::make_scale_prior(7, 1.0, 1.0));
  bglmm::rng::Rng rng(bglmm::rng::ChainKey{1, 0}, 0, 0, bglmm::rng::Stream::Test);
  const ScalePrior flat = bglmm::steps::make_scale_prior(2, 0.0, INFINITY);
  CHECK_THROWS(bglmm::steps::draw_variance(flat, 1.0, 1.0, 1.0, rng));
  CHECK_THROWS(bglmm::steps::draw_variance(flat, std::nan(""), 3.0, 1.0, rng));
}

BGLMM_TEST_MAIN()
