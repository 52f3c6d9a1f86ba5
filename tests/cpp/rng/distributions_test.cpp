// Scalar random variates of bglmm/rng/distributions.hpp: moments against exact formulas
// (within kZ = 4.5 Monte-Carlo standard errors at fixed seeds, see stat_check.hpp), chi-square
// goodness of fit where the CDF has a closed form, far-tail truncated normals, and invalid
// parameters that must throw.
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "bglmm/links/special.hpp"
#include "bglmm/rng/distributions.hpp"
#include "check.hpp"
#include "rng/stat_check.hpp"

namespace br = bglmm::rng;
namespace bt = bglmm::testing;
using br::Rng;
using br::Stream;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kDraws = 200000;

// n draws of f(rng) from one Rng keyed by `tag` (a different stream per test case).
std::vector<double> sample(std::uint64_t tag, const std::function<double(Rng&)>& f,
                           int n = kDraws) {
  Rng rng({20261121, tag}, 0, 0, Stream::Test);
  std::vector<double> out(static_cast<std::size_t>(n));
  for (auto& v : out) v = f(rng);
  return out;
}

std::vector<double> logs(const std::vector<double>& x) {
  std::vector<double> out;
  for (double v : x) out.push_back(std::log(v));
  return out;
}

TEST_CASE("gamma(shape, rate) mean and variance for shapes 0.01 .. 100") {
  const double rate = 2.5;
  std::uint64_t tag = 1;
  for (double shape : {0.01, 0.5, 1.0, 3.7, 100.0}) {
    const auto x = sample(tag++, [&](Rng& r) { return br::gamma_rng(shape, rate, r); });
    CHECK_MEAN(x, shape / rate);
    CHECK_VARIANCE(x, shape / (rate * rate));
  }
}

TEST_CASE("log of gamma draws: E = digamma(shape), Var = trigamma(shape)") {
  // log G is the sharp check for tiny shapes, where G's mean is dominated by rare draws.
  std::uint64_t tag = 10;
  for (double shape : {0.01, 0.1, 0.5, 1.0, 3.7, 100.0}) {
    const auto lx = sample(tag++, [&](Rng& r) { return br::log_gamma_rng(shape, r); });
    CHECK_MEAN(lx, bt::digamma(shape));
    CHECK_VARIANCE(lx, bt::trigamma(shape));
  }
  // gamma_rng(shape, rate) = exp(log_gamma_rng) / rate, so log moments shift by -log(rate)
  const auto x = sample(17, [&](Rng& r) { return br::gamma_rng(3.7, 0.2, r); });
  CHECK_MEAN(logs(x), bt::digamma(3.7) - std::log(0.2));
}

TEST_CASE("gamma with integer/half-integer shape passes a chi-square GOF test") {
  // Gamma(k/2, rate 1/2) is chi-square(k), whose CDF stat_check.hpp has in closed form.
  std::uint64_t tag = 20;
  for (int k : {1, 2, 3, 8, 31}) {
    const auto x = sample(tag++, [&](Rng& r) { return br::gamma_rng(0.5 * k, 0.5, r); });
    std::vector<double> edges;
    const double hi = k + 6.0 * std::sqrt(2.0 * k);
    for (int b = 1; b < 40; ++b) edges.push_back(hi * b / 40.0);
    const double p = bt::chi_square_gof_pvalue(
        x, [k](double q) { return bt::chi_square_cdf(q, k); }, edges);
    CHECK(p > 1e-4);
  }
}

TEST_CASE("chi_square(df) mean df, variance 2 df, and GOF") {
  std::uint64_t tag = 30;
  for (double df : {0.3, 1.0, 4.0, 25.0}) {
    const auto x = sample(tag++, [&](Rng& r) { return br::chi_square_rng(df, r); });
    CHECK_MEAN(x, df);
    CHECK_VARIANCE(x, 2.0 * df);
  }
  const auto x = sample(35, [&](Rng& r) { return br::chi_square_rng(5.0, r); });
  std::vector<double> edges;
  for (int b = 1; b < 30; ++b) edges.push_back(b * 0.6);
  CHECK(bt::chi_square_gof_pvalue(x, [](double q) { return bt::chi_square_cdf(q, 5); }, edges) >
        1e-4);
}

TEST_CASE("exponential(rate) mean 1/rate, variance 1/rate^2 and GOF") {
  const double rate = 3.0;
  const auto x = sample(40, [&](Rng& r) { return br::exponential_rng(rate, r); });
  CHECK_MEAN(x, 1.0 / rate);
  CHECK_VARIANCE(x, 1.0 / (rate * rate));
  std::vector<double> edges;
  for (int b = 1; b < 30; ++b) edges.push_back(b * 0.07);
  CHECK(bt::chi_square_gof_pvalue(x, [&](double q) { return -std::expm1(-rate * q); }, edges) >
        1e-4);
}

