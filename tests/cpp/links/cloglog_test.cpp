// Complementary log-log link: reference table (make_link_tables.py), finite differences,
// identities, round trip, finiteness for |eta| <= 700 (and no NaN beyond, where exp(eta)
// overflows).
#include <cmath>

#include "bglmm/links/cloglog.hpp"
#include "check.hpp"
#include "links/link_check.hpp"

using bglmm::links::Cloglog;
namespace bt = bglmm::testing;

TEST_CASE("cloglog: reference values") {
  // {eta, linkinv, dmu_deta, log_mu, log1m_mu, dlog_mu, dlog1m_mu}
  const std::vector<bt::LinkRow> rows = {
    {-700, 9.8596765437597709e-305, 9.8596765437597709e-305, -7.0e+2, -9.8596765437597709e-305, 1.0, -9.8596765437597709e-305},
    {-100, 3.720075976020836e-44, 3.720075976020836e-44, -1.0e+2, -3.720075976020836e-44, 1.0, -3.720075976020836e-44},
    {-37, 8.5330476257440654e-17, 8.5330476257440651e-17, -3.7e+1, -8.5330476257440658e-17, 9.9999999999999996e-1, -8.5330476257440658e-17},
    {-30, 9.3576229688397368e-14, 9.357622968839299e-14, -3.0000000000000047e+1, -9.3576229688401746e-14, 9.9999999999995321e-1, -9.3576229688401746e-14},
    {-10, 4.5398899201269494e-5, 4.539786865564982e-5, -1.0000022699879e+1, -4.5399929762484852e-5, 9.9997730020688156e-1, -4.5399929762484852e-5},
    {-1, 3.0779937244465365e-1, 2.546463800435825e-1, -1.1783070964207178, -3.6787944117144232e-1, 8.2731286298958016e-1, -3.6787944117144232e-1},
    {-0.1, 5.9539233833586817e-1, 3.6610415189774014e-1, -5.1853469857887515e-1, -9.0483741803595957e-1, 6.148956382626749e-1, -9.0483741803595957e-1},
    {0, 6.3212055882855768e-1, 3.6787944117144232e-1, -4.5867514538708189e-1, -1.0, 5.8197670686932642e-1, -1.0},
    {0.1, 6.6884572284709111e-1, 3.6598207650575778e-1, -4.0220185404742619e-1, -1.1051709180756476, 5.4718459579568422e-1, -1.1051709180756476},
    {1, 9.3401196415468746e-1, 1.7937407873401718e-1, -6.8266031247876686e-2, -2.7182818284590452, 1.9204687479175581e-1, -2.7182818284590452},
    {10, 1.0, 0.0, 0.0, -2.2026465794806717e+4, 0.0, -2.2026465794806717e+4},
    {30, 1.0, 0.0, 0.0, -1.0686474581524462e+13, 0.0, -1.0686474581524462e+13},
    {37, 1.0, 0.0, 0.0, -1.1719142372802611e+16, 0.0, -1.1719142372802611e+16},
    {100, 1.0, 0.0, 0.0, -2.6881171418161354e+43, 0.0, -2.6881171418161354e+43},
    {700, 1.0, 0.0, 0.0, -1.0142320547350045e+304, 0.0, -1.0142320547350045e+304},
  };
  bt::check_link_table<Cloglog>(rows, 1e-14);
}

TEST_CASE("cloglog: derivatives match central finite differences") {
  bt::check_link_derivatives<Cloglog>();
  // around the series switch of log_mu / dlog_mu (exp(eta) = 1e-8, eta = -18.42)
  for (double x : {-18.5, -18.42, -18.4, -18.3}) {
    bt::check_derivative(Cloglog::log_mu, Cloglog::dlog_mu, x, "dlog_mu");
  }
}

TEST_CASE("cloglog: identities, round trip") {
  bt::check_link_identities<Cloglog>();
  bt::check_link_round_trip<Cloglog>(-30.0, 3.0);
}

TEST_CASE("cloglog: finite for |eta| <= 700; beyond, limits instead of NaN") {
  bt::check_link_finite<Cloglog>();
  // exp(eta) overflows above 709.78: dlog_mu -> 0 (was inf / inf = NaN), mu -> 1
  CHECK(Cloglog::dlog_mu(710.0) == 0.0);
  CHECK(Cloglog::linkinv(710.0) == 1.0);
  // exp(eta) underflows below -745: log_mu -> eta (was log(0) = -inf), dlog_mu -> 1
  CHECK_NEAR(Cloglog::log_mu(-800.0), -800.0, 1e-12);
  CHECK(Cloglog::dlog_mu(-800.0) == 1.0);
}

BGLMM_TEST_MAIN()
