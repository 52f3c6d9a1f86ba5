// Overflow-safe scalar helpers of the links: reference values (make_link_tables.py), and
// continuity across the branch switches (log1m_exp at -log 2, log Phi at 5 and -35).
#include <cmath>
#include <vector>

#include "bglmm/links/special.hpp"
#include "check.hpp"

namespace bl = bglmm::links;

#define CHECK_REL(a, b, rtol) CHECK_NEAR(a, b, (rtol) * std::fabs(b) + 1e-300)

TEST_CASE("std_normal_log_cdf and std_normal_mills: reference values") {
  struct Row {
    double x, log_cdf, mills;
  };
  const std::vector<Row> rows = {
    {-1000, -5.0000782669481218e+5, 1.000000999998e+3},
    {-700, -2.4500747002090905e+5, 7.0000142856559773e+2},
    {-100, -5.0055242086942051e+3, 1.0000999800099926e+2},
    {-40, -8.0460844201375379e+2, 4.0024968847207264e+1},
    {-35.000001, -6.1697513629044798e+2, 3.5028525969784333e+1},
    {-35, -6.1697510126192251e+2, 3.5028524970596688e+1},
    {-34.999999, -6.1697506623339804e+2, 3.5028523971409043e+1},
    {-20, -2.0391715537109726e+2, 2.0049753068527851e+1},
    {-5, -1.5064998393988726e+1, 5.1865039671258421},
    {-1, -1.8410216450092635, 1.5251352761609812},
    {0, -6.9314718055994531e-1, 7.9788456080286536e-1},
    {1, -1.7275377902344989e-1, 2.8759997093917836e-1},
    {4.999999, -2.8665309968742131e-7, 1.4867273745246613e-6},
    {5, -2.8665161296376359e-7, 1.4867199409049057e-6},
    {5.000001, -2.8665012624753948e-7, 1.4867125073208315e-6},
    {8, -6.2209605742717861e-16, 5.0522710835368954e-15},
    {20, -2.7536241186062337e-89, 5.5209483621597632e-88},
    {40, 0.0, 0.0},
  };
  for (const auto& r : rows) {
    // erfc(z) amplifies the rounding of z = x / sqrt 2 by its condition number 2 z^2 = x^2,
    // so Phi(-|x|) is accurate to ~x^2 * 2.2e-16 relative; the mills ratio also loses
    // |log phi| eps ~ 7e-14 from exp(log phi - log Phi) between -35 and 0.
    const double rtol = 1e-14 + r.x * r.x * 4.4e-16;
    CHECK_REL(bl::std_normal_log_cdf(r.x), r.log_cdf, rtol);
    CHECK_REL(bl::std_normal_mills(r.x), r.mills, 2e-13 + rtol);
  }
}

TEST_CASE("log1p_exp and inv_logit: reference values") {
  struct Row {
    double x, log1p_exp, inv_logit;
  };
  const std::vector<Row> rows = {
    {-800, 0.0, 0.0},
    {-40, 4.248354255291589e-18, 4.248354255291589e-18},
    {-1, 3.1326168751822283e-1, 2.6894142136999512e-1},
    {0, 6.9314718055994531e-1, 5.0e-1},
    {1, 1.3132616875182228, 7.3105857863000488e-1},
    {40, 4.0e+1, 1.0},
    {800, 8.0e+2, 1.0},
  };
  for (const auto& r : rows) {
    CHECK_REL(bl::log1p_exp(r.x), r.log1p_exp, 1e-15);
    CHECK_REL(bl::inv_logit(r.x), r.inv_logit, 1e-15);
  }
}

TEST_CASE("log1m_exp: reference values") {
  struct Row {
    double x, value;
  };
  const std::vector<Row> rows = {
    {-800, 0.0},
    {-40, -4.248354255291589e-18},
    {-1, -4.5867514538708189e-1},
    {-0.6931471805599453, -6.9314718055994532e-1},
    {-0.6931, -6.9319436334600089e-1},
    {-0.5, -9.3275212956718857e-1},
    {-1e-10, -2.3025850929990457e+1},
    {-1e-300, -6.9077552789821371e+2},
  };
  for (const auto& r : rows) CHECK_REL(bl::log1m_exp(r.x), r.value, 1e-15);
}

TEST_CASE("branch switches are continuous") {
  for (double x0 : {0.0, -35.0}) {
    const double below = bl::std_normal_log_cdf(std::nextafter(x0, -1e9));
    const double at = bl::std_normal_log_cdf(x0);
    CHECK_REL(below, at, 1e-13);
    CHECK_REL(bl::std_normal_mills(std::nextafter(x0, -1e9)), bl::std_normal_mills(x0), 1e-13);
  }
  const double ln2 = 0.6931471805599453;
  CHECK_REL(bl::log1m_exp(std::nextafter(-ln2, -1.0)), bl::log1m_exp(-ln2), 1e-15);
}

BGLMM_TEST_MAIN()
