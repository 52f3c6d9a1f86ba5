// bglmm/steps/cutpoints.hpp — the cumulative ordinal families' cutpoints given the linear
// predictor. The samplers keep an intercept beta_0 in X and the cutpoints relative to it:
// theta_0 = 0 < theta_1 < ... < theta_{K-2}, so that P(y <= k) = F(theta_k - eta) with eta =
// beta_0 + ...; the reported cutpoints are c_k = theta_k - beta_0. The location of all
// cutpoints then moves with beta_0, which the fixed-effect steps update jointly with the other
// coefficients (and against the random intercepts' mean, by the interweaving and marginal
// moves), and theta holds only their spacing.
//
// Prior: each c_k ~ N(0, s^2), restricted to c_0 < ... < c_{K-2} (the order statistics of K - 1
// draws from N(0, s^2)). The map (beta_0, theta_1..) -> c has unit Jacobian, so the joint prior
// density is prod_k N(theta_k - beta_0; 0, s^2) on the ordered set. Given theta it is Gaussian in
// beta_0: N(mean(theta), s^2 / (K - 1)) — the samplers hand that to the fixed-effect steps as
// beta_0's prior (its variance is fixed, its mean follows theta: intercept_prior_mean). Given
// beta_0, theta_k's conditional is its likelihood terms (the rows of categories k and k + 1)
// times N(theta_k - beta_0; 0, s^2) on (theta_{k-1}, theta_{k+1}); each theta_k is drawn from it
// by a slice step (slice.hpp), its width learned in warm-up. Sums over rows run in fixed chunks
// of each category's row list, so the draws do not depend on the thread count. Case weights
// multiply each row's term (and count in the categories' totals).
//
// These moves leave one direction slow: c_0 alone (theta_0 = 0 ties it to beta_0, so moving it
// means moving beta_0 and every theta_k together). The first_cutpoint_shift step updates c_0
// given c_1.. and the rest by a slice step on its own conditional — the rows of categories 0
// and 1 under eta - beta_0, times N(c_0; 0, s^2) on (-inf, c_1) — and returns the shift of
// beta_0 that realises it (theta_1.. shift with it, the other c_k stay). Together with the
// fixed-effect step's move of beta_0 alone (all c_k together), every cutpoint is then updated
// along its own axis.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "bglmm/error.hpp"
#include "bglmm/glm.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/rng/distributions.hpp"
#include "bglmm/steps/dispersion_slice.hpp"
#include "bglmm/steps/golden_section.hpp"
#include "bglmm/steps/slice.hpp"
#include "bglmm/types.hpp"

