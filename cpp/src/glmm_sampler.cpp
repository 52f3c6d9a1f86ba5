// Metropolis-within-Gibbs driver for GLMMs: data checks, initialisation, sweeps, warm-up
// adaptation, thinning, storage; Geweke simulator; pointwise log-likelihood. See
// bglmm/glmm_sampler.hpp.
#include "bglmm/glmm_sampler.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <new>
#include <stdexcept>

#include "bglmm/error.hpp"
#include "bglmm/glm_sampler.hpp"
#include "bglmm/linalg/cholesky.hpp"
#include "bglmm/linalg/mvn.hpp"
#include "bglmm/linalg/wishart.hpp"
#include "bglmm/linear_predictor.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/rng/distributions.hpp"
#include "bglmm/steps/covariance.hpp"
#include "bglmm/steps/extra_blocks.hpp"
#include "bglmm/steps/fixed_effects.hpp"
#include "bglmm/steps/glmm_dispersion.hpp"
#include "bglmm/steps/group_mh.hpp"
#include "bglmm/steps/interweave.hpp"
#include "bglmm/steps/marginal_move.hpp"
#include "bglmm/steps/non_centred_slice.hpp"

namespace bglmm {

// ---- model pieces ----------------------------------------------------------------------

void GlmmState::set_sigma(const Matrix& s) {
  SigmaFactors f;
  if (!factor_sigma(s, f))
    throw NumericalError("random-effect covariance Sigma is not symmetric positive definite");
  commit_sigma(std::move(f));
}

bool GlmmState::factor_sigma(const Matrix& s, SigmaFactors& out) {
  out.sigma = 0.5 * (s + s.transpose());
  Eigen::LLT<Matrix> llt(out.sigma);
  if (llt.info() != Eigen::Success) return false;
  out.chol = llt.matrixL();
  if (!out.chol.allFinite() || !(out.chol.diagonal().minCoeff() > 0.0)) return false;
  out.prec = linalg::inverse_from_cholesky(out.chol);
  out.prec = 0.5 * (out.prec + out.prec.transpose());
  return out.prec.allFinite();
}

void GlmmState::commit_sigma(SigmaFactors&& f) {
  sigma = std::move(f.sigma);
  sigma_chol = std::move(f.chol);
  sigma_prec = std::move(f.prec);
}

// The distinct (y, trials) pairs and their counts (the sums of their rows' case weights), for a
// family with a dispersion (else empty); the rows of each category, for a cumulative family.
static void tabulate_responses(GlmmData& d) {
  d.total_weight = d.obs.total_weight();
  if (d.categories > 0)
    d.category_rows = steps::make_category_rows(d.obs.y.data(), d.obs.rows(), d.categories,
                                                d.obs.weighted() ? d.obs.weights.data() : nullptr);
  dispatch(d.obs.family_link, [&](auto g) {
    using F = typename decltype(g)::Family;
    if constexpr (HasDispersion<decltype(g)>) {
      std::map<std::pair<double, double>, double> distinct;
      for (Index i = 0; i < d.obs.rows(); ++i)
        distinct[{d.obs.y[i], F::has_trials ? d.obs.trials[i] : 0.0}] += d.obs.weight(i);
      const Index u = static_cast<Index>(distinct.size());
      d.distinct_y.resize(u);
      d.distinct_trials.resize(u);
      d.distinct_count.resize(u);
      Index k = 0;
      for (const auto& [pair, count] : distinct) {
        d.distinct_y[k] = pair.first;
        d.distinct_trials[k] = pair.second;
        d.distinct_count[k++] = count;
      }
    }
    return 0;
  });
}

namespace {
// free_shift, xbar_resid and xbar_resid_cross (glmm_model.hpp) from the group means xbar_free.
void set_free_shift(GlmmData& d) {
  const Index p = d.p(), pf = d.p_free(), k0 = d.intercept_term;
  d.free_shift.setZero(p, pf);
  for (Index k = 0; k < pf; ++k) d.free_shift(d.free_cols[static_cast<std::size_t>(k)], k) = 1.0;
  if (k0 < 0) return;  // no random intercept: the move changes beta_F alone
  std::vector<Index> on_intercept;  // the centred coefficients of the intercept's mean
  for (Index a = 0; a < d.p_centred(); ++a)
    if (d.centred_term[static_cast<std::size_t>(a)] == k0) on_intercept.push_back(a);
  const Index pw = static_cast<Index>(on_intercept.size());
  Matrix w(d.m(), pw);
  for (Index b = 0; b < pw; ++b) w.col(b) = d.centred_value.col(on_intercept[b]);
  const Matrix c = pw > 0 ? Matrix(w.completeOrthogonalDecomposition().solve(Matrix(d.xbar_free)))
                          : Matrix(0, pf);
  d.xbar_resid = d.xbar_free;
  if (pw > 0) d.xbar_resid -= w * c;
  d.xbar_resid_cross = d.xbar_resid.transpose() * d.xbar_resid;
  for (Index b = 0; b < pw; ++b)
    d.free_shift.row(d.centred_cols[static_cast<std::size_t>(on_intercept[b])]) = -c.row(b);
}
}  // namespace

GlmmData make_glmm_data(const GroupedData& obs,
                        const std::vector<std::pair<Index, Index>>& centred, int categories) {
  const Index p = obs.p(), q = obs.q(), n = obs.rows(), m = obs.n_groups();
  if (p == 0) throw std::invalid_argument("glmm: X has no columns");
  if (q > kMaxRandomTerms)
    throw std::invalid_argument(concat("glmm: at most ", kMaxRandomTerms,
                                       " random-effect terms per group are supported, got ", q));
  GlmmData d{obs};  // the rest from the member initialisers
  std::vector<bool> used(static_cast<std::size_t>(p), false);
  const Index pc = static_cast<Index>(centred.size());
  d.centred_value.setZero(m, pc);
  for (Index a = 0; a < pc; ++a) {
    const auto [c, k] = centred[static_cast<std::size_t>(a)];
    if (c < 0 || c >= p)
      throw std::invalid_argument(concat("glmm: centred column ", c, " is not a column of X"));
    if (k < 0 || k >= q)
      throw std::invalid_argument(concat("glmm: centred term ", k, " is not a column of Z"));
    if (used[static_cast<std::size_t>(c)])
      throw std::invalid_argument(concat("glmm: column ", c, " of X is centred twice"));
    const bool same = (obs.x.col(c) - obs.z.col(k)).cwiseAbs().maxCoeff() == 0.0;
    const bool ones = (obs.z.col(k).array() == 1.0).all();
    for (Index g = 0; g < m; ++g) {
      const double w = same ? 1.0 : obs.x(obs.begin(g), c);
      if (!same) {
        if (!ones)
          throw std::invalid_argument(concat("glmm: X column ", c, " and random term ", k,
                                             " differ, and the term is not an intercept"));
        for (Index i = obs.begin(g); i < obs.begin(g) + obs.size(g); ++i)
          if (obs.x(i, c) != w)
            throw std::invalid_argument(concat("glmm: X column ", c,
                                               " varies within group ", g,
                                               " and cannot be attached to the random intercept"));
      }
      d.centred_value(g, a) = w;
    }
    used[static_cast<std::size_t>(c)] = true;
    d.centred_cols.push_back(c);
    d.centred_term.push_back(k);
  }
  d.centred_cross = d.centred_value.transpose() * d.centred_value;
  for (Index j = 0; j < p; ++j)
    if (!used[static_cast<std::size_t>(j)]) d.free_cols.push_back(j);
  const Index pf = d.p_free();
  d.x_free.resize(n, pf);
  for (Index k = 0; k < pf; ++k) d.x_free.col(k) = obs.x.col(d.free_cols[static_cast<std::size_t>(k)]);
  d.z_cols = obs.z;
  for (Index k = 0; k < q && d.intercept_term < 0; ++k)
    if ((obs.z.col(k).array() == 1.0).all()) d.intercept_term = k;
  if (d.intercept_term >= 0) {
    // group means of the free columns (weighted by the case weights where a group has any)
    d.xbar_free.setZero(m, pf);
    for (Index g = 0; g < m; ++g) {
      const auto rows = d.x_free.middleRows(obs.begin(g), obs.size(g));
      const double tw = obs.weighted() ? obs.weights.segment(obs.begin(g), obs.size(g)).sum() : 0.0;
      if (tw > 0.0)
        d.xbar_free.row(g) = obs.weights.segment(obs.begin(g), obs.size(g)).transpose() * rows / tw;
      else
        d.xbar_free.row(g) = rows.colwise().mean();
    }
  }
  set_free_shift(d);
  dispatch(obs.family_link, [&](auto g) {  // families with a dispersion: their own support
    using F = typename decltype(g)::Family;
    if constexpr (HasDispersion<decltype(g)>) {
      for (Index i = 0; i < n; ++i)
        if (!F::in_support(obs.y[i], obs.trials[i]))
          throw std::invalid_argument(concat("glmm: y[", i, "] = ", obs.y[i], " (trials ",
                                             obs.trials[i], ") is outside the support of the ",
                                             F::name, " family"));
    }
    return 0;
  });
  const bool cumulative =
      dispatch(obs.family_link, [](auto g) { return HasCutpoints<decltype(g)>; });
  if (cumulative != (categories > 0))
    throw std::invalid_argument(cumulative ? "glmm: the cumulative family needs categories >= 2"
                                           : "glmm: categories are for the cumulative family");
  d.categories = categories;
  tabulate_responses(d);
  const bool counts = obs.family_link == FamilyLink::PoissonLog ||
                      obs.family_link == FamilyLink::BinomialLogit ||
                      obs.family_link == FamilyLink::BinomialProbit ||
                      obs.family_link == FamilyLink::BinomialCloglog;
  if (counts) {
    for (Index i = 0; i < n; ++i) {
      const double y = obs.y[i];
      if (y < 0.0 || y != std::floor(y))
        throw std::invalid_argument(concat("glmm: y[", i, "] = ", y, " is not a whole count"));
      if (obs.family_link != FamilyLink::PoissonLog) {
        const double t = obs.trials[i];
        if (!(t > 0.0) || t != std::floor(t))
          throw std::invalid_argument(concat("glmm: trials[", i, "] = ", t, " is not a positive integer"));
        if (y > t)
          throw std::invalid_argument(concat("glmm: y[", i, "] = ", y, " exceeds trials ", t));
      }
    }
  }
  return d;
}

ExtraBlock make_extra_block(ConstIndexVectorRef codes, ConstRowMatrixRef z,
                            ConstIndexVectorRef level_start, ConstIndexVectorRef level_rows,
                            const Eigen::Map<const RowMatrix>& x, Index block) {
  const std::string fn = concat("random-effect block ", block);
  const Index n = x.rows();
  check_size_match(fn.c_str(), "level codes", codes.size(), "rows", n);
  check_size_match(fn.c_str(), "rows of its Z", z.rows(), "rows", n);
  check_size_match(fn.c_str(), "row index", level_rows.size(), "rows", n);
  if (z.cols() == 0) throw std::invalid_argument(fn + ": Z has no columns");
  if (z.cols() > kMaxRandomTerms)
    throw std::invalid_argument(concat(fn, ": at most ", kMaxRandomTerms, " terms, got ", z.cols()));
  check_all_finite(fn.c_str(), "Z", z);
  if (level_start.size() < 2) throw std::invalid_argument(fn + ": needs at least one level");
  const Index m = level_start.size() - 1;
  if (level_start[0] != 0 || level_start[m] != n)
    throw std::invalid_argument(fn + ": level offsets must start at 0 and end at N");
  std::vector<std::uint8_t> seen(static_cast<std::size_t>(n), 0);
  for (Index j = 0; j < m; ++j) {
    if (level_start[j + 1] < level_start[j])
      throw std::invalid_argument(fn + ": level offsets must not decrease");
    for (auto r = level_start[j]; r < level_start[j + 1]; ++r) {
      const auto i = level_rows[r];
      if (i < 0 || i >= n || seen[static_cast<std::size_t>(i)] || codes[i] != j)
        throw std::invalid_argument(concat(fn, ": the row index does not list the rows of level ",
                                           j, " (each row once, under its code)"));
      seen[static_cast<std::size_t>(i)] = 1;
    }
  }
  ExtraBlock blk{Eigen::Map<const IndexVector>(codes.data(), n),
                 Eigen::Map<const RowMatrix>(z.data(), n, z.cols()),
                 Eigen::Map<const IndexVector>(level_start.data(), m + 1),
                 Eigen::Map<const IndexVector>(level_rows.data(), n),
                 {}};
  std::vector<bool> taken(static_cast<std::size_t>(x.cols()), false);
  for (Index t = 0; t < z.cols(); ++t)
    for (Index c = 0; c < x.cols(); ++c)
      if (!taken[static_cast<std::size_t>(c)] && (x.col(c) - blk.z.col(t)).cwiseAbs().maxCoeff() == 0.0) {
        blk.shifts.push_back({t, c, Vector::Ones(m)});
        taken[static_cast<std::size_t>(c)] = true;
        break;
      }
  // level-constant covariates against a random intercept
  Index intercept = -1;
  for (Index t = 0; t < z.cols() && intercept < 0; ++t)
    if ((blk.z.col(t).array() == 1.0).all()) intercept = t;
  if (intercept >= 0) {
    for (Index c = 0; c < x.cols(); ++c) {
      if (taken[static_cast<std::size_t>(c)]) continue;
      Vector w(m);
      bool constant = true;
      for (Index j = 0; j < m && constant; ++j) {
        if (blk.begin(j) == blk.end(j)) { w[j] = 0.0; continue; }
        w[j] = x(static_cast<Index>(level_rows[blk.begin(j)]), c);
        for (Index r = blk.begin(j) + 1; r < blk.end(j) && constant; ++r)
          constant = x(static_cast<Index>(level_rows[r]), c) == w[j];
      }
      if (constant && w.cwiseAbs().maxCoeff() > 0.0) blk.shifts.push_back({intercept, c, std::move(w)});
    }
  }
  return blk;
}

void set_parent(ExtraBlock& blk, Index parent, const std::vector<Index>& parent_level,
                Index parent_levels, const Eigen::Map<const RowMatrix>& parent_z,
                const IndexVector& parent_codes) {
  const Index m = blk.m();
  check_size_match("nested block", "parent levels", static_cast<Index>(parent_level.size()),
                   "levels", m);
  check_size_match("nested block", "rows of the parent's Z", parent_z.rows(), "rows", blk.rows());
  blk.parent = parent;
  blk.parent_level = parent_level;
  blk.child_start.assign(static_cast<std::size_t>(parent_levels + 1), 0);
  for (Index j = 0; j < m; ++j) {
    const Index p = parent_level[static_cast<std::size_t>(j)];
    if (p < 0 || p >= parent_levels)
      throw std::invalid_argument(concat("nested block: parent level ", p, " out of range"));
    ++blk.child_start[static_cast<std::size_t>(p + 1)];
  }
  for (Index p = 0; p < parent_levels; ++p)
    blk.child_start[static_cast<std::size_t>(p + 1)] += blk.child_start[static_cast<std::size_t>(p)];
  blk.children.assign(static_cast<std::size_t>(m), 0);
  std::vector<Index> fill(blk.child_start.begin(), blk.child_start.end() - 1);
  for (Index j = 0; j < m; ++j)
    blk.children[static_cast<std::size_t>(fill[static_cast<std::size_t>(parent_level[static_cast<std::size_t>(j)])]++)] = j;
  check_size_match("nested block", "parent codes", parent_codes.size(), "rows", blk.rows());
  for (Index i = 0; i < blk.rows(); ++i)
    if (parent_level[static_cast<std::size_t>(blk.codes[i])] != parent_codes[i])
      throw std::invalid_argument(concat("nested block: row ", i, " lies in parent level ",
                                         parent_codes[i], ", not in its level's parent"));
  blk.nest_pairs.clear();
  std::vector<bool> taken(static_cast<std::size_t>(parent_z.cols()), false);
  for (Index t = 0; t < blk.q(); ++t)
    for (Index c = 0; c < parent_z.cols(); ++c)
      if (!taken[static_cast<std::size_t>(c)] &&
          (parent_z.col(c) - blk.z.col(t)).cwiseAbs().maxCoeff() == 0.0) {
        blk.nest_pairs.emplace_back(t, c);
        taken[static_cast<std::size_t>(c)] = true;
        break;
      }
}

void prepare_priors(const GlmmData& d, GlmmPriors& pr) {
  const char* fn = "glmm priors";
  const Index p = d.p(), q = d.q();
  check_size_match(fn, "extra covariance priors", static_cast<Index>(pr.extra_cov.size()),
                   "extra random-effect blocks", static_cast<Index>(d.extra.size()));
  for (std::size_t k = 0; k < d.extra.size(); ++k)
    steps::check_covariance_prior(concat("glmm prior of block ", k + 1).c_str(), pr.extra_cov[k],
                                  d.extra[k].q());
  check_size_match(fn, "prior mean", pr.beta_mean.size(), "columns of X", p);
  check_size_match(fn, "prior covariance rows", pr.beta_cov.rows(), "columns of X", p);
  check_size_match(fn, "prior covariance columns", pr.beta_cov.cols(), "columns of X", p);
  steps::check_covariance_prior("glmm prior", pr.cov, q);
  const Matrix l = linalg::cholesky_lower(pr.beta_cov, "glmm: prior covariance of beta", true);
  pr.beta_prec = linalg::inverse_from_cholesky(l);
  pr.beta_prec = 0.5 * (pr.beta_prec + pr.beta_prec.transpose());
  pr.free_shift_prec = d.free_shift.transpose() * pr.beta_prec * d.free_shift;
  if (d.obs.family_link == FamilyLink::GaussianIdentity) {
    check_positive(fn, "residual variance prior shape", pr.phi_shape);
    check_positive(fn, "residual variance prior scale", pr.phi_scale);
  }
  steps::check_dispersion_prior(pr.dispersion);
  if (d.categories > 0) steps::check_cutpoint_prior(pr.cutpoints, p);
}

namespace {

using Clock = std::chrono::steady_clock;

void allocate_state(const GlmmData& d, GlmmState& s) {
  const Index m = d.m(), q = d.q();
  s.gamma.setZero(m, q);
  s.cache.resize(m, q);
  s.proposal.resize(m, q);
  s.adapt.log_rw_scale.setZero(m);
}

// Newton (IWLS) iterations with step halving to the mode of each group's full conditional,
// from gamma_j = mu; used only to start the chain.
template <typename G>
void group_modes(const GlmmData& d, GlmmState& s, int threads, bool warm_start,
                 RowMatrix* cov_out) {
  const Index m = d.m(), q = d.q();
  const Vector beta_free = free_coefficients(d, s.beta);
  const QMat prec = s.sigma_prec;
  ExceptionVault vault;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, group_chunk(m, threads)) num_threads(threads)
#endif
  for (Index g = 0; g < m; ++g) {
    vault.run([&] {
      QVec mu(q);
      group_centre(d, s.beta, g, mu);
      QVec x = warm_start ? QVec(s.gamma.row(g).transpose()) : mu;
      QVec grad(q), mean(q), cand(q);
      QMat info(q, q);
      linalg::SmallCholesky<QMat> llt(q);
      double lp = steps::group_data_pass<G, true>(d, g, beta_free.data(), x.data(), s.params(),
                                                  grad,
                                                  info);
      for (int it = 0; it < 30; ++it) {
        if (!steps::laplace_moments(x, grad, info, mu, prec, mean, llt)) break;
        const double lp_x = lp + steps::gaussian_quad(x, mu, prec);
        double f = 1.0;
        bool moved = false;
        for (int half = 0; half < 30; ++half) {
          cand = x + f * (mean - x);
          QVec g2(q);
          QMat i2(q, q);
          const double lc =
              steps::group_data_pass<G, true>(d, g, beta_free.data(), cand.data(), s.params(),
                                              g2, i2);
          if (std::isfinite(lc) && lc + steps::gaussian_quad(cand, mu, prec) >= lp_x) {
            const double change = (cand - x).norm();
            x = cand;
            lp = lc;
            grad = g2;
            info = i2;
            moved = change > 1e-10;
            break;
          }
          f *= 0.5;
        }
        if (!moved) break;
      }
      s.gamma.row(g) = x.transpose();
      if (cov_out != nullptr) {
        // Laplace posterior covariance (Z'WZ + P)^{-1} at the mode
        // (if the curvature is not numerically SPD, the prior covariance stands in)
        const QMat c = llt.compute(info + prec) ? llt.inverse() : QMat(s.sigma);
        for (Index k = 0; k < q; ++k)
          for (Index l = 0; l < q; ++l) (*cov_out)(g, k * q + l) = c(k, l);
      }
    });
  }
  vault.rethrow();
}

// The mode of family parameter `which` (0: phi, 1: phi2) given the other parameters, and the
// SD of its log there (from the curvature of its log target; 0.5 if that is not usable).
template <typename G>
std::pair<double, double> conditional_dispersion(const GlmmData& d, const GlmmPriors& pr,
                                                 GlmmState& s, int threads, int which) {
  full_linear_predictor(d, s, s.work.eta_rows, threads);
  const FamilyParams fp = s.params();
  const auto log_lik = [&](double v) {
    return steps::dispersion_log_lik<G>(d, s.work.eta_rows, fp.with(which, v), threads);
  };
  const steps::DispersionPrior& prior = pr.family_prior(which);
  const double phi = steps::dispersion_mode(log_lik, prior);
  const auto f = [&](double u) { return steps::dispersion_log_target(log_lik, prior, u); };
  const double u = std::log(phi), h = 1e-3;
  const double curvature = (2.0 * f(u) - f(u - h) - f(u + h)) / (h * h);
  const double log_sd = curvature > 0.0 && std::isfinite(curvature) ? 1.0 / std::sqrt(curvature) : 0.5;
  return {phi, std::min(log_sd, 0.5)};
}

// Cumulative families: theta at its coordinate-wise mode given the current linear predictor,
// and the intercept's prior mean with it.
template <typename G>
void cutpoints_to_mode(const GlmmData& d, GlmmPriors& pr, GlmmState& s, int threads) {
  full_linear_predictor(d, s, s.work.eta_rows, threads);
  steps::cutpoint_mode<G>(d.category_rows, d.obs.y.data(), s.work.eta_rows.data(), s.theta,
                          s.beta[pr.cutpoints.intercept_col], pr.cutpoints.sd, threads);
  sync_intercept_prior(pr, s);
}

// Cumulative families: one slice step of each cutpoint given the rest (steps/cutpoints.hpp).
// First c_0 (a shift of beta_0, theta_1.. and a centred random intercept together; the effects
// b_j stay), then theta_1.. one by one.
template <typename G>
void cutpoint_sweep(const GlmmData& d, GlmmPriors& pr, GlmmState& s, int threads, bool adapt,
                    rng::Rng& rng) {
  const Index ic = pr.cutpoints.intercept_col;
  full_linear_predictor(d, s, s.work.eta_rows, threads);
  s.adapt.cut_width.resize(static_cast<std::size_t>(s.theta.size()));
  const double delta = steps::first_cutpoint_shift<G>(
      d.category_rows, d.obs.y.data(), s.work.eta_rows.data(), s.theta, s.beta[ic],
      pr.cutpoints.sd, s.adapt.cut_width[0], adapt, threads, rng);
  s.beta[ic] += delta;
  for (std::size_t a = 0; a < d.centred_cols.size(); ++a)
    if (d.centred_cols[a] == ic)
      s.gamma.col(d.centred_term[a]) += delta * d.centred_value.col(static_cast<Index>(a));
  s.work.eta_rows.array() += delta;
  steps::cutpoint_step<G>(d.category_rows, d.obs.y.data(), s.work.eta_rows.data(), s.theta,
                          s.beta[pr.cutpoints.intercept_col], pr.cutpoints.sd, s.adapt.cut_width,
                          adapt, threads, rng);
  sync_intercept_prior(pr, s);
  s.cache.valid = false;
}

// pr: the chain's copy of the priors (a cumulative family's intercept prior mean follows the
// cutpoints).
template <typename G>
void initialise(const GlmmData& d, GlmmPriors& pr, const GlmmConfig& cfg, GlmmState& s,
                rng::ChainKey key, int threads, bool from_prior) {
  const Index p = d.p(), q = d.q();
  allocate_state(d, s);
  s.phi = 1.0;
  if (d.obs.family_link == FamilyLink::GaussianIdentity) {
    if (cfg.phi_init > 0.0) {
      s.phi = cfg.phi_init;
    } else if (!d.obs.weighted()) {
      const double mean = d.obs.y.mean();
      s.phi = std::max(1e-8, (d.obs.y.array() - mean).square().sum() /
                                 std::max<double>(1.0, static_cast<double>(d.obs.rows() - 1)));
    } else {  // the variance of y, the case weights as frequencies
      const double mean = d.obs.weights.dot(d.obs.y) / d.total_weight;
      s.phi = std::max(1e-8, (d.obs.weights.array() * (d.obs.y.array() - mean).square()).sum() /
                                 std::max(1.0, d.total_weight - 1.0));
    }
  }
  rng::Rng rng(key, 0, 0, rng::Stream::Init);
  if (from_prior) {
    const Matrix l0 = linalg::cholesky_lower(pr.beta_cov, "prior covariance");
    s.beta = linalg::multi_normal_chol_rng(pr.beta_mean, l0, rng);
    if constexpr (HasCutpoints<G>) {  // (beta_0, theta) from the cutpoints' prior
      s.beta[pr.cutpoints.intercept_col] =
          steps::cutpoint_prior_rng(pr.cutpoints.sd, d.categories, s.theta, rng);
      sync_intercept_prior(pr, s);
    }
    s.set_sigma(steps::covariance_prior_rng(pr.cov, q, rng));
    Vector mu(q);
    for (Index g = 0; g < d.m(); ++g) {
      group_centre(d, s.beta, g, mu);
      s.gamma.row(g) = linalg::multi_normal_chol_rng(mu, s.sigma_chol, rng).transpose();
    }
    if (d.obs.family_link == FamilyLink::GaussianIdentity)
      s.phi = rng::inv_gamma_rng(pr.phi_shape, pr.phi_scale, rng);
    if constexpr (HasDispersion<G>) s.phi = steps::dispersion_prior_rng(pr.dispersion, rng);
    if constexpr (HasSecondDispersion<G>) s.phi2 = steps::dispersion_prior_rng(pr.dispersion2, rng);
  } else {
    // Fixed effects: the GLM posterior mode ignoring the groups, jittered by one of its
    // standard deviations so that chains start apart (R-hat can see non-convergence).
    GlmData glm{Eigen::Map<const RowMatrix>(d.obs.x.data(), d.obs.rows(), p),
                Eigen::Map<const Vector>(d.obs.y.data(), d.obs.rows()),
                Eigen::Map<const Vector>(d.obs.trials.data(), d.obs.rows()),
                Eigen::Map<const Vector>(d.obs.offset.data(), d.obs.rows()), d.obs.family_link,
                Eigen::Map<const Vector>(d.obs.weights.data(), d.obs.weights.size())};
    if constexpr (HasCutpoints<G>) {
      steps::marginal_cutpoints<G>(d.category_rows, s.theta);
      sync_intercept_prior(pr, s);
    }
    GlmPrior gp;
    gp.mean = pr.beta_mean;
    gp.covariance = pr.beta_cov;
    gp.dispersion = pr.dispersion;
    gp.dispersion2 = pr.dispersion2;
    FamilyParams fp = s.params();
    const GlmMode mode = glm_joint_mode(glm, gp, threads, fp);
    s.phi = fp.phi;
    s.phi2 = fp.phi2;
    // the family parameters: the GLM's (which puts the groups' variation into them), then each
    // one's mode given each round's effects below, then jittered by one conditional SD of its
    // log
    constexpr int kParams = kFamilyParams<G>;
    const auto free_param = [&](int which) {
      return pr.family_prior(which).kind != steps::DispersionPriorKind::Fixed &&
             !(which == 0 && cfg.phi_init > 0.0);
    };
    if (kParams > 0 && cfg.phi_init > 0.0) s.phi = cfg.phi_init;
    const Matrix lc = linalg::cholesky_lower(mode.covariance, "initial covariance");
    s.beta = linalg::multi_normal_chol_rng(mode.beta, lc, rng);
    // Sigma: a typical value under the prior, then group modes, then the mode of Sigma given
    // those modes (inverse-Wishart: exact; otherwise the scatter with the prior's centre as
    // one pseudo-observation).
    const Matrix centre = steps::covariance_prior_centre(pr.cov, q);
    s.set_sigma(centre);
    // Laplace-EM: group modes and their curvature, then Sigma and the centred means from
    // them; a few rounds put the chain near the posterior mode (saves warm-up when there are
    // many groups and Sigma's posterior is narrow).
    RowMatrix cov(d.m(), q * q);
    // Up to 6 rounds; stop early once Sigma moves by less than 0.5% of its scale.
    for (int round = 0; round < 6; ++round) {
      group_modes<G>(d, s, threads, round > 0, &cov);
      Matrix total = steps::scatter_matrix(group_deviations(d, s.beta, s.gamma), Vector::Zero(q));
      for (Index g = 0; g < d.m(); ++g)
        for (Index k = 0; k < q; ++k)
          for (Index l = 0; l < q; ++l) total(k, l) += cov(g, k * q + l);
      const Matrix previous = s.sigma;
      if (pr.cov.separation())
        s.set_sigma((centre + total) / (static_cast<double>(d.m()) + 1.0));
      else
        s.set_sigma((pr.cov.iw.scale + total) /
                    (pr.cov.iw.df + static_cast<double>(d.m()) + static_cast<double>(q) + 1.0));
      if (d.p_centred() > 0) steps::centred_mean_step(d, pr, s, rng, true);
      // the free coefficients to their conditional mode given these effects (the GLM start
      // ignores the groups and may sit far out in a narrow conditional)
      const Vector beta_before = s.beta;
      steps::joint_free_mode<G>(d, pr, s, threads);
      for (int k = 0; k < kParams; ++k)
        if (free_param(k)) s.set_param(k, conditional_dispersion<G>(d, pr, s, threads, k).first);
      if constexpr (HasCutpoints<G>) cutpoints_to_mode<G>(d, pr, s, threads);
      double change = (s.beta - beta_before).cwiseAbs().maxCoeff() /
                      (1.0 + beta_before.cwiseAbs().maxCoeff());
      for (Index k = 0; k < q; ++k)
        for (Index l = 0; l < q; ++l)
          change = std::max(change, std::fabs(s.sigma(k, l) - previous(k, l)) /
                                        std::sqrt(s.sigma(k, k) * s.sigma(l, l)));
      if (round >= 1 && change < 0.005) break;
    }
    for (int k = 0; k < kParams; ++k) {
      if (free_param(k)) {
        const auto [mode_k, log_sd] = conditional_dispersion<G>(d, pr, s, threads, k);
        s.set_param(k, mode_k * std::exp(log_sd * rng.std_normal()));
      }
    }
    if constexpr (HasCutpoints<G>)  // apart, by a few draws from their conditional
      for (int rep = 0; rep < 3; ++rep) cutpoint_sweep<G>(d, pr, s, threads, false, rng);
  }
  s.adapt.log_rw_scale.setConstant(std::log(cfg.rw_scale));
  s.adapt.log_fixed_scale =
      d.p_free() > 0 ? std::log(2.38 * 2.38 / static_cast<double>(d.p_free())) : 0.0;
  s.cache.valid = false;
}

// The extra blocks' starting state: effects at zero and Sigma_k at its prior's centre, or
// (from_prior) both drawn from the prior, their parts added to the effective offset.
void init_extra_blocks(const GlmmData& d, const GlmmPriors& pr, GlmmState& s, Vector& offset,
                       rng::ChainKey key, bool from_prior) {
  s.extra.resize(d.extra.size());
  rng::Rng rng(key, 0, 1, rng::Stream::Init);
  for (std::size_t k = 0; k < d.extra.size(); ++k) {
    const ExtraBlock& blk = d.extra[k];
    ExtraBlockState& st = s.extra[k];
    const Index q = blk.q();
    st.b.setZero(blk.m(), q);
    st.log_scale_step = std::log(0.5);
    st.log_nest_step = std::log(0.5);
    st.collapsed = steps::make_adaptive_proposal(Vector::Constant(2, 0.2));
    const Matrix sigma = from_prior ? steps::covariance_prior_rng(pr.extra_cov[k], q, rng)
                                    : steps::covariance_prior_centre(pr.extra_cov[k], q);
    if (!steps::set_extra_sigma(st, sigma))
      throw NumericalError("the starting covariance of an extra block is not positive definite");
    if (!from_prior) continue;
    for (Index j = 0; j < blk.m(); ++j)
      st.b.row(j) = linalg::multi_normal_chol_rng(Vector::Zero(q), st.chol, rng).transpose();
    for (Index i = 0; i < blk.rows(); ++i)
      offset[i] += blk.z.row(i).dot(st.b.row(static_cast<Index>(blk.codes[i])));
  }
}

// Starting values with extra blocks: rounds of (each extra block's level modes and Sigma_k from
// them; the primary block's and free coefficients' joint mode) until beta settles. Block by
// block, a strongly coupled pair moves slowly, but a round costs a few passes over the data,
// against thousands of sweeps for the chain to crawl the same way.
template <typename G>
void extra_block_modes(const GlmmData& d, const GlmmPriors& pr, GlmmState& s, Vector& offset,
                       int threads, rng::Rng& rng) {
  if (d.extra.empty()) return;
  for (int round = 0; round < 40; ++round) {
    const Vector beta_before = s.beta;
    full_linear_predictor(d, s, s.work.eta_rows, threads);
    for (std::size_t k = 0; k < d.extra.size(); ++k) {
      const ExtraBlock& blk = d.extra[k];
      ExtraBlockState& st = s.extra[k];
      const RowMatrix before = st.b;
      steps::extra_level_modes<G>(d, blk, st, s.params(), s.work.eta_rows, threads);
      for (Index i = 0; i < blk.rows(); ++i) {
        const Index j = static_cast<Index>(blk.codes[i]);
        offset[i] += blk.z.row(i).dot(st.b.row(j) - before.row(j));
      }
      const Matrix centre = steps::covariance_prior_centre(pr.extra_cov[k], blk.q());
      const Matrix scatter = steps::scatter_matrix(st.b, Vector::Zero(blk.q()));
      steps::set_extra_sigma(st, (centre + scatter) / (static_cast<double>(blk.m()) + 1.0));
    }
    s.cache.valid = false;
    if (d.p_free() > 0) {
      steps::joint_free_mode<G>(d, pr, s, threads);
    } else {
      group_modes<G>(d, s, threads, true, nullptr);
    }
    if (d.p_centred() > 0) steps::centred_mean_step(d, pr, s, rng, true);
    const double change = (s.beta - beta_before).cwiseAbs().maxCoeff() /
                          (1.0 + beta_before.cwiseAbs().maxCoeff());
    if (round >= 1 && change < 1e-4) break;
  }
  s.cache.valid = false;
}

// With extra blocks the chain owns an effective offset (the user's plus their parts), which
// every step of the primary block reads through d.obs.offset.
void point_offset_at(GlmmData& d, const Vector& offset) {
  new (&d.obs.offset) Eigen::Map<const Vector>(offset.data(), offset.size());
}

// A zero-inflated family reads its rows' zi shifts through the trials slot: the chain's own
// (steps/zero_inflation.hpp; all 0 without a zi formula), started with the slopes at 0.
template <typename G>
void start_zi_shifts(GlmmData& d, GlmmState& s) {
  if constexpr (IsZeroInflated<G>) {
    steps::zi_start(d.zi, d.obs.rows(), s.zi);
    new (&d.obs.trials) Eigen::Map<const Vector>(s.zi.shift.data(), s.zi.shift.size());
  }
}

struct SweepArgs {
  std::uint64_t iteration;
  bool warmup;
  double gain;
  int threads;
  const steps::MarginalMove* marginal = nullptr;  // frozen move, or null
  Vector* offset = nullptr;                       // the effective offset (extra blocks)
};

template <typename G, bool kLaplace>
void sweep(const GlmmData& d, GlmmPriors& pr, const GlmmConfig& cfg, GlmmState& s,
           rng::ChainKey key, const SweepArgs& a, GlmmStepInfo& info) {
  // 0. the extra blocks (their parts are the primary block's offset)
  if (!d.extra.empty()) {
    steps::ExtraStepArgs ea{key,        a.iteration, a.threads,
                            a.warmup,   a.gain,      cfg.drop_proposal_correction,
                            cfg.translation, cfg.collapsed_drop_normaliser, cfg.warmup};
    steps::extra_blocks_sweep<G>(d, pr, s, *a.offset, ea, info.extra);
  }
  if (!s.cache.valid) steps::refresh_group_cache<G, kLaplace>(d, s, a.threads);
  // 1. groups
  steps::GroupStepArgs ga;
  ga.key = key;
  ga.iteration = a.iteration;
  ga.threads = a.threads;
  ga.adapt = a.warmup && cfg.adapt_rw;
  ga.gain = a.gain;
  ga.rw_target = cfg.rw_target;
  ga.drop_correction = cfg.drop_proposal_correction;
  steps::group_mh_step<G, kLaplace>(d, s, ga, info);
  // 2. centred means
  if (d.p_centred() > 0) {
    rng::Rng rng(key, a.iteration, 0, rng::Stream::Mean);
    steps::centred_mean_step(d, pr, s, rng);
  }
  // 3. free fixed effects
  if (d.p_free() > 0) {
    steps::FixedStepArgs fa;
    fa.key = key;
    fa.iteration = a.iteration;
    fa.threads = a.threads;
    fa.adapt = a.warmup;
    fa.gain = a.gain;
    fa.target = cfg.fixed_target;
    fa.unshifted_centred_mean = cfg.unshifted_centred_mean;
    if constexpr (kLaplace) {
      steps::free_fixed_newton_step<G>(d, pr, s, fa, info);
    } else {
      steps::free_fixed_step<G, false>(d, pr, s, fa, info);
    }
  }
  // 4. Sigma
  {
    rng::Rng rng(key, a.iteration, 0, rng::Stream::Covariance);
    const RowMatrix dev = group_deviations(d, s.beta, s.gamma);
    const Matrix scatter = steps::scatter_matrix(dev, Vector::Zero(d.q()));
    s.set_sigma(steps::covariance_conditional_step(pr.cov, scatter, d.m(), s.sigma, rng));
  }
  // 4b. interweaving: (beta_C, L) in the non-centred parameterisation (Laplace kernel: needs
  //     the derivative caches); where it goes term by term (many terms, few groups), first the
  //     slice step of beta_C and Sigma's coordinates with eta fixed (steps/non_centred_slice.hpp),
  //     twice on few groups; for one random intercept or slope on few groups, the slice step of
  //     its log SD alone
  info.interweave_accepted = false;
  if constexpr (kLaplace) {
    const bool by_term = steps::interweave_by_term(d);
    const bool few_groups = d.q() == 1 && d.m() <= cfg.non_centred_slice_max_groups;
    if (cfg.non_centred_slice && (by_term || few_groups)) {
      const int passes =
          by_term && d.m() <= cfg.non_centred_slice_max_groups ? cfg.non_centred_slice_passes : 1;
      for (int pass = 0; pass < passes; ++pass) {
        steps::non_centred_slice_step<G>(d, pr, s, key, a.iteration, a.threads,
                                         /*sds_only=*/!by_term,
                                         cfg.non_centred_slice_double_jacobian, pass);
        steps::refresh_group_cache<G, true>(d, s, a.threads);
      }
    }
    if (cfg.interweave) {
      steps::InterweaveArgs ia;
      ia.key = key;
      ia.iteration = a.iteration;
      ia.threads = a.threads;
      ia.reversed = a.iteration % 2 == 0;
      ia.min_log_sd_curvature = steps::interweave_by_term(d) ? 0.0 : 1.0;
      steps::interweave_step<G>(d, pr, s, ia, s.work.eta, info.interweave_accepted);
    }
  }
  info.marginal_accepted = false;
  if constexpr (kLaplace) {
    if (a.marginal != nullptr && a.marginal->ready) {
      steps::MarginalArgs ma;
      ma.key = key;
      ma.iteration = a.iteration;
      ma.threads = a.threads;
      steps::marginal_move_step<G>(d, pr, s, *a.marginal, ma, s.work.eta, info.marginal_accepted);
    }
  }
  // 5. residual variance, or the family's dispersion
  if (d.obs.family_link == FamilyLink::GaussianIdentity) {
    rng::Rng rng(key, a.iteration, 0, rng::Stream::Dispersion);
    steps::dispersion_step(d, pr, s, a.threads, rng);
  }
  if constexpr (HasDispersion<G>) {
    rng::Rng rng(key, a.iteration, 0, rng::Stream::Dispersion);
    steps::family_dispersion_step<G>(d, pr, s, a.threads, a.warmup, rng);
  }
  // 5b. a zero-inflated family's zi formula: its intercept (the odds) and slopes
  if constexpr (IsZeroInflated<G>) {
    if (d.zi.active()) {
      steps::zi_formula_step<G>(d, pr, s,
                                steps::zi_step_args(key, a.iteration, a.warmup, cfg.warmup),
                                a.threads, cfg.zi_drop_slope_prior);
    }
  }
  // 6. the cumulative families' cutpoints
  if constexpr (HasCutpoints<G>) {
    rng::Rng rng(key, a.iteration, 1, rng::Stream::Dispersion);
    cutpoint_sweep<G>(d, pr, s, a.threads, a.warmup, rng);
  }
}

int effective_threads(const GlmmData& d, const GlmmConfig& cfg) {
  const int requested = resolve_threads(cfg.threads);
  const std::int64_t per = std::max<std::int64_t>(1, cfg.min_rows_per_thread);
  const std::int64_t useful = std::max<std::int64_t>(1, d.obs.rows() / per);
  return static_cast<int>(std::min<std::int64_t>(requested, useful));
}

// A chain's start: the state near the posterior mode (initialise, the extra blocks' modes, the
// free coefficients jittered apart), its caches, and the random walk's proposal covariance
// (the Laplace kernel's Newton proposal needs none).
template <typename G, bool kLaplace>
void start_chain(const GlmmData& d, GlmmPriors& pr, const GlmmConfig& cfg, GlmmState& s,
                 Vector& offset, rng::ChainKey key, int threads) {
  initialise<G>(d, pr, cfg, s, key, threads, false);
  init_extra_blocks(d, pr, s, offset, key, false);
  {
    rng::Rng rng(key, 0, 2, rng::Stream::Init);
    extra_block_modes<G>(d, pr, s, offset, threads, rng);
    steps::jitter_free_fixed<G>(d, pr, s, threads, rng);
  }
  steps::refresh_group_cache<G, kLaplace>(d, s, threads);
  if constexpr (!kLaplace) steps::set_fixed_proposal<G>(d, pr, s, threads);
}

// Freezes the marginal move when sampling starts: its proposal from the warm-up draws of psi,
// the Gaussian approximations at each group's conditional posterior mode given their mean. A
// refusal (too few warm-up draws, or a singular covariance) leaves the move off for the whole
// sampling phase, and is reported so that it does not pass for a move that rejects.
template <typename G>
void freeze_marginal(const GlmmData& d, const GlmmState& s, const steps::NonCentredLayout& layout,
                     steps::MarginalMove& marginal, int threads, GlmmChainResult& out) {
  GlmmState ref = s;
  Matrix ref_chol;
  steps::unpack_psi(d, layout, marginal.sum / static_cast<double>(marginal.count), ref.beta,
                    ref_chol);
  ref.set_sigma(ref_chol * ref_chol.transpose());
  group_modes<G>(d, ref, threads, true, nullptr);
  steps::refresh_group_cache<G, true>(d, ref, threads);
  out.marginal_status =
      steps::marginal_freeze(marginal, ref) ? MarginalStatus::On : MarginalStatus::NotFitted;
  out.marginal_warmup_draws = marginal.count;
}

// What a chain keeps: the draws, and the acceptance of each step over warm-up and sampling.
class ChainRecord {
 public:
  ChainRecord(const GlmmData& d, const GlmmConfig& cfg, const GlmmPriors& pr,
              GlmmChainResult& out)
      : d_(d), keep_b_(cfg.keep_group_effects), intercept_col_(pr.cutpoints.intercept_col),
        out_(out) {
    const std::int64_t kept = cfg.draws;
    const Index p = d.p(), q = d.q(), m = d.m(), n_extra = static_cast<Index>(d.extra.size());
    out.beta.setZero(kept, p);
    out.sigma.setZero(kept, q * q);
    if (keep_b_) out.b.setZero(kept, m * q);
    if (d.obs.family_link == FamilyLink::GaussianIdentity ||
        dispatch(d.obs.family_link, [](auto g) { return HasDispersion<decltype(g)>; }))
      out.phi.setZero(kept);
    if (dispatch(d.obs.family_link, [](auto g) { return HasSecondDispersion<decltype(g)>; }))
      out.phi2.setZero(kept);
    if (d.categories > 0) out.cutpoints.setZero(kept, d.categories - 1);
    if (d.zi.active()) out.zi_coef.setZero(kept, d.zi.p());
    out.log_lik.setZero(kept);
    out.group_accept_mean.setZero(kept);
    out.fixed_accepted.setZero(kept);
    for (const ExtraBlock& blk : d.extra) {
      out.extra_sigma.emplace_back(RowMatrix::Zero(kept, blk.q() * blk.q()));
      out.extra_b.emplace_back(keep_b_ ? RowMatrix::Zero(kept, blk.m() * blk.q()) : RowMatrix());
    }
    extra_level_ = Vector::Zero(n_extra);
    extra_scale_ = Vector::Zero(n_extra);
    group_warm_ = Vector::Zero(m);
    group_samp_ = Vector::Zero(m);
  }