TEST_CASE("inv_gamma(shape, scale): moments, and 1/X ~ Gamma(shape, rate = scale)") {
  // variance of the sample variance needs E X^8 < inf, so shape 10 for the variance check
  {
    const double a = 10.0, s = 2.0;
    const auto x = sample(50, [&](Rng& r) { return br::inv_gamma_rng(a, s, r); });
    CHECK_MEAN(x, s / (a - 1.0));
    CHECK_VARIANCE(x, s * s / ((a - 1.0) * (a - 1.0) * (a - 2.0)));
  }
  {
    const double a = 3.0, s = 0.7;
    const auto x = sample(51, [&](Rng& r) { return br::inv_gamma_rng(a, s, r); });
    CHECK_MEAN(x, s / (a - 1.0));
  }
  for (double a : {0.3, 2.5}) {
    const double s = 4.0;
    auto x = sample(52, [&](Rng& r) { return br::inv_gamma_rng(a, s, r); });
    for (auto& v : x) v = 1.0 / v;
    CHECK_MEAN(x, a / s);
    CHECK_VARIANCE(x, a / (s * s));
    CHECK_MEAN(logs(x), bt::digamma(a) - std::log(s));
  }
}

TEST_CASE("beta(a, b) mean and variance, and GOF for closed-form CDFs") {
  std::uint64_t tag = 60;
  for (auto [a, b] : std::vector<std::pair<double, double>>{
           {0.5, 0.5}, {2.0, 5.0}, {0.05, 0.1}, {30.0, 3.0}}) {
    const auto x = sample(tag++, [&](Rng& r) { return br::beta_rng(a, b, r); });
    const double m = a / (a + b);
    CHECK_MEAN(x, m);
    CHECK_VARIANCE(x, m * (1.0 - m) / (a + b + 1.0));
  }
  // Beta(2, 1): F(x) = x^2; Beta(1/2, 1/2): F(x) = (2/pi) asin(sqrt x)
  std::vector<double> edges;
  for (int k = 1; k < 25; ++k) edges.push_back(k / 25.0);
  const auto x21 = sample(70, [](Rng& r) { return br::beta_rng(2.0, 1.0, r); });
  CHECK(bt::chi_square_gof_pvalue(x21, [](double q) { return q * q; }, edges) > 1e-4);
  const auto xh = sample(71, [](Rng& r) { return br::beta_rng(0.5, 0.5, r); });
  CHECK(bt::chi_square_gof_pvalue(
            xh, [](double q) { return 2.0 / std::acos(-1.0) * std::asin(std::sqrt(q)); }, edges) > 1e-4);
}

// ---- truncated normal: exact moments and CDF, stable far in the tails ----
namespace {
using bglmm::links::std_normal_log_cdf;
using bglmm::links::std_normal_log_pdf;

// log(Phi(b) - Phi(a)) for a standard normal, a < b, without underflow in either tail.
double log_mass(double a, double b) {
  if (a >= 0.0) {  // right tail: Q(a) - Q(b), Q(x) = Phi(-x)
    const double la = std_normal_log_cdf(-a), lb = std_normal_log_cdf(-b);
    return la + std::log1p(-std::exp(lb - la));
  }
  if (b <= 0.0) return log_mass(-b, -a);
  return std::log(0.5 * std::erfc(-b / std::sqrt(2.0)) - 0.5 * std::erfc(-a / std::sqrt(2.0)));
}

struct TruncMoments {
  double mean, var;
};

// Moments of N(0, 1) truncated to [a, b]:
// mean = (phi(a) - phi(b)) / Z, var = 1 + (a phi(a) - b phi(b)) / Z - mean^2.
TruncMoments trunc_moments(double a, double b) {
  const double lz = log_mass(a, b);
  const auto ratio = [&](double x) {  // phi(x) / Z and x phi(x) / Z (0 at infinite x)
    if (std::isinf(x)) return std::pair<double, double>{0.0, 0.0};
    const double r = std::exp(std_normal_log_pdf(x) - lz);
    return std::pair<double, double>{r, x * r};
  };
  const auto [pa, xpa] = ratio(a);
  const auto [pb, xpb] = ratio(b);
  const double mean = pa - pb;
  return {mean, 1.0 + xpa - xpb - mean * mean};
}

// CDF of N(0, 1) truncated to [a, b] at x in [a, b].
double trunc_cdf(double x, double a, double b) {
  if (x <= a) return 0.0;
  if (x >= b) return 1.0;
  if (b <= 0.0) return 1.0 - trunc_cdf(-x, -b, -a);
  return std::exp(log_mass(a, x) - log_mass(a, b));
}
}  // namespace

