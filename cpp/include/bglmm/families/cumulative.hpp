// bglmm/families/cumulative.hpp — the cumulative ordinal model (McCullagh 1980): y in the K
// ordered categories 0 .. K-1, P(y <= k | eta) = F(c_k - eta) with F the link's inverse (the
// logistic or the standard normal CDF) and ordered cutpoints c_0 < ... < c_{K-2} (FamilyParams::
// cut, n_cut = K - 1). With a = c_y - eta and b = c_{y-1} - eta (c_{-1} = -inf, c_{K-1} = +inf):
//   log p = log(F(a) - F(b))
//   score = d log p / d eta = (f(b) - f(a)) / (F(a) - F(b))
//   Fisher weight = sum_k (f(a_k) - f(b_k))^2 / P_k = E[score^2]   (f = F', O(K) per row)
// Everything is computed from log F, log(1 - F) and log f, so that no CDF difference cancels:
// for b > 0 the difference of the upper tails 1 - F(b) - (1 - F(a)) is used (both links are
// symmetric), which keeps the log-likelihood finite and accurate at |eta| = 700.
#pragma once
#include <cmath>
#include <limits>
#include <type_traits>

#include "bglmm/family_params.hpp"
#include "bglmm/links/logit.hpp"
#include "bglmm/links/special.hpp"

namespace bglmm::families {
template <typename L>
struct Cumulative {
  static constexpr const char* name = "cumulative";
  static constexpr bool has_trials = false;
  static constexpr bool has_cutpoints = true;
  static constexpr double kInf = std::numeric_limits<double>::infinity();

  static bool in_support(double y, double /*trials*/, int categories) {
    return y >= 0.0 && y < categories && y == std::floor(y);
  }
  // F(x) and 1 - F(x) = F(-x), each to full relative accuracy (logit: from one exp(-|x|))
  static void cdf_pair(double x, double& lower_tail, double& upper_tail) {
    if constexpr (std::is_same_v<L, links::Logit>) {
      const double e = std::exp(-std::fabs(x)), r = 1.0 / (1.0 + e);
      lower_tail = x >= 0.0 ? r : e * r;
      upper_tail = x >= 0.0 ? e * r : r;
    } else {
      lower_tail = L::linkinv(x);
      upper_tail = L::linkinv(-x);
    }
  }
  // log(1 + e^x) (logit: -log F(-x)), to an absolute error below 3e-16
  static double softplus(double x) {
    return (x > 0.0 ? x : 0.0) + std::log(1.0 + std::exp(-std::fabs(x)));
  }
  // log(F(a) - F(b)) for b < a (a may be +inf, b -inf). Logit: from the identity F(a) - F(b) =
  // F(a) (1 - F(b)) (1 - e^(b - a)), three exponentials and a log (log(1 + e) with e = e^-|x|
  // in (0, 1] has an absolute error below 3e-16), unless the product underflows.
  static double log_prob(double a, double b) {
    if constexpr (std::is_same_v<L, links::Logit>) {
      if (b == -kInf) return a == kInf ? 0.0 : -softplus(-a);
      if (a == kInf) return -softplus(b);
      double fa, ga, fb, gb;
      cdf_pair(a, fa, ga);
      cdf_pair(b, fb, gb);
      const double d = b - a;  // 1 - e^d by exp where that does not cancel (exp is cheaper)
      const double prod = fa * gb * (d < -0.6931471805599453 ? 1.0 - std::exp(d) : -std::expm1(d));
      if (prod > 1e-300) return std::log(prod);
    }
    if (b == -kInf) return a == kInf ? 0.0 : L::log_mu(a);
    if (a == kInf) return L::log1m_mu(b);
    if (b > 0.0) {
      const double upper_b = L::log1m_mu(b);
      return upper_b + links::log1m_exp(L::log1m_mu(a) - upper_b);
    }
    const double lower_a = L::log_mu(a);
    return lower_a + links::log1m_exp(L::log_mu(b) - lower_a);
  }
  // the thresholds around category k, shifted by -eta
  static double upper(int k, double eta, const FamilyParams& p) {
    return k >= p.n_cut ? kInf : p.cut[k] - eta;
  }
  static double lower(int k, double eta, const FamilyParams& p) {
    return k <= 0 ? -kInf : p.cut[k - 1] - eta;
  }
  static double log_kernel(double y, double /*trials*/, double eta, const FamilyParams& p) {
    const int k = static_cast<int>(y);
    return log_prob(upper(k, eta, p), lower(k, eta, p));
  }
  static double log_constant(double /*y*/, double /*trials*/, const FamilyParams& /*p*/) {
    return 0.0;
  }
  // f(x) / P for a threshold x (0 at an infinite one), from logs
  static double density_ratio(double x, double log_p) {
    return std::isfinite(x) ? std::exp(L::log_dmu_deta(x) - log_p) : 0.0;
  }
  // Logit: f = F (1 - F), so the score is F(b) - (1 - F(a)) (McCullagh 1980) — two logistic
  // values instead of the log-space ratios.
  static double score(double y, double /*trials*/, double eta, const FamilyParams& p) {
    const int k = static_cast<int>(y);
    const double a = upper(k, eta, p), b = lower(k, eta, p);
    if constexpr (std::is_same_v<L, links::Logit>) {
      double fb = 0.0, gb = 1.0, fa = 1.0, ga = 0.0;
      if (std::isfinite(b)) cdf_pair(b, fb, gb);
      if (std::isfinite(a)) cdf_pair(a, fa, ga);
      return fb - ga;
    } else {
      const double lp = log_prob(a, b);
      return density_ratio(b, lp) - density_ratio(a, lp);
    }
  }
  // The expected information sum_k (f(a_k) - f(b_k))^2 / P_k from the K - 1 thresholds' CDF
  // pairs and densities (each P_k from the tail where it does not cancel); far out, where a
  // P_k underflows, the log-space form of each term.
  static double weight(double /*trials*/, double eta, const FamilyParams& p) {
    constexpr int kStack = 32;
    if (p.n_cut < kStack) {
      double lo[kStack + 1], hi[kStack + 1], dens[kStack + 1], x[kStack + 1];
      for (int j = 0; j < p.n_cut; ++j) {
        x[j] = p.cut[j] - eta;
        cdf_pair(x[j], lo[j], hi[j]);
        dens[j] = std::exp(L::log_dmu_deta(x[j]));
      }
      double total = 0.0;
      bool usable = true;
      for (int k = 0; k <= p.n_cut && usable; ++k) {
        // category k between thresholds k - 1 (b) and k (a)
        const bool has_b = k > 0, has_a = k < p.n_cut;
        const double prob =
            has_b && x[k - 1] > 0.0 ? hi[k - 1] - (has_a ? hi[k] : 0.0)
                                    : (has_a ? lo[k] : 1.0) - (has_b ? lo[k - 1] : 0.0);
        const double diff = (has_b ? dens[k - 1] : 0.0) - (has_a ? dens[k] : 0.0);
        usable = prob > 1e-280;
        total += diff * diff / prob;
      }
      if (usable && std::isfinite(total)) return total;
    }
    double total = 0.0;
    for (int k = 0; k <= p.n_cut; ++k) {
      const double a = upper(k, eta, p), b = lower(k, eta, p), lp = log_prob(a, b);
      // P_k s_k^2 = (f(b) - f(a))^2 / P_k = (e^(log f(b) - lp/2) - e^(log f(a) - lp/2))^2
      const double s = density_ratio(b, 0.5 * lp) - density_ratio(a, 0.5 * lp);
      total += s * s;
    }
    return total;
  }
};
}  // namespace bglmm::families