  // After each sweep.
  void count(const GlmmStepInfo& info, bool warmup) {
    const Index m = d_.m();
    Vector& acc = warmup ? group_warm_ : group_samp_;
    mean_prob_ = 0.0;
    for (Index g = 0; g < m; ++g) {
      acc[g] += info.group_accepted[static_cast<std::size_t>(g)];
      mean_prob_ += info.group_accept_prob[static_cast<std::size_t>(g)];
    }
    mean_prob_ /= static_cast<double>(m);
    fixed_last_ = info.fixed_accepted;
    (warmup ? fixed_warm_ : fixed_samp_) += info.fixed_accepted ? 1 : 0;
    if (warmup) return;
    ++sampled_;
    interweave_ += info.interweave_accepted ? 1 : 0;
    marginal_ += info.marginal_accepted ? 1 : 0;
    for (std::size_t k = 0; k < d_.extra.size(); ++k) {
      extra_level_[static_cast<Index>(k)] += info.extra[k].level_accept_mean;
      extra_scale_[static_cast<Index>(k)] += info.extra[k].scale_accepted ? 1.0 : 0.0;
    }
  }

  // Stores the state as the next kept draw; the group caches must be valid.
  void keep(const GlmmState& s) {
    const Index q = d_.q(), m = d_.m(), r = stored_;
    out_.beta.row(r) = s.beta.transpose();
    out_.sigma.row(r) = Eigen::Map<const Eigen::RowVectorXd>(RowMatrix(s.sigma).data(), q * q);
    if (keep_b_) {
      const RowMatrix dev = group_deviations(d_, s.beta, s.gamma);
      out_.b.row(r) = Eigen::Map<const Eigen::RowVectorXd>(dev.data(), m * q);
    }
    if (out_.phi.size() > 0) out_.phi[r] = s.phi;
    if (out_.phi2.size() > 0) out_.phi2[r] = s.phi2;
    if (out_.cutpoints.size() > 0)
      out_.cutpoints.row(r) = (s.theta.array() - s.beta[intercept_col_]).matrix().transpose();
    if (out_.zi_coef.size() > 0) out_.zi_coef.row(r) = s.zi.alpha.transpose();
    for (std::size_t e = 0; e < s.extra.size(); ++e) {
      const ExtraBlockState& st = s.extra[e];
      const Index qk = st.sigma.rows();
      out_.extra_sigma[e].row(r) =
          Eigen::Map<const Eigen::RowVectorXd>(RowMatrix(st.sigma).data(), qk * qk);
      if (keep_b_) out_.extra_b[e].row(r) = Eigen::Map<const Eigen::RowVectorXd>(st.b.data(), st.b.size());
    }
    out_.log_lik[r] = s.cache.ll.sum();
    out_.group_accept_mean[r] = mean_prob_;
    out_.fixed_accepted[r] = fixed_last_ ? 1.0 : 0.0;
    ++stored_;
  }

