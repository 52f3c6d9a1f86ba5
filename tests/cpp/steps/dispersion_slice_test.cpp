// Tests of steps/dispersion_slice.hpp: with a likelihood of Gamma form, log_lik(phi) =
// k log phi - s phi, and the Gamma(a, b) prior, the exact conditional of phi is
// Gamma(a + k, b + s); the chain of slice steps must have it as its stationary law. Its mean
// and E[log phi] = psi(a + k) - log(b + s) are compared within 4.5 Monte-Carlo standard errors
// (batch means, 50 batches); a rate 15% off (the negative control) is rejected by the same
// test. The fixed prior returns its value; the target is -inf outside |log phi| <= 40.
#include <cmath>
#include <limits>
#include <vector>

#include "bglmm/families/special.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/dispersion_slice.hpp"
#include "check.hpp"

namespace st = bglmm::steps;

namespace {

struct Estimate {
  double mean, mcse;
};

Estimate batch_mean(const std::vector<double>& x) {
  const std::size_t batches = 50, size = x.size() / batches;
  std::vector<double> means(batches, 0.0);
  double total = 0.0;
  for (std::size_t b = 0; b < batches; ++b) {
    for (std::size_t i = 0; i < size; ++i) means[b] += x[b * size + i];
    means[b] /= static_cast<double>(size);
    total += means[b];
  }
  const double mean = total / static_cast<double>(batches);
  double ss = 0.0;
  for (double m : means) ss += (m - mean) * (m - mean);
  return {mean, std::sqrt(ss / static_cast<double>(batches - 1) / static_cast<double>(batches))};
}

std::vector<double> chain(const st::DispersionPrior& prior, double k, double s, std::int64_t n) {
  const auto log_lik = [&](double phi) { return k * std::log(phi) - s * phi; };
  std::vector<double> out(static_cast<std::size_t>(n));
  double phi = 1.0;
  for (std::int64_t t = 0; t < n; ++t) {
    bglmm::rng::Rng rng(bglmm::rng::ChainKey{9, 0}, static_cast<std::uint64_t>(t), 0,
                        bglmm::rng::Stream::Test);
    phi = st::dispersion_slice_step(log_lik, phi, prior, rng);
    out[static_cast<std::size_t>(t)] = phi;
  }
  return out;
}

}  // namespace

TEST_CASE("dispersion slice step: stationary law is the exact conditional") {
  const double k = 6.0, s = 2.5;
  for (const auto& [a, b] : {std::pair{0.01, 0.01}, std::pair{2.0, 0.5}}) {
    const std::vector<double> phi = chain({st::DispersionPriorKind::Gamma, a, b}, k, s, 200000);
    std::vector<double> log_phi(phi.size());
    for (std::size_t i = 0; i < phi.size(); ++i) log_phi[i] = std::log(phi[i]);
    const Estimate m = batch_mean(phi), l = batch_mean(log_phi);
    const double shape = a + k, rate = b + s;
    CHECK_NEAR(m.mean, shape / rate, 4.5 * m.mcse);
    CHECK_NEAR(l.mean, bglmm::families::digamma_ge1(shape) - std::log(rate), 4.5 * l.mcse);
    // negative control: the conditional with a 15% larger rate is rejected
    CHECK(std::fabs(m.mean - shape / (1.15 * rate)) > 4.5 * m.mcse);
  }
}

// The Beta prior on zi = phi / (1 + phi) with a binomial-form likelihood zi^k (1 - zi)^s: the
// exact conditional of zi is Beta(a + k, b + s).
TEST_CASE("dispersion slice step: Beta prior on the odds' probability") {
  const double k = 7.0, s = 30.0;
  const auto log_lik = [&](double phi) { return k * std::log(phi) - (k + s) * std::log1p(phi); };
  for (const auto& [a, b] : {std::pair{1.0, 1.0}, std::pair{0.5, 4.0}}) {
    const st::DispersionPrior prior{st::DispersionPriorKind::BetaOdds, a, b};
    std::vector<double> zi(200000);
    double phi = 1.0;
    for (std::size_t t = 0; t < zi.size(); ++t) {
      bglmm::rng::Rng rng(bglmm::rng::ChainKey{11, 0}, t, 0, bglmm::rng::Stream::Test);
      phi = st::dispersion_slice_step(log_lik, phi, prior, rng);
      zi[t] = phi / (1.0 + phi);
    }
    const Estimate m = batch_mean(zi);
    const double exact = (a + k) / (a + k + b + s);
    CHECK_NEAR(m.mean, exact, 4.5 * m.mcse);
    // negative control: the conditional under Beta(a + 2, b) is rejected
    CHECK(std::fabs(m.mean - (a + 2.0 + k) / (a + 2.0 + k + b + s)) > 4.5 * m.mcse);
  }
  CHECK_THROWS(st::check_dispersion_prior({st::DispersionPriorKind::BetaOdds, 1.0, 0.0}));
}

TEST_CASE("dispersion slice step: fixed value, support and prior checks") {
  const st::DispersionPrior fixed{st::DispersionPriorKind::Fixed, 3.5, 0.0};
  bglmm::rng::Rng rng(bglmm::rng::ChainKey{1, 0}, 0, 0, bglmm::rng::Stream::Test);
  CHECK(st::dispersion_slice_step([](double) { return 0.0; }, 1.0, fixed, rng) == 3.5);
  const st::DispersionPrior gamma{st::DispersionPriorKind::Gamma, 1.0, 1.0};
  const auto flat = [](double) { return 0.0; };
  CHECK(st::dispersion_log_target(flat, gamma, 41.0) == -std::numeric_limits<double>::infinity());
  CHECK(std::isfinite(st::dispersion_log_target(flat, gamma, -39.0)));
  const auto nan_lik = [](double) { return std::numeric_limits<double>::quiet_NaN(); };
  CHECK(st::dispersion_log_target(nan_lik, gamma, 0.0) == -std::numeric_limits<double>::infinity());
  CHECK_THROWS(st::check_dispersion_prior({st::DispersionPriorKind::Gamma, 0.0, 1.0}));
  CHECK_THROWS(st::check_dispersion_prior({st::DispersionPriorKind::Gamma, 1.0, -1.0}));
  CHECK_THROWS(st::check_dispersion_prior({st::DispersionPriorKind::Fixed, -1.0, 0.0}));
}

BGLMM_TEST_MAIN()