namespace bglmm::steps {

struct CutpointPrior {
  double sd = 0.0;           // s: each cutpoint ~ N(0, s^2), ordered
  Index intercept_col = -1;  // beta_0's column of X
};

// The rows of each category 0 .. K-1, each list ascending; with case weights (the caller's, or
// nullptr) each category's total weight (else its number of rows).
struct CategoryRows {
  std::vector<std::vector<Index>> rows;
  std::vector<double> total;
  const double* weights = nullptr;
  int categories() const { return static_cast<int>(rows.size()); }
  double weight(Index i) const { return weights != nullptr ? weights[i] : 1.0; }
};

inline CategoryRows make_category_rows(const double* y, Index n, int categories,
                                       const double* weights = nullptr) {
  if (categories < 2)
    throw std::invalid_argument(concat("cumulative family: needs at least 2 categories, got ",
                                       categories));
  CategoryRows out;
  out.rows.resize(static_cast<std::size_t>(categories));
  for (Index i = 0; i < n; ++i) {
    const double v = y[i];
    if (!(v >= 0.0 && v < categories && v == std::floor(v)))
      throw std::invalid_argument(concat("cumulative family: y[", i, "] = ", v,
                                         " is not a category code 0 .. ", categories - 1));
    out.rows[static_cast<std::size_t>(v)].push_back(i);
  }
  out.weights = weights;
  out.total.assign(static_cast<std::size_t>(categories), 0.0);
  for (int k = 0; k < categories; ++k)
    for (Index i : out.rows[static_cast<std::size_t>(k)])
      out.total[static_cast<std::size_t>(k)] += out.weight(i);
  return out;
}

inline void check_cutpoint_prior(const CutpointPrior& p, Index p_cols) {
  check_positive("cutpoint prior", "sd", p.sd);
  if (p.intercept_col < 0 || p.intercept_col >= p_cols)
    throw std::invalid_argument("cumulative family: the intercept column is not a column of X");
}

// beta_0's prior mean given theta: mean(theta).
inline double intercept_prior_mean(const Vector& theta) { return theta.mean(); }

// theta_k = t's log-likelihood through the rows of categories k and k + 1 (at eta - eta_shift),
// up to a term free of t, as a function of t; built once per update. Cumulative logit: F(a) -
// F(b) = F(a) (1 - F(b)) (1 - e^(b - a)), and the last factor does not depend on eta, so a row of
// category k adds log F(t - eta_i) = -softplus(eta_i - t), one of category k + 1 adds
// log(1 - F(t - eta_i)) = -softplus(t - eta_i), and the categories add n_k log(1 - e^(theta_{k-1}
// - t)) and n_{k+1} log(1 - e^(t - theta_{k+1})): two vectorised transcendentals per row over
// the rows' linear predictors, gathered here (one pass, in row order: no dependence on threads);
// with case weights, each term times its row's weight and n_k the category's total weight.
// Other links: the family's log_kernel over the rows (times their weights), in fixed chunks.
template <typename G>
class CutpointLogLik {
 public:
  CutpointLogLik(const CategoryRows& cats, const double* y, const double* eta, const Vector& theta,
                 Index k, int threads, double eta_shift = 0.0)
      : cats_(cats), y_(y), eta_(eta), theta_(theta), k_(k), threads_(threads),
        shift_(eta_shift) {
    if constexpr (kLogit) {
      gather(cats.rows[static_cast<std::size_t>(k)], below_, below_w_);
      gather(cats.rows[static_cast<std::size_t>(k + 1)], above_, above_w_);
    }
  }
  double operator()(double t) const {
    if constexpr (kLogit) {
      const auto softplus_sum = [](const Eigen::ArrayXd& x, const Eigen::ArrayXd& w) {
        const Eigen::ArrayXd s = x.max(0.0) + (1.0 + (-x.abs()).exp()).log();
        return w.size() > 0 ? (w * s).sum() : s.sum();
      };
      const double n_below = cats_.total[static_cast<std::size_t>(k_)];
      const double n_above = cats_.total[static_cast<std::size_t>(k_ + 1)];
      double total = 0.0;
      if (below_.size() > 0) {
        total -= softplus_sum(below_ - t, below_w_);
        if (k_ > 0) total += n_below * std::log(-std::expm1(theta_[k_ - 1] - t));
      }
      if (above_.size() > 0) {
        total -= softplus_sum(t - above_, above_w_);
        if (k_ + 1 < theta_.size()) total += n_above * std::log(-std::expm1(t - theta_[k_ + 1]));
      }
      return total;
    } else {
      Vector trial = theta_;
      trial[k_] = t;
      const FamilyParams fp{1.0, 1.0, trial.data(), static_cast<int>(trial.size())};
      double total = 0.0;
      for (Index c = k_; c <= k_ + 1; ++c) {
        const std::vector<Index>& rows = cats_.rows[static_cast<std::size_t>(c)];
        total += chunked_sum(static_cast<std::int64_t>(rows.size()), 4096, threads_,
                             [&](std::int64_t begin, std::int64_t end) {
                               double part = 0.0;
                               for (std::int64_t r = begin; r < end; ++r) {
                                 const Index i = rows[static_cast<std::size_t>(r)];
                                 const double w = cats_.weight(i);
                                 if (w != 0.0)
                                   part += w * G::log_kernel(y_[i], 1.0, eta_[i] - shift_, fp);
                               }
                               return part;
                             });
      }
      return total;
    }
  }