TEST_CASE("truncated normal: exact moments and GOF, one- and two-sided, far tails") {
  const std::vector<std::pair<double, double>> intervals = {
      {30.0, kInf},  {-kInf, -50.0}, {8.0, 8.5},    {-1.0, 1.0},   {0.1, 0.2},
      {-kInf, 0.5},  {-2.0, kInf},   {2.0, 3.0},    {30.0, 30.01}, {-0.5, 10.0},
      {0.0, kInf},   {-kInf, 0.0},   {-3.0, -2.9},  {5.0, 100.0},  {-kInf, kInf},
      {-200.0, -150.0}};
  std::uint64_t tag = 100;
  for (auto [a, b] : intervals) {
    const auto z = sample(tag++, [a = a, b = b](Rng& r) {
      return br::std_truncated_normal_rng(a, b, r);
    });
    bool inside = true;
    for (double v : z) inside = inside && v >= a && v <= b;
    CHECK(inside);
    const auto m = trunc_moments(a, b);
    CHECK_MEAN(z, m.mean);
    CHECK_VARIANCE(z, m.var);
    // 20 bins spread over the bulk: [max(a, mean - 5 sd), min(b, mean + 5 sd)]
    const double sd = std::sqrt(m.var);
    const double lo = std::max(a, m.mean - 5.0 * sd), hi = std::min(b, m.mean + 5.0 * sd);
    std::vector<double> edges;
    for (int k = 1; k < 20; ++k) edges.push_back(lo + (hi - lo) * k / 20.0);
    const double p = bt::chi_square_gof_pvalue(
        z, [a = a, b = b](double x) { return trunc_cdf(x, a, b); }, edges);
    CHECK(p > 1e-4);
    if (p <= 1e-4) std::printf("  interval [%g, %g]\n", a, b);
  }
}

TEST_CASE("truncated_normal_rng(mean, sd, lower, upper) rescales the standard one") {
  const double mean = 1.0, sd = 2.0, lower = 3.0, upper = 4.0;  // standard [1, 1.5]
  const auto x = sample(130, [&](Rng& r) {
    return br::truncated_normal_rng(mean, sd, lower, upper, r);
  });
  const auto m = trunc_moments(1.0, 1.5);
  CHECK_MEAN(x, mean + sd * m.mean);
  CHECK_VARIANCE(x, sd * sd * m.var);
  // far tail of a shifted normal: N(-3, 0.5) on [20, inf) is 46 sd out
  const auto y = sample(131, [](Rng& r) { return br::truncated_normal_rng(-3.0, 0.5, 20.0, kInf, r); });
  const auto my = trunc_moments(46.0, kInf);
  CHECK_MEAN(y, -3.0 + 0.5 * my.mean);
  CHECK_VARIANCE(y, 0.25 * my.var);
}

TEST_CASE("normal_rng(mean, sd) moments") {
  const auto x = sample(140, [](Rng& r) { return br::normal_rng(-1.5, 0.3, r); });
  CHECK_MEAN(x, -1.5);
  CHECK_VARIANCE(x, 0.09);
}

TEST_CASE("draws are a pure function of the Rng indices") {
  const auto a = sample(150, [](Rng& r) { return br::gamma_rng(0.3, 1.0, r); }, 1000);
  const auto b = sample(150, [](Rng& r) { return br::gamma_rng(0.3, 1.0, r); }, 1000);
  const auto c = sample(151, [](Rng& r) { return br::gamma_rng(0.3, 1.0, r); }, 1000);
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("invalid parameters throw std::invalid_argument") {
  Rng r({1, 0}, 0, 0, Stream::Test);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (double bad : {0.0, -1.0, nan, kInf}) {
    CHECK_THROWS(br::gamma_rng(bad, 1.0, r));
    CHECK_THROWS(br::gamma_rng(1.0, bad, r));
    CHECK_THROWS(br::log_gamma_rng(bad, r));
    CHECK_THROWS(br::chi_square_rng(bad, r));
    CHECK_THROWS(br::inv_gamma_rng(bad, 1.0, r));
    CHECK_THROWS(br::inv_gamma_rng(1.0, bad, r));
    CHECK_THROWS(br::beta_rng(bad, 1.0, r));
    CHECK_THROWS(br::beta_rng(1.0, bad, r));
    CHECK_THROWS(br::exponential_rng(bad, r));
    CHECK_THROWS(br::normal_rng(0.0, bad, r));
    CHECK_THROWS(br::truncated_normal_rng(0.0, bad, -1.0, 1.0, r));
  }
  CHECK_THROWS(br::normal_rng(nan, 1.0, r));
  CHECK_THROWS(br::truncated_normal_rng(nan, 1.0, -1.0, 1.0, r));
  CHECK_THROWS(br::std_truncated_normal_rng(1.0, 1.0, r));
  CHECK_THROWS(br::std_truncated_normal_rng(2.0, 1.0, r));
  CHECK_THROWS(br::std_truncated_normal_rng(nan, 1.0, r));
  CHECK_THROWS(br::std_truncated_normal_rng(0.0, nan, r));
  CHECK_THROWS(br::std_truncated_normal_rng(kInf, kInf, r));
  CHECK_THROWS(br::std_truncated_normal_rng(-kInf, -kInf, r));
  // the exception type is std::invalid_argument (ValueError in Python)
  bool invalid_argument = false;
  try {
    br::gamma_rng(-1.0, 1.0, r);
  } catch (const std::invalid_argument&) {
    invalid_argument = true;
  }
  CHECK(invalid_argument);
}

BGLMM_TEST_MAIN()