  // The rates, once the loop has ended (after `warmup_sweeps` warm-up sweeps).
  void finish(std::int64_t warmup_sweeps, bool interweave_ran, bool marginal_ran) {
    const double nw = static_cast<double>(std::max<std::int64_t>(1, warmup_sweeps));
    const double ns = static_cast<double>(std::max<std::int64_t>(1, sampled_));
    const double nan = std::numeric_limits<double>::quiet_NaN();
    out_.sampling_sweeps = sampled_;
    out_.draws_done = stored_;
    out_.extra_level_acceptance = extra_level_ / ns;
    out_.extra_scale_acceptance = extra_scale_ / ns;
    out_.group_warmup_acceptance = group_warm_ / nw;
    out_.group_acceptance = group_samp_ / ns;
    out_.fixed_warmup_acceptance = static_cast<double>(fixed_warm_) / nw;
    out_.fixed_acceptance = static_cast<double>(fixed_samp_) / ns;
    out_.interweave_acceptance = interweave_ran ? static_cast<double>(interweave_) / ns : nan;
    out_.marginal_acceptance = marginal_ran ? static_cast<double>(marginal_) / ns : nan;
  }

 private:
  const GlmmData& d_;
  bool keep_b_;
  Index intercept_col_;
  GlmmChainResult& out_;
  Vector group_warm_, group_samp_, extra_level_, extra_scale_;
  std::int64_t fixed_warm_ = 0, fixed_samp_ = 0, interweave_ = 0, marginal_ = 0;
  std::int64_t sampled_ = 0, stored_ = 0;
  double mean_prob_ = 0.0;
  bool fixed_last_ = false;
};

template <typename G, bool kLaplace>
GlmmChainResult chain(GlmmData& d, const GlmmPriors& priors, const GlmmConfig& cfg,
                      rng::ChainKey key, const RunControl& control) {
  const int threads = effective_threads(d, cfg);
  GlmmPriors pr = priors;  // this chain's (see sync_intercept_prior)
  Vector offset = d.obs.offset;
  point_offset_at(d, offset);
  GlmmState s;
  start_zi_shifts<G>(d, s);
  start_chain<G, kLaplace>(d, pr, cfg, s, offset, key, threads);

  GlmmChainResult out;
  ChainRecord record(d, cfg, pr, out);
  // The marginal move learns its proposal from the last three quarters of warm-up and is frozen
  // when sampling starts.
  steps::MarginalMove marginal;
  const bool use_marginal = kLaplace && cfg.marginal_move;
  const steps::NonCentredLayout layout = steps::make_non_centred_layout(d, pr, false);
  out.marginal_dim = use_marginal ? layout.dim : 0;
  out.marginal_status = !use_marginal     ? MarginalStatus::NotRequested
                        : cfg.warmup == 0 ? MarginalStatus::NoWarmup
                                          : MarginalStatus::NotReached;

  const std::int64_t total = cfg.warmup + cfg.draws * cfg.thin;
  Poller poller(control, total);
  GlmmStepInfo info;
  const auto t0 = Clock::now();
  auto t_sampling = t0;
  for (std::int64_t t = 0; t < total; ++t) {
    const bool warmup = t < cfg.warmup;
    if (t == cfg.warmup) t_sampling = Clock::now();
    // Random-walk kernel: re-aim the block proposal at the current curvature a quarter and
    // half way through warm-up (the starting point may be far from the posterior).
    if constexpr (!kLaplace) {
      if (warmup && d.p_free() > 0 && t > 0 && (t == cfg.warmup / 4 || t == cfg.warmup / 2)) {
        if (!s.cache.valid) steps::refresh_group_cache<G, kLaplace>(d, s, threads);
        steps::set_fixed_proposal<G>(d, pr, s, threads);
      }
    }
    if (use_marginal && t == cfg.warmup && cfg.warmup > 0 && marginal.count > 0)
      freeze_marginal<G>(d, s, layout, marginal, threads, out);
    SweepArgs a{static_cast<std::uint64_t>(t) + 1, warmup,
                2.0 / std::pow(static_cast<double>(t) + 10.0, 0.6), threads,
                use_marginal ? &marginal : nullptr, &offset};
    sweep<G, kLaplace>(d, pr, cfg, s, key, a, info);
    if (use_marginal && warmup && t >= cfg.warmup / 4)
      steps::marginal_accumulate(marginal, steps::pack_psi(d, layout, s.beta, s.sigma_chol));
    record.count(info, warmup);
    if (!warmup && (t - cfg.warmup + 1) % cfg.thin == 0) {
      if (!s.cache.valid) steps::refresh_group_cache<G, kLaplace>(d, s, threads);
      record.keep(s);
    }
    if (poller.poll(t + 1)) {
      out.interrupted = t + 1 < total;
      if (out.interrupted) break;
    }
  }
  const auto t1 = Clock::now();
  if (cfg.warmup >= total) t_sampling = t1;
  out.warmup_seconds = std::chrono::duration<double>(t_sampling - t0).count();
  out.sampling_seconds = std::chrono::duration<double>(t1 - t_sampling).count();
  record.finish(std::min(cfg.warmup, total), kLaplace && cfg.interweave, marginal.ready);
  out.rw_scale = s.adapt.log_rw_scale.array().exp();
  out.zi_acceptance = s.zi.proposal.acceptance();
  out.threads_used = threads;
  // the random walk's frozen scale and proposal covariance (the Newton step uses neither)
  out.fixed_scale = kLaplace ? std::numeric_limits<double>::quiet_NaN()
                             : std::exp(s.adapt.log_fixed_scale);
  if (!kLaplace && d.p_free() > 0)
    out.fixed_proposal_cov = out.fixed_scale * s.adapt.fixed_chol * s.adapt.fixed_chol.transpose();
  return out;
}

// Exact draws of y | eta for the Geweke simulator.
double poisson_rng(double mean, rng::Rng& rng) {
  if (!(mean < 1e5)) throw NumericalError("geweke: Poisson mean too large to simulate");
  // inversion by sequential search
  double u = rng.uniform(), k = 0.0, prob = std::exp(-mean), cdf = prob;
  while (u > cdf && k < 1e7) {
    k += 1.0;
    prob *= mean / k;
    cdf += prob;
    if (prob == 0.0 && cdf < u) break;
  }
  return k;
}

template <typename G>
void simulate_y(const GlmmData& d, const GlmmState& s, Vector& y, rng::Rng& rng) {
  const Index q = d.q();
  const Vector beta_free = free_coefficients(d, s.beta);
  for (Index g = 0; g < d.m(); ++g) {
    for (Index i = d.obs.begin(g); i < d.obs.begin(g) + d.obs.size(g); ++i) {
      const double eta = row_eta(d, i, beta_free.data(), s.gamma.data() + g * q);
      if constexpr (std::is_same_v<G, GaussianIdentity>) {
        y[i] = eta + std::sqrt(s.phi) * rng.std_normal();
      } else if constexpr (std::is_same_v<G, PoissonLog>) {
        y[i] = poisson_rng(std::exp(eta), rng);
      } else if constexpr (std::is_same_v<G, NegBinomialLog>) {  // gamma-Poisson mixture
        y[i] = poisson_rng(rng::gamma_rng(s.phi, s.phi / std::exp(eta), rng), rng);
      } else if constexpr (std::is_same_v<G, GammaLog>) {  // mean e^eta, shape phi
        y[i] = rng::gamma_rng(s.phi, s.phi / std::exp(eta), rng);
      } else if constexpr (std::is_same_v<G, ZeroInflatedPoissonLog>) {  // zero: odds phi e^s_i
        const double odds = s.phi * std::exp(d.obs.trials[i]);
        const bool structural = rng.uniform() < odds / (1.0 + odds);
        const double count = poisson_rng(std::exp(eta), rng);
        y[i] = structural ? 0.0 : count;
      } else if constexpr (std::is_same_v<G, StudentIdentity>) {  // scale phi, df phi2
        const double t = rng.std_normal() / std::sqrt(rng::chi_square_rng(s.phi2, rng) / s.phi2);
        y[i] = eta + s.phi * t;
      } else if constexpr (HasCutpoints<G>) {  // the first category k with u < F(theta_k - eta)
        const double u = rng.uniform();
        Index k = 0;
        while (k < s.theta.size() && !(u < G::linkinv(s.theta[k] - eta))) ++k;
        y[i] = static_cast<double>(k);
      } else if constexpr (std::is_same_v<G, ZeroInflatedNegBinomialLog>) {  // odds phi2 e^s_i
        const double odds = s.phi2 * std::exp(d.obs.trials[i]);
        const bool structural = rng.uniform() < odds / (1.0 + odds);
        const double count = poisson_rng(rng::gamma_rng(s.phi, s.phi / std::exp(eta), rng), rng);
        y[i] = structural ? 0.0 : count;
      } else {
        double mu = G::linkinv(eta);
        if constexpr (HasDispersion<G>) {  // beta-binomial: p ~ Beta(phi mu, phi (1 - mu))
          mu = std::min(std::max(mu, 1e-12), 1.0 - 1e-12);
          mu = rng::beta_rng(s.phi * mu, s.phi * (1.0 - mu), rng);
        }
        double count = 0.0;
        for (double j = 0; j < d.obs.trials[i]; j += 1.0) count += rng.uniform() < mu ? 1.0 : 0.0;
        y[i] = count;
      }
    }
  }
}

template <typename G, bool kLaplace>
RowMatrix geweke(const GlmmData& data, const GlmmPriors& priors, const GlmmConfig& cfg,
                 std::int64_t iterations, rng::ChainKey key) {
  // case weights make the likelihood a tempered one, from which nothing simulates y
  if (data.obs.weighted()) throw std::invalid_argument("glmm_geweke: not with case weights");
  const int threads = effective_threads(data, cfg);
  GlmmPriors pr = priors;  // see sync_intercept_prior
  const Index p = data.p(), q = data.q();
  Vector y = data.obs.y;
  GlmmData d = data;
  new (&d.obs.y) Eigen::Map<const Vector>(y.data(), y.size());
  Vector offset = d.obs.offset;
  point_offset_at(d, offset);
  GlmmState s;
  start_zi_shifts<G>(d, s);
  initialise<G>(d, pr, cfg, s, key, threads, true);
  init_extra_blocks(d, pr, s, offset, key, true);
  if (d.zi.active()) {  // the zi slopes from their prior
    rng::Rng rng(key, 0, 2, rng::Stream::Test);
    for (Index k = 0; k < d.zi.p(); ++k) s.zi.alpha[k] = d.zi.prior_sd[k] * rng.std_normal();
    s.zi.shift = d.zi.x * s.zi.alpha;
  }
  {
    rng::Rng rng(key, 0, 1, rng::Stream::Test);
    simulate_y<G>(d, s, y, rng);
    tabulate_responses(d);
  }
  s.cache.valid = false;
  if (!kLaplace && d.p_free() > 0) {
    // random walk: a fixed block proposal from the prior curvature (no adaptation in a
    // Geweke run)
    const Matrix prec = steps::free_prior_precision(d, pr);
    s.adapt.fixed_chol = linalg::inverse_cholesky(linalg::cholesky_lower(prec, "prior precision"), "V");
    s.adapt.log_fixed_scale = std::log(0.5);
  }
  // The marginal move is valid for any frozen approximation and proposal; give it fixed,
  // deliberately rough ones (no adaptation in a Geweke run).
  steps::MarginalMove marginal;
  if (kLaplace && cfg.marginal_move) {
    const Index m = d.m();
    const steps::NonCentredLayout layout = steps::make_non_centred_layout(d, pr, false);
    marginal.ref_gamma.setZero(m, q);
    marginal.ref_shift.setZero(m, q);
    marginal.ref_info.setZero(m, q * q);
    for (Index g = 0; g < m; ++g)
      for (Index k = 0; k < q; ++k) marginal.ref_info(g, k * q + k) = 0.5 + 0.25 * static_cast<double>(g % 3);
    const Matrix centre_chol = linalg::cholesky_lower(steps::covariance_prior_centre(pr.cov, q),
                                                      "geweke: prior centre of Sigma");
    marginal.psi_mean = steps::pack_psi(d, layout, pr.beta_mean, centre_chol);
    marginal.psi_chol = 0.4 * Matrix::Identity(layout.dim, layout.dim);
    marginal.ready = true;
  }
  Index extra_cols = 0;
  for (const ExtraBlock& blk : d.extra) extra_cols += blk.q() * blk.q() + blk.q();
  const Index second = HasSecondDispersion<G> ? 1 : 0;
  const Index n_cut = d.categories > 0 ? d.categories - 1 : 0;
  const Index p_zi = d.zi.p();
  RowMatrix out(iterations, p + q * q + q + 1 + extra_cols + second + n_cut + p_zi);
  GlmmStepInfo info;
  for (std::int64_t t = 0; t < iterations; ++t) {
    SweepArgs a{static_cast<std::uint64_t>(t) + 1, false, 0.0, threads, &marginal, &offset};
    sweep<G, kLaplace>(d, pr, cfg, s, key, a, info);
    rng::Rng rng(key, static_cast<std::uint64_t>(t) + 1, 1, rng::Stream::Test);
    simulate_y<G>(d, s, y, rng);
    tabulate_responses(d);
    s.cache.valid = false;
    Vector mu(q);
    group_centre(d, s.beta, 0, mu);
    out.row(t).head(p) = s.beta.transpose();
    for (Index a1 = 0; a1 < q; ++a1)
      for (Index a2 = 0; a2 < q; ++a2) out(t, p + a1 * q + a2) = s.sigma(a1, a2);
    for (Index k = 0; k < q; ++k) out(t, p + q * q + k) = s.gamma(0, k) - mu[k];
    out(t, p + q * q + q) = s.phi;
    Index col = p + q * q + q + 1;
    for (const ExtraBlockState& st : s.extra) {
      const Index qk = st.sigma.rows();
      for (Index a1 = 0; a1 < qk; ++a1)
        for (Index a2 = 0; a2 < qk; ++a2) out(t, col++) = st.sigma(a1, a2);
      for (Index k = 0; k < qk; ++k) out(t, col++) = st.b(0, k);
    }
    if (second) out(t, col++) = s.phi2;
    for (Index k = 0; k < n_cut; ++k)
      out(t, col++) = s.theta[k] - s.beta[pr.cutpoints.intercept_col];
    for (Index k = 0; k < p_zi; ++k) out(t, col++) = s.zi.alpha[k];
  }
  return out;
}

template <typename Fn>
decltype(auto) dispatch_kernel(const GlmmData& d, const GlmmConfig& cfg, Fn&& fn) {
  return dispatch(d.obs.family_link, [&](auto g) {
    using G = decltype(g);
    if (cfg.kernel == GroupKernel::Laplace) return fn(G{}, std::true_type{});
    return fn(G{}, std::false_type{});
  });
}

void check_config(const GlmmConfig& cfg) {
  if (cfg.draws < 0 || cfg.warmup < 0 || cfg.thin < 1)
    throw std::invalid_argument("glmm: need draws >= 0, warmup >= 0 and thin >= 1");
  check_positive("glmm", "rw_scale", cfg.rw_scale);
  if (!(cfg.rw_target > 0.0 && cfg.rw_target < 1.0) ||
      !(cfg.fixed_target > 0.0 && cfg.fixed_target < 1.0))
    throw std::invalid_argument("glmm: acceptance targets must be in (0, 1)");
}

}  // namespace