 private:
  static constexpr bool kLogit = std::is_same_v<G, CumulativeLogit>;
  // the rows' eta - shift, and their weights (left empty without weights)
  void gather(const std::vector<Index>& rows, Eigen::ArrayXd& eta, Eigen::ArrayXd& w) const {
    eta.resize(static_cast<Index>(rows.size()));
    for (std::size_t r = 0; r < rows.size(); ++r) eta[static_cast<Index>(r)] = eta_[rows[r]] - shift_;
    if (cats_.weights == nullptr) return;
    w.resize(eta.size());
    for (std::size_t r = 0; r < rows.size(); ++r) w[static_cast<Index>(r)] = cats_.weights[rows[r]];
  }
  const CategoryRows& cats_;
  const double* y_;
  const double* eta_;
  const Vector& theta_;
  Index k_;
  int threads_;
  double shift_;
  Eigen::ArrayXd below_, above_, below_w_, above_w_;
};

// theta_k's full conditional, up to a constant (-inf outside (theta_{k-1}, theta_{k+1}); k = 0
// has no lower bound), with its likelihood part log_lik (a CutpointLogLik).
template <typename LogLik>
double cutpoint_log_target(const LogLik& log_lik, const Vector& theta, Index k, double t,
                           double beta0, double sd) {
  const Index last = theta.size() - 1;
  if ((k > 0 && !(t > theta[k - 1])) || (k < last && !(t < theta[k + 1])) || !std::isfinite(t))
    return -std::numeric_limits<double>::infinity();
  const double z = (t - beta0) / sd;
  const double out = log_lik(t) - 0.5 * z * z;
  return std::isfinite(out) ? out : -std::numeric_limits<double>::infinity();
}

// One slice step for each of theta_1 .. theta_{K-2} in turn (theta_0 = 0 stays).
template <typename G>
void cutpoint_step(const CategoryRows& cats, const double* y, const double* eta, Vector& theta,
                   double beta0, double sd, std::vector<SliceWidth>& widths, bool adapt,
                   int threads, rng::Rng& rng) {
  widths.resize(static_cast<std::size_t>(theta.size()));
  for (Index k = 1; k < theta.size(); ++k) {
    const CutpointLogLik<G> log_lik(cats, y, eta, theta, k, threads);
    const auto target = [&](double t) {
      return cutpoint_log_target(log_lik, theta, k, t, beta0, sd);
    };
    SliceWidth& w = widths[static_cast<std::size_t>(k)];
    theta[k] = slice_step(target, theta[k], w.width, rng);
    if (adapt) w.learn(theta[k]);
  }
}

// The update of c_0 = -beta_0 given c_1.. (see above), by one slice step; eta the linear
// predictor with beta_0. Shifts theta_1.. by the returned change of beta_0, which the caller
// applies to beta_0 and to whatever else holds it (eta, a centred random intercept).
template <typename G>
double first_cutpoint_shift(const CategoryRows& cats, const double* y, const double* eta,
                            Vector& theta, double beta0, double sd, SliceWidth& width, bool adapt,
                            int threads, rng::Rng& rng) {
  const Vector c = theta.array() - beta0;  // the cutpoints on the data's scale
  const CutpointLogLik<G> log_lik(cats, y, eta, c, 0, threads, beta0);
  const auto target = [&](double t) { return cutpoint_log_target(log_lik, c, 0, t, 0.0, sd); };
  const double c0 = slice_step(target, c[0], width.width, rng);
  if (adapt) width.learn(c0);
  const double delta = -c0 - beta0;
  for (Index k = 1; k < theta.size(); ++k) theta[k] += delta;
  return delta;
}

// Starting cutpoints theta from the marginal category frequencies (total weights), relative to
// beta_0 = -F^{-1}(the share of category 0), and the corresponding beta_0 (returned); each share
// is kept within [1 / (2 N), 1 - 1 / (2 N)] so that an empty category still gives distinct
// cutpoints.
template <typename G>
double marginal_cutpoints(const CategoryRows& cats, Vector& theta) {
  const int k_cats = cats.categories();
  double n = 0.0;
  for (double t : cats.total) n += t;
  theta.resize(k_cats - 1);
  double below = 0.0, previous = -std::numeric_limits<double>::infinity(), first = 0.0;
  for (int k = 0; k + 1 < k_cats; ++k) {
    below += cats.total[static_cast<std::size_t>(k)];
    const double share = std::min(std::max(below / n, 0.5 / n), 1.0 - 0.5 / n);
    double c = G::Link::link(share);
    if (!(c > previous + 0.05)) c = previous + 0.05;
    if (k == 0) first = c;
    theta[k] = c - first;
    previous = c;
  }
  return -first;
}

// Coordinate-wise maximisation of theta given beta_0 and eta (a few golden-section sweeps on
// each theta_k's interval; the log-likelihood is concave in theta for these links). Starting
// values only.
template <typename G>
void cutpoint_mode(const CategoryRows& cats, const double* y, const double* eta, Vector& theta,
                   double beta0, double sd, int threads) {
  const Index last = theta.size() - 1;
  for (int sweep = 0; sweep < 3; ++sweep) {
    for (Index k = 1; k <= last; ++k) {
      const CutpointLogLik<G> log_lik(cats, y, eta, theta, k, threads);
      const auto f = [&](double t) { return cutpoint_log_target(log_lik, theta, k, t, beta0, sd); };
      const double span = k < last ? theta[k + 1] - theta[k - 1] : 0.0;
      const double lo = theta[k - 1] + 1e-6 * (1.0 + span);
      const double hi = k < last ? theta[k + 1] - 1e-6 * (1.0 + span) : theta[k] + 10.0;
      const double best = golden_section_argmax(f, lo, hi, 0.0, 40);
      if (f(best) >= f(theta[k])) theta[k] = best;
    }
  }
}

// A draw from the prior: K - 1 sorted N(0, s^2) draws c; beta_0 = -c_0 and theta = c - c_0.
inline double cutpoint_prior_rng(double sd, int categories, Vector& theta, rng::Rng& rng) {
  std::vector<double> c(static_cast<std::size_t>(categories - 1));
  for (double& v : c) v = sd * rng.std_normal();
  std::sort(c.begin(), c.end());
  theta.resize(categories - 1);
  for (int k = 0; k + 1 < categories; ++k) theta[k] = c[static_cast<std::size_t>(k)] - c[0];
  return -c[0];
}

}  // namespace bglmm::steps
