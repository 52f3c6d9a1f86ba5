// Probit link: reference table (make_link_tables.py), finite differences, identities, round
// trip (including mu = 1e-300), finiteness for |eta| <= 700.
#include <cmath>

#include "bglmm/links/probit.hpp"
#include "check.hpp"
#include "links/link_check.hpp"

using bglmm::links::Probit;
namespace bt = bglmm::testing;

TEST_CASE("probit: reference values") {
  // {eta, linkinv, dmu_deta, log_mu, log1m_mu, dlog_mu, dlog1m_mu}
  const std::vector<bt::LinkRow> rows = {
    {-700, 0.0, 0.0, -2.4500747002090905e+5, 0.0, 7.0000142856559773e+2, 0.0},
    {-100, 0.0, 0.0, -5.0055242086942051e+3, 0.0, 1.0000999800099926e+2, 0.0},
    {-37, 5.7255712225245768e-300, 2.1200065515246056e-298, -6.8903058557689059e+2, -5.7255712225245768e-300, 3.702698768612699e+1, -2.1200065515246056e-298},
    {-30, 4.9067139271481871e-198, 1.4736461348785475e-196, -4.543212439563432e+2, -4.9067139271481871e-198, 3.0033259667433677e+1, -1.4736461348785475e-196},
    {-10, 7.6198530241605261e-24, 7.6945986267064193e-23, -5.3231285150512471e+1, -7.6198530241605261e-24, 1.0098093233962512e+1, -7.6945986267064193e-23},
    {-1, 1.5865525393145705e-1, 2.4197072451914335e-1, -1.8410216450092635, -1.7275377902344989e-1, 1.5251352761609812, -2.8759997093917836e-1},
    {-0.1, 4.6017216272297102e-1, 3.9695254747701177e-1, -7.7615459273027332e-1, -6.1650501011502629e-1, 8.6261747153093614e-1, -7.3533174850578067e-1},
    {0, 5.0e-1, 3.9894228040143268e-1, -6.9314718055994531e-1, -6.9314718055994531e-1, 7.9788456080286536e-1, -7.9788456080286536e-1},
    {0.1, 5.3982783727702898e-1, 3.9695254747701177e-1, -6.1650501011502629e-1, -7.7615459273027332e-1, 7.3533174850578067e-1, -8.6261747153093614e-1},
    {1, 8.4134474606854295e-1, 2.4197072451914335e-1, -1.7275377902344989e-1, -1.8410216450092635, 2.8759997093917836e-1, -1.5251352761609812},
    {10, 1.0, 7.6945986267064193e-23, -7.6198530241605261e-24, -5.3231285150512471e+1, 7.6945986267064193e-23, -1.0098093233962512e+1},
    {30, 1.0, 1.4736461348785475e-196, -4.9067139271481871e-198, -4.543212439563432e+2, 1.4736461348785475e-196, -3.0033259667433677e+1},
    {37, 1.0, 2.1200065515246056e-298, -5.7255712225245768e-300, -6.8903058557689059e+2, 2.1200065515246056e-298, -3.702698768612699e+1},
    {100, 1.0, 0.0, 0.0, -5.0055242086942051e+3, 0.0, -1.0000999800099926e+2},
    {700, 1.0, 0.0, 0.0, -2.4500747002090905e+5, 0.0, -7.0000142856559773e+2},
  };
  // erfc is accurate to a few ulp; phi/Phi = exp(log phi - log Phi) loses up to
  // |log phi| eps ~ 7e-14 relative between -35 and 5.
  bt::check_link_table<Probit>(rows, 2e-13);
}

TEST_CASE("probit: derivatives match central finite differences") {
  bt::check_link_derivatives<Probit>();
  // also across the switch points of log Phi (x = 0 and the series at x = -35)
  for (double x : {-35.5, -35.0, -34.5, -0.01, 0.0, 0.01, 4.5, 5.0, 5.5}) {
    bt::check_derivative(Probit::log_mu, Probit::dlog_mu, x, "dlog_mu");
    bt::check_derivative(Probit::log1m_mu, Probit::dlog1m_mu, -x, "dlog1m_mu");
  }
}

TEST_CASE("probit: identities, symmetry, round trip") {
  bt::check_link_identities<Probit>();
  for (double x : {0.3, 2.0, 17.0, 300.0}) {
    CHECK_REL(Probit::log_mu(-x), Probit::log1m_mu(x), 1e-15);
    CHECK_REL(Probit::dlog_mu(-x), -Probit::dlog1m_mu(x), 1e-15);
  }
  bt::check_link_round_trip<Probit>(-37.0, 7.0);
  // tiny probabilities, where plain Newton on Phi from 0 needs hundreds of steps (values:
  // mpmath findroot of log ncdf(x) = log p at 40 digits; scipy.special.ndtri agrees)
  CHECK_NEAR(Probit::link(1e-300), -37.047096299361199, 1e-12);
  CHECK_NEAR(Probit::link(1e-10), -6.3613409024040562, 1e-12);
  CHECK_NEAR(Probit::link(0.975), 1.9599639845400542, 1e-13);
  CHECK_NEAR(Probit::link(0.5), 0.0, 1e-15);
  CHECK(std::isnan(Probit::link(-0.1)) && std::isnan(Probit::link(1.1)));
}

TEST_CASE("probit: finite for |eta| <= 700") { bt::check_link_finite<Probit>(); }

BGLMM_TEST_MAIN()
