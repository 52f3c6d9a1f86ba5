// bglmm/likelihood_block.hpp — the GLMM's likelihood terms: log-likelihood kernel, score
// u = d loglik / d eta and Fisher weight w, for one observation (LikTerms) and for a block of
// up to kLikBlock observations at once (LikBlock). The block forms run on Eigen arrays, whose
// exp and log are vectorised (SIMD), for the pairs that dominate the run time (poisson,
// binomial-logit, gaussian, negative binomial, gamma, zero-inflated poisson); the others loop
// over LikTerms. A block's sum is added in a fixed order, so results do not depend on the
// thread count. Case weights (lme4's prior weights, brms's `weights`): row i's log-likelihood
// term, score and Fisher weight are each multiplied by w_i, in the block forms too (block_sum,
// weigh_derivatives); a row with integer weight w counts as w copies of it. The passes call
// lik_kernel / lik_all.
#pragma once
#include <cmath>

#include "bglmm/glm.hpp"
#include "bglmm/types.hpp"

namespace bglmm {

constexpr Index kLikBlock = 64;
using BlockArray = Eigen::Array<double, Eigen::Dynamic, 1, 0, kLikBlock, 1>;

template <typename G>
struct LikTerms {
  static double kernel(double y, double n, double eta, const FamilyParams& fp) {
    return G::log_kernel(y, n, eta, fp);
  }
  static double all(double y, double n, double eta, const FamilyParams& fp, double& score,
                    double& weight) {
    score = G::score(y, n, eta, fp);
    weight = G::weight(n, eta, fp);
    return G::log_kernel(y, n, eta, fp);
  }
};

template <>
struct LikTerms<PoissonLog> {
  static double kernel(double y, double /*n*/, double eta, const FamilyParams& /*p*/) {
    return y * eta - std::exp(eta);
  }
  static double all(double y, double /*n*/, double eta, const FamilyParams& /*p*/, double& score,
                    double& weight) {
    const double mu = std::exp(eta);
    score = y - mu;
    weight = mu;
    return y * eta - mu;
  }
};

template <>
struct LikTerms<BinomialLogit> {
  // y eta - n log(1 + e^eta) with e = exp(-|eta|): softplus(eta) = max(eta, 0) + log(1 + e).
  // With e in (0, 1], log(1 + e) has an absolute error below 3e-16, all a sum of
  // log-likelihood terms can use; log1p's extra relative accuracy for tiny e costs several
  // times as much (it dominated the profile of a sweep).
  static double kernel(double y, double n, double eta, const FamilyParams& /*p*/) {
    const double e = std::exp(-std::fabs(eta));
    return y * eta - n * ((eta > 0.0 ? eta : 0.0) + std::log(1.0 + e));
  }
  static double all(double y, double n, double eta, const FamilyParams& /*p*/, double& score,
                    double& weight) {
    const double e = std::exp(-std::fabs(eta));
    const double r = 1.0 / (1.0 + e);
    const double mu = eta >= 0.0 ? r : e * r;  // inverse logit
    score = y - n * mu;
    weight = n * e * r * r;                    // n mu (1 - mu)
    return y * eta - n * ((eta > 0.0 ? eta : 0.0) + std::log(1.0 + e));
  }
};

template <>
struct LikTerms<NegBinomialLog> {
  // With d = eta - log phi: kernel -(phi + y) softplus(d) + y d, score y - (y + phi) p and
  // weight phi p, p = inv_logit(d) (negative_binomial.hpp), from one exp(-|d|) as above. Here
  // log1p: softplus is multiplied by phi, which may be 1e6 and more (the Poisson limit).
  static double kernel(double y, double /*n*/, double eta, const FamilyParams& fp) {
    const double phi = fp.phi, dd = eta - std::log(phi), e = std::exp(-std::fabs(dd));
    return y * dd - (phi + y) * ((dd > 0.0 ? dd : 0.0) + std::log1p(e));
  }
  static double all(double y, double /*n*/, double eta, const FamilyParams& fp, double& score,
                    double& weight) {
    const double phi = fp.phi, dd = eta - std::log(phi), e = std::exp(-std::fabs(dd));
    const double r = 1.0 / (1.0 + e);
    const double p = dd >= 0.0 ? r : e * r;
    score = y - (y + phi) * p;
    weight = phi * p;
    return y * dd - (phi + y) * ((dd > 0.0 ? dd : 0.0) + std::log1p(e));
  }
};

// Beta-binomial: the quasi-likelihood weight (a lower bound of the Fisher weight, within a
// factor (1 + phi) / (n + phi) ... 1 of it) instead of the exact sum over y = 0..n; the weight
// only shapes the Metropolis-Hastings proposals, and the exact one costs n + 1 likelihood
// evaluations per row.
template <typename L>
struct LikTerms<Glm<families::BetaBinomial<L>, L>> {
  using G = Glm<families::BetaBinomial<L>, L>;
  static double kernel(double y, double n, double eta, const FamilyParams& fp) {
    return G::log_kernel(y, n, eta, fp);
  }
  static double all(double y, double n, double eta, const FamilyParams& fp, double& score,
                    double& weight) {
    score = G::score(y, n, eta, fp);
    weight = G::Family::quasi_weight(n, eta, fp.phi);
    return G::log_kernel(y, n, eta, fp);
  }
};

// Cumulative logit: the K - 1 thresholds' CDF pairs once per row (one exp each), then the
// kernel (the product form of families/cumulative.hpp), the score F(b) - (1 - F(a)) and the
// weight sum_k P_k s_k^2 from them; the family's own functions past 32 categories or where a
// probability underflows.
template <>
struct LikTerms<CumulativeLogit> {
  using F = CumulativeLogit::Family;
  static double kernel(double y, double n, double eta, const FamilyParams& fp) {
    return CumulativeLogit::log_kernel(y, n, eta, fp);
  }
  static double all(double y, double n, double eta, const FamilyParams& fp, double& score,
                    double& weight) {
    constexpr int kStack = 32;
    const int kc = fp.n_cut;
    if (kc >= kStack) {
      score = CumulativeLogit::score(y, n, eta, fp);
      weight = CumulativeLogit::weight(n, eta, fp);
      return kernel(y, n, eta, fp);
    }
    double lo[kStack], hi[kStack], x[kStack];
    for (int j = 0; j < kc; ++j) {
      x[j] = fp.cut[j] - eta;
      F::cdf_pair(x[j], lo[j], hi[j]);
    }
    const int yk = static_cast<int>(y);
    double w = 0.0, s_y = 0.0, p_y = 1.0;
    for (int k = 0; k <= kc; ++k) {
      const double fa = k < kc ? lo[k] : 1.0, ga = k < kc ? hi[k] : 0.0;
      const double fb = k > 0 ? lo[k - 1] : 0.0, gb = k > 0 ? hi[k - 1] : 1.0;
      const double prob = k > 0 && x[k - 1] > 0.0 ? gb - ga : fa - fb;
      const double s = fb - ga;
      w += prob * s * s;
      if (k == yk) {
        s_y = s;
        // the kernel inside: F(a) (1 - F(b)) (1 - e^(b - a)), as log_prob forms it
        if (k > 0 && k < kc) {
          const double d = x[k - 1] - x[k];
          p_y = fa * gb * (d < -0.6931471805599453 ? 1.0 - std::exp(d) : -std::expm1(d));
        }
      }
    }
    score = s_y;
    weight = w;
    if (yk == 0) return -F::softplus(-x[0]);  // log F(a), as log_prob
    if (yk == kc) return -F::softplus(x[kc - 1]);
    return p_y > 1e-300 ? std::log(p_y) : kernel(y, n, eta, fp);
  }
};

// Block forms. y, n, eta are BlockArrays of a padded length (a multiple of kLikPad, so the
// vectorised exp/log never fall back to scalar code for a remainder); only the first `len`
// entries are observations. Return the sum of the first `len` log-likelihood terms and fill
// u, w (entries past `len` are unspecified).
constexpr Index kLikPad = 8;
inline Index padded_length(Index len) { return (len + kLikPad - 1) / kLikPad * kLikPad; }

// The setup of a block pass over contiguous rows start .. start + len - 1: y and trials into
// yb, nb, all three blocks sized to the padded length with y = n = eta = 0 in the padding
// (finite terms, never summed); eta's first len entries are left to the caller.
inline void load_block(const double* y, const double* trials, Index start, Index len,
                       BlockArray& yb, BlockArray& nb, BlockArray& eta) {
  const Index padded = padded_length(len);
  eta.resize(padded);
  yb.resize(padded);
  nb.resize(padded);
  for (Index i = len; i < padded; ++i) eta[i] = yb[i] = nb[i] = 0.0;
#pragma omp simd
  for (Index i = 0; i < len; ++i) {
    yb[i] = y[start + i];
    nb[i] = trials[start + i];
  }
}

// A block's first len terms summed, each times its case weight (wt: nullptr for none); a row of
// weight 0 adds 0 whatever its term. And the score and Fisher weight of each row times its
// case weight.
inline double block_sum(const BlockArray& t, const double* wt, Index len) {
  if (wt == nullptr) return t.head(len).sum();
  const Eigen::Map<const Eigen::ArrayXd> w(wt, len);
  return (w == 0.0).select(0.0, w * t.head(len)).sum();
}
inline void weigh_derivatives(const double* wt, BlockArray& u, BlockArray& w, Index len) {
  if (wt == nullptr) return;
  const Eigen::Map<const Eigen::ArrayXd> c(wt, len);
  u.head(len) *= c;
  w.head(len) *= c;
}

template <typename G>
struct LikBlock {
  static double kernel(const BlockArray& y, const BlockArray& n, const BlockArray& eta,
                       const FamilyParams& fp, Index len, const double* wt = nullptr) {
    double total = 0.0;
    for (Index i = 0; i < len; ++i) {
      const double c = wt != nullptr ? wt[i] : 1.0;
      if (c != 0.0) total += c * LikTerms<G>::kernel(y[i], n[i], eta[i], fp);
    }
    return total;
  }
  static double all(const BlockArray& y, const BlockArray& n, const BlockArray& eta,
                    const FamilyParams& fp, BlockArray& u, BlockArray& w, Index len,
                    const double* wt = nullptr) {
    u.setZero(eta.size());
    w.setZero(eta.size());
    double total = 0.0;
    for (Index i = 0; i < len; ++i) {
      const double c = wt != nullptr ? wt[i] : 1.0;
      if (c == 0.0) continue;
      total += c * LikTerms<G>::all(y[i], n[i], eta[i], fp, u[i], w[i]);
      u[i] *= c;
      w[i] *= c;
    }
    return total;
  }
};

template <>
struct LikBlock<BinomialLogit> {
  static double kernel(const BlockArray& y, const BlockArray& n, const BlockArray& eta,
                       const FamilyParams& /*p*/, Index len, const double* wt = nullptr) {
    const BlockArray e = (-eta.abs()).exp();
    const BlockArray t = y * eta - n * (eta.max(0.0) + (1.0 + e).log());
    return block_sum(t, wt, len);
  }
  static double all(const BlockArray& y, const BlockArray& n, const BlockArray& eta,
                    const FamilyParams& /*p*/, BlockArray& u, BlockArray& w, Index len,
                    const double* wt = nullptr) {
    const BlockArray e = (-eta.abs()).exp();
    const BlockArray r = (1.0 + e).inverse();
    u = y - n * (eta >= 0.0).select(r, e * r);  // y - n inv_logit(eta)
    w = n * e * r * r;
    const BlockArray t = y * eta - n * (eta.max(0.0) + (1.0 + e).log());
    weigh_derivatives(wt, u, w, len);
    return block_sum(t, wt, len);
  }
};

template <>
struct LikBlock<PoissonLog> {
  static double kernel(const BlockArray& y, const BlockArray& /*n*/, const BlockArray& eta,
                       const FamilyParams& /*p*/, Index len, const double* wt = nullptr) {
    const BlockArray t = y * eta - eta.exp();
    return block_sum(t, wt, len);
  }
  static double all(const BlockArray& y, const BlockArray& /*n*/, const BlockArray& eta,
                    const FamilyParams& /*p*/, BlockArray& u, BlockArray& w, Index len,
                    const double* wt = nullptr) {
    w = eta.exp();
    u = y - w;
    const BlockArray t = y * eta - w;
    weigh_derivatives(wt, u, w, len);
    return block_sum(t, wt, len);
  }
};

// log1p(e) for e in [0, 1] on a block, to a few ulps, with the vectorised log (Eigen has no
// vectorised log1p for double): log(u) e / (u - 1), u = 1 + e, which cancels the rounding of u
// (Goldberg 1991, "What every computer scientist should know about floating-point", thm. 4).
inline BlockArray log1p_block(const BlockArray& e) {
  const BlockArray u = 1.0 + e;
  const BlockArray ratio = u.log() * e / (u - 1.0);  // vectorised (a select around it is not)
  return (u == 1.0).select(e, ratio);
}

template <>
struct LikBlock<NegBinomialLog> {  // the fused form of LikTerms<NegBinomialLog>
  // log1p(e), e = exp(-|d|) in (0, 1], which the kernel multiplies by phi + y: log(1 + e) has an
  // absolute error below 2.3e-16, so below phi = 1e3 the product's error (< 2.3e-13 + y 2.3e-16)
  // is far below anything a sum of log-likelihood terms can use, and it skips a division and a
  // select (B3nb side by side with B3: 2.6x its cost per ESS with it, 2.7x without, near the
  // noise); above, the exact form.
  static BlockArray log1p_e(const BlockArray& e, double phi) {
    if (phi < 1e3) return (1.0 + e).log();
    return log1p_block(e);
  }
  static double kernel(const BlockArray& y, const BlockArray& /*n*/, const BlockArray& eta,
                       const FamilyParams& fp, Index len, const double* wt = nullptr) {
    const double phi = fp.phi;
    const BlockArray dd = eta - std::log(phi);
    const BlockArray e = (-dd.abs()).exp();
    const BlockArray t = y * dd - (phi + y) * (dd.max(0.0) + log1p_e(e, phi));
    return block_sum(t, wt, len);
  }
  static double all(const BlockArray& y, const BlockArray& /*n*/, const BlockArray& eta,
                    const FamilyParams& fp, BlockArray& u, BlockArray& w, Index len,
                    const double* wt = nullptr) {
    const double phi = fp.phi;
    const BlockArray dd = eta - std::log(phi);
    const BlockArray e = (-dd.abs()).exp();
    const BlockArray r = (1.0 + e).inverse();
    const BlockArray p = (dd >= 0.0).select(r, e * r);
    u = y - (y + phi) * p;
    w = phi * p;
    const BlockArray t = y * dd - (phi + y) * (dd.max(0.0) + log1p_e(e, phi));
    weigh_derivatives(wt, u, w, len);
    return block_sum(t, wt, len);
  }
};

template <>
struct LikBlock<GammaLog> {  // kernel -phi (eta + y e^-eta), score phi (y e^-eta - 1), weight phi
  static double kernel(const BlockArray& y, const BlockArray& /*n*/, const BlockArray& eta,
                       const FamilyParams& fp, Index len, const double* wt = nullptr) {
    const double phi = fp.phi;
    const BlockArray r = (y.log() - eta).exp();  // y e^-eta, finite wherever it is
    return sum(eta, r, phi, wt, len);
  }
  static double all(const BlockArray& y, const BlockArray& /*n*/, const BlockArray& eta,
                    const FamilyParams& fp, BlockArray& u, BlockArray& w, Index len,
                    const double* wt = nullptr) {
    const double phi = fp.phi;
    const BlockArray r = (y.log() - eta).exp();
    u = phi * (r - 1.0);
    w.setConstant(eta.size(), phi);
    weigh_derivatives(wt, u, w, len);
    return sum(eta, r, phi, wt, len);
  }
  static double sum(const BlockArray& eta, const BlockArray& r, double phi, const double* wt,
                    Index len) {
    if (wt == nullptr) return -phi * (eta + r).head(len).sum();
    return block_sum(-phi * (eta + r), wt, len);
  }
};

// Zero-inflated Poisson (zero_inflated_poisson.hpp), l = log phi (the odds of a structural
// zero): rows with y > 0 as poisson's; zeros: kernel log(phi + e^-mu) = logaddexp(l, -mu) by
// max + log(1 + e^-(max - min)) (absolute error below 2.3e-16), score -mu / (1 + e^(l + mu)),
// weight mu / (1 + phi) (1 - mu e^-mu inv_logit(l + mu)) for every row.
template <>
struct LikBlock<ZeroInflatedPoissonLog> {
  // the rows' log odds of a structural zero, l_i = log phi + s_i (the shifts s_i in n)
  static BlockArray zero_kernel(const BlockArray& mu, const BlockArray& l) {
    const BlockArray hi = (-mu).max(l), lo = (-mu).min(l);
    return hi + (1.0 + (lo - hi).exp()).log();
  }
  static double kernel(const BlockArray& y, const BlockArray& n, const BlockArray& eta,
                       const FamilyParams& fp, Index len, const double* wt = nullptr) {
    const BlockArray mu = eta.exp();
    const BlockArray t = (y > 0.0).select(y * eta - mu, zero_kernel(mu, std::log(fp.phi) + n));
    return block_sum(t, wt, len);
  }
  static double all(const BlockArray& y, const BlockArray& n, const BlockArray& eta,
                    const FamilyParams& fp, BlockArray& u, BlockArray& w, Index len,
                    const double* wt = nullptr) {
    const BlockArray l = std::log(fp.phi) + n;
    const BlockArray mu = eta.exp();
    const BlockArray share = (1.0 + (-(mu + l)).exp()).inverse();  // inv_logit(l + mu)
    u = (y > 0.0).select(y - mu, -mu * (1.0 - share));
    // 1 / (1 + e^l): one exp per row only where a zi formula shifts the rows' odds
    const BlockArray free_share = (n == 0.0).all()
                                      ? BlockArray::Constant(n.size(), 1.0 / (1.0 + fp.phi))
                                      : BlockArray((1.0 + l.exp()).inverse());
    w = mu * free_share * (1.0 - mu * (-mu).exp() * share);
    const BlockArray t = (y > 0.0).select(y * eta - mu, zero_kernel(mu, l));
    weigh_derivatives(wt, u, w, len);
    return block_sum(t, wt, len);
  }
};

template <>
struct LikBlock<GaussianIdentity> {
  static double kernel(const BlockArray& y, const BlockArray& /*n*/, const BlockArray& eta,
                       const FamilyParams& fp, Index len, const double* wt = nullptr) {
    return sum(y, eta, fp.phi, wt, len);
  }
  static double all(const BlockArray& y, const BlockArray& /*n*/, const BlockArray& eta,
                    const FamilyParams& fp, BlockArray& u, BlockArray& w, Index len,
                    const double* wt = nullptr) {
    const double phi = fp.phi;
    u = (y - eta) / phi;
    w.setConstant(eta.size(), 1.0 / phi);
    weigh_derivatives(wt, u, w, len);
    return sum(y, eta, phi, wt, len);
  }
  static double sum(const BlockArray& y, const BlockArray& eta, double phi, const double* wt,
                    Index len) {
    if (wt == nullptr) return -0.5 * (y - eta).head(len).square().sum() / phi;
    return block_sum(-0.5 * (y - eta).square() / phi, wt, len);
  }
};

// The entry points of the GLMM's passes: a block's log-likelihood kernel (and its scores and
// Fisher weights), with case weights wt[0 .. len - 1] or nullptr for none.
template <typename G>
double lik_kernel(const BlockArray& y, const BlockArray& n, const BlockArray& eta,
                  const double* wt, const FamilyParams& fp, Index len) {
  return LikBlock<G>::kernel(y, n, eta, fp, len, wt);
}

template <typename G>
double lik_all(const BlockArray& y, const BlockArray& n, const BlockArray& eta, const double* wt,
               const FamilyParams& fp, BlockArray& u, BlockArray& w, Index len) {
  return LikBlock<G>::all(y, n, eta, fp, u, w, len, wt);
}

}  // namespace bglmm