GlmmChainResult run_glmm_chain(GlmmData data, const GlmmPriors& priors,
                               const GlmmConfig& config, rng::ChainKey key,
                               const RunControl& control) {
  check_config(config);
  return dispatch_kernel(data, config, [&](auto g, auto laplace) {
    return chain<decltype(g), decltype(laplace)::value>(data, priors, config, key, control);
  });
}

RowMatrix run_glmm_geweke(const GlmmData& data, const GlmmPriors& priors,
                          const GlmmConfig& config, std::int64_t iterations, rng::ChainKey key) {
  check_config(config);
  if (iterations < 1) throw std::invalid_argument("geweke: iterations must be >= 1");
  if (!steps::covariance_prior_proper(priors.cov))
    throw std::invalid_argument("geweke: needs a proper prior on Sigma (prior draws)");
  return dispatch_kernel(data, config, [&](auto g, auto laplace) {
    return geweke<decltype(g), decltype(laplace)::value>(data, priors, config, iterations, key);
  });
}

RowMatrix glmm_pointwise_log_lik(const GroupedData& obs, const RowMatrix& beta,
                                 const RowMatrix& b, const Vector& phi, const Vector& phi2,
                                 const RowMatrix& cutpoints, int threads,
                                 const std::vector<ExtraBlock>& extra,
                                 const std::vector<RowMatrix>& extra_b) {
  const char* fn = "glmm_pointwise_log_lik";
  const Index S = beta.rows(), q = obs.q(), m = obs.n_groups(), n = obs.rows();
  check_size_match(fn, "beta columns", beta.cols(), "columns of X", obs.p());
  check_size_match(fn, "b rows", b.rows(), "draws", S);
  check_size_match(fn, "b columns", b.cols(), "groups x terms", m * q);
  check_size_match(fn, "phi", phi.size(), "draws", S);
  if (phi2.size() > 0) check_size_match(fn, "phi2", phi2.size(), "draws", S);
  if (cutpoints.size() > 0) check_size_match(fn, "cutpoint rows", cutpoints.rows(), "draws", S);
  check_size_match(fn, "extra effects", static_cast<Index>(extra_b.size()), "extra blocks",
                   static_cast<Index>(extra.size()));
  for (std::size_t k = 0; k < extra.size(); ++k) {
    check_size_match(fn, "extra effects rows", extra_b[k].rows(), "draws", S);
    check_size_match(fn, "extra effects columns", extra_b[k].cols(), "levels x terms",
                     extra[k].m() * extra[k].q());
  }
  RowMatrix out(S, n);
  const int nt = resolve_threads(threads);
  (void)nt;
  dispatch(obs.family_link, [&](auto g) {
    using G = decltype(g);
    if (HasCutpoints<G> && cutpoints.cols() == 0)
      throw std::invalid_argument(concat(fn, ": the cumulative family needs cutpoints"));
    ExceptionVault vault;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (Index s = 0; s < S; ++s) {
      vault.run([&] {
        const Vector cut = cutpoints.size() > 0 ? Vector(cutpoints.row(s).transpose()) : Vector();
        const FamilyParams fp{phi[s], phi2.size() > 0 ? phi2[s] : 1.0, cut.data(),
                              static_cast<int>(cut.size())};
        for (Index j = 0; j < m; ++j) {
          for (Index i = obs.begin(j); i < obs.begin(j) + obs.size(j); ++i) {
            double eta = obs.offset[i] + obs.x.row(i).dot(beta.row(s));
            for (Index k = 0; k < q; ++k) eta += obs.z(i, k) * b(s, j * q + k);
            for (std::size_t e = 0; e < extra.size(); ++e) {
              const ExtraBlock& blk = extra[e];
              const Index qe = blk.q(), level = static_cast<Index>(blk.codes[i]);
              for (Index k = 0; k < qe; ++k) eta += blk.z(i, k) * extra_b[e](s, level * qe + k);
            }
            out(s, i) = G::log_lik(obs.y[i], obs.trials[i], eta, fp);
          }
        }
      });
    }
    vault.rethrow();
    return 0;
  });
  return out;
}

double glmm_log_lik_pass_seconds(const GroupedData& obs, const Vector& beta, const RowMatrix& b,
                                 double phi, int reps, int threads) {
  const Index q = obs.q(), m = obs.n_groups(), p = obs.p();
  check_size_match("glmm_log_lik_pass_seconds", "beta", beta.size(), "columns of X", p);
  check_size_match("glmm_log_lik_pass_seconds", "b rows", b.rows(), "groups", m);
  check_size_match("glmm_log_lik_pass_seconds", "b columns", b.cols(), "columns of Z", q);
  const int nt = resolve_threads(threads);
  (void)nt;
  if (dispatch(obs.family_link, [](auto g) { return HasCutpoints<decltype(g)>; }))
    throw std::invalid_argument("glmm_log_lik_pass_seconds: not for the cumulative families");
  const GlmmData d = make_glmm_data(obs, {});  // every column of X free
  std::vector<double> part(static_cast<std::size_t>(m));
  double best = 1e300, sink = 0.0;
  dispatch(obs.family_link, [&](auto g) {
    using G = decltype(g);
    for (int r = 0; r < std::max(1, reps); ++r) {
      const auto t0 = Clock::now();
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, group_chunk(m, nt)) num_threads(nt)
#endif
      for (Index j = 0; j < m; ++j) {
        QVec grad(q);
        QMat info(q, q);
        part[static_cast<std::size_t>(j)] =
            steps::group_data_pass<G, false>(d, j, beta.data(), b.data() + j * q,
                                             FamilyParams{phi}, grad, info);
      }
      double sum = 0.0;
      for (double v : part) sum += v;
      sink += sum;
      best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    return 0;
  });
  if (std::isnan(sink)) return best;  // keeps the passes from being optimised away
  return best;
}

}  // namespace bglmm
