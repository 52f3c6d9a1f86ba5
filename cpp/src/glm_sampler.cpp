// Bayesian GLM samplers: IWLS mode, random-walk and independence Metropolis-Hastings,
// exact conjugate draws for gaussian/identity. See bglmm/glm_sampler.hpp.
#include "bglmm/glm_sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "bglmm/error.hpp"
#include "bglmm/linalg/cholesky.hpp"
#include "bglmm/linalg/mvn.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/rng/distributions.hpp"

namespace bglmm {
namespace {

constexpr std::int64_t kChunk = 2048;  // rows per reduction chunk (fixed: determinism)

double eta_at(const GlmData& d, const Vector& beta, Index i) {
  return d.offset[i] + d.x.row(i).dot(beta);
}

// Prior precision Q0 = V0^{-1} and its Cholesky factor, and Q0 m0.
struct PriorPrecision {
  Matrix precision;
  Matrix l_precision;
  Vector precision_mean;
  explicit PriorPrecision(const GlmPrior& prior) {
    const Matrix l_cov = linalg::cholesky_lower(prior.covariance, "prior covariance", true);
    precision = linalg::inverse_from_cholesky(l_cov);
    l_precision = linalg::cholesky_lower(precision, "prior precision", true);
    precision_mean = precision * prior.mean;
  }
  double log_density(const Vector& beta, const Vector& mean) const {
    const Vector r = l_precision.transpose() * (beta - mean);
    return -0.5 * r.squaredNorm();
  }
};

// X'WX and X'score at beta (fixed-order reduction of per-chunk partial sums).
template <typename G>
void fisher_and_score(const GlmData& d, const Vector& beta, const FamilyParams& phi, int threads,
                      Matrix& info, Vector& score) {
  const Index p = d.cols();
  const std::int64_t n = d.rows();
  const std::int64_t n_chunks = (n + kChunk - 1) / kChunk;
  std::vector<Matrix> infos(static_cast<std::size_t>(n_chunks), Matrix::Zero(p, p));
  std::vector<Vector> scores(static_cast<std::size_t>(n_chunks), Vector::Zero(p));
  ExceptionVault vault;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(static) num_threads(threads) if (n_chunks > 1)
#endif
  for (std::int64_t c = 0; c < n_chunks; ++c) {
    vault.run([&] {
      Matrix& h = infos[static_cast<std::size_t>(c)];
      Vector& s = scores[static_cast<std::size_t>(c)];
      const std::int64_t end = std::min(n, (c + 1) * kChunk);
      for (std::int64_t i = c * kChunk; i < end; ++i) {
        const double eta = eta_at(d, beta, i);
        const double wt = d.weight(i);
        const double w = wt * G::weight(d.trials[i], eta, phi);
        const double u = wt * G::score(d.y[i], d.trials[i], eta, phi);
        h.selfadjointView<Eigen::Lower>().rankUpdate(d.x.row(i).transpose(), w);
        s.noalias() += u * d.x.row(i).transpose();
      }
    });
  }
  vault.rethrow();
  (void)threads;
  info = Matrix::Zero(p, p);
  score = Vector::Zero(p);
  for (std::int64_t c = 0; c < n_chunks; ++c) {
    info += infos[static_cast<std::size_t>(c)];
    score += scores[static_cast<std::size_t>(c)];
  }
  info = info.selfadjointView<Eigen::Lower>();
}

template <typename G>
double log_kernel_sum(const GlmData& d, const Vector& beta, const FamilyParams& phi, int threads) {
  return chunked_sum(d.rows(), kChunk, threads, [&](std::int64_t begin, std::int64_t end) {
    // eta for the whole chunk by one matrix-vector product into a stack buffer
    double buffer[kChunk];
    const Index len = static_cast<Index>(end - begin);
    Eigen::Map<Vector> eta(buffer, len);
    eta.noalias() = d.x.middleRows(begin, len) * beta;
    eta += d.offset.segment(begin, len);
    double total = 0.0;
    if (!d.weighted()) {
      for (Index k = 0; k < len; ++k) {
        const Index i = static_cast<Index>(begin) + k;
        total += G::log_kernel(d.y[i], d.trials[i], eta[k], phi);
      }
      return total;
    }
    for (Index k = 0; k < len; ++k) {
      const Index i = static_cast<Index>(begin) + k;
      if (d.weights[i] != 0.0) total += d.weights[i] * G::log_kernel(d.y[i], d.trials[i], eta[k], phi);
    }
    return total;
  });
}

template <typename G>
GlmMode find_mode(const GlmData& d, const GlmPrior& prior, const PriorPrecision& pp,
                  const FamilyParams& phi, int threads) {
  GlmMode mode;
  Vector beta = prior.mean;
  double lp = log_kernel_sum<G>(d, beta, phi, threads) + pp.log_density(beta, prior.mean);
  Matrix info;
  Vector score;
  for (int it = 0; it < 200; ++it) {
    fisher_and_score<G>(d, beta, phi, threads, info, score);
    const Matrix h = info + pp.precision;
    const Vector g = score + pp.precision_mean - pp.precision * beta;
    const Matrix l = linalg::cholesky_lower(h, "glm_mode: X'WX + V0^{-1}");
    Vector step = g;
    l.triangularView<Eigen::Lower>().solveInPlace(step);
    l.transpose().triangularView<Eigen::Upper>().solveInPlace(step);
    double factor = 1.0;
    bool improved = false;
    for (int half = 0; half < 40; ++half) {
      const Vector candidate = beta + factor * step;
      const double lp_new =
          log_kernel_sum<G>(d, candidate, phi, threads) + pp.log_density(candidate, prior.mean);
      if (std::isfinite(lp_new) && lp_new >= lp - 1e-10 * (1.0 + std::fabs(lp))) {
        beta = candidate;
        const double change = lp_new - lp;
        lp = lp_new;
        improved = true;
        mode.iterations = it + 1;
        if (factor * step.norm() < 1e-9 * (1.0 + beta.norm()) || std::fabs(change) < 1e-12) {
          mode.converged = true;
        }
        break;
      }
      factor *= 0.5;
    }
    if (!improved || mode.converged) {
      mode.converged = mode.converged || !improved;
      break;
    }
  }
  fisher_and_score<G>(d, beta, phi, threads, info, score);
  const Matrix l = linalg::cholesky_lower(info + pp.precision, "glm_mode: X'WX + V0^{-1}");
  mode.beta = beta;
  mode.covariance = linalg::inverse_from_cholesky(l);
  return mode;
}

// sigma_hat^2 (X'X)^{-1}, sigma_hat^2 the variance of the response on the link scale.
template <typename G>
Matrix scaled_cross_product(const GlmData& d) {
  const Index n = d.rows();
  Vector z(n);
  for (Index i = 0; i < n; ++i) {
    if constexpr (std::is_same_v<typename G::Link, links::Log>) {
      z[i] = std::log(d.y[i] + 0.5) - d.offset[i];
    } else if constexpr (G::Family::has_trials) {
      const double p = (d.y[i] + 0.5) / (d.trials[i] + 1.0);
      z[i] = G::Link::link(p) - d.offset[i];
    } else {
      z[i] = d.y[i] - d.offset[i];
    }
  }
  const double mean = z.mean();
  const double var = n > 1 ? (z.array() - mean).square().sum() / static_cast<double>(n - 1) : 1.0;
  Matrix xtx = d.x.transpose() * d.x;
  const Matrix l = linalg::cholesky_lower(xtx, "X'X (the design is rank deficient)", true);
  return std::max(var, 1e-8) * linalg::inverse_from_cholesky(l);
}

void allocate(GlmChainResult& out, std::int64_t kept, Index p, bool with_sigma,
              int family_params = 0) {
  out.beta.setZero(kept, p);
  out.log_posterior.setZero(kept);
  out.accepted.setZero(kept);
  if (with_sigma) out.sigma.setZero(kept);
  if (family_params >= 1) out.dispersion.setZero(kept);
  if (family_params >= 2) out.dispersion2.setZero(kept);
}

Vector linear_predictor(const GlmData& d, const Vector& beta) {
  return d.x * beta + d.offset;
}

// Sum of the full log-likelihood terms (kernel and constant: phi varies) at given eta.
template <typename G>
double log_lik_at_eta(const GlmData& d, const Vector& eta, const FamilyParams& phi, int threads) {
  return chunked_sum(d.rows(), kChunk, threads, [&](std::int64_t begin, std::int64_t end) {
    double total = 0.0;
    for (std::int64_t i = begin; i < end; ++i)
      if (d.weight(i) != 0.0) total += d.weight(i) * G::log_lik(d.y[i], d.trials[i], eta[i], phi);
    return total;
  });
}

// The value of parameter `which` maximising the log-likelihood plus its log prior (on the log)
// at beta and the other parameter.
template <typename G>
double dispersion_mode(const GlmData& d, const Vector& beta, const FamilyParams& fp, int which,
                       const steps::DispersionPrior& p, int threads) {
  const Vector eta = linear_predictor(d, beta);
  return steps::dispersion_mode(
      [&](double v) { return log_lik_at_eta<G>(d, eta, fp.with(which, v), threads); }, p);
}

// The joint mode of (beta, phi[, phi2]) by alternating the IWLS mode of beta given the family
// parameters and the mode of each parameter given the rest (a few rounds: beta and phi are
// nearly orthogonal for these families).
template <typename G>
GlmMode joint_mode(const GlmData& d, const GlmPrior& prior, const PriorPrecision& pp,
                   int threads, FamilyParams& fp) {
  for (int k = 0; k < kFamilyParams<G>; ++k) {
    const steps::DispersionPrior& p = prior.family_prior(k);
    fp = fp.with(k, p.kind == steps::DispersionPriorKind::Fixed ? p.a : 1.0);
  }
  for (int round = 0; round < 4; ++round) {
    const GlmMode mode = find_mode<G>(d, prior, pp, fp, threads);
    for (int k = 0; k < kFamilyParams<G>; ++k)
      fp = fp.with(k, dispersion_mode<G>(d, mode.beta, fp, k, prior.family_prior(k), threads));
  }
  return find_mode<G>(d, prior, pp, fp, threads);
}

// The cumulative families' cutpoints in the GLM chain (steps/cutpoints.hpp): theta (theta_0 =
// 0) relative to the intercept, whose prior mean (in pr and pp) is kept at mean(theta).
struct CutpointChain {
  Vector theta;
  steps::CategoryRows cats;
  std::vector<steps::SliceWidth> widths;
  GlmMode mode;

  void sync(GlmPrior& pr, PriorPrecision& pp) const {
    pr.mean[pr.cutpoints.intercept_col] = steps::intercept_prior_mean(theta);
    pp.precision_mean = pp.precision * pr.mean;
  }
  // the joint mode of (beta, theta) by alternating beta's IWLS mode given theta and theta's
  // coordinate-wise mode given beta, from the marginal category frequencies; phi points at theta
  template <typename G>
  void start(const GlmData& d, GlmPrior& pr, PriorPrecision& pp, int threads, FamilyParams& fp) {
    steps::check_cutpoint_prior(pr.cutpoints, d.cols());
    cats = steps::make_category_rows(d.y.data(), d.rows(), pr.categories,
                                     d.weighted() ? d.weights.data() : nullptr);
    steps::marginal_cutpoints<G>(cats, theta);
    fp.cut = theta.data();
    fp.n_cut = static_cast<int>(theta.size());
    for (int round = 0; round < 4; ++round) {
      sync(pr, pp);
      mode = find_mode<G>(d, pr, pp, fp, threads);
      const Vector eta = d.x * mode.beta + d.offset;
      steps::cutpoint_mode<G>(cats, d.y.data(), eta.data(), theta,
                              mode.beta[pr.cutpoints.intercept_col], pr.cutpoints.sd, threads);
    }
    sync(pr, pp);
    mode = find_mode<G>(d, pr, pp, fp, threads);
  }
  // c_0 (a shift of beta_0 and theta_1..), then theta_1.. one by one
  template <typename G>
  void step(const GlmData& d, Vector& beta, GlmPrior& pr, PriorPrecision& pp, bool adapt,
            int threads, rng::Rng& rng) {
    const Index ic = pr.cutpoints.intercept_col;
    Vector eta = d.x * beta + d.offset;
    widths.resize(static_cast<std::size_t>(theta.size()));
    const double delta = steps::first_cutpoint_shift<G>(cats, d.y.data(), eta.data(), theta,
                                                        beta[ic], pr.cutpoints.sd, widths[0],
                                                        adapt, threads, rng);
    beta[ic] += delta;
    eta.array() += delta;
    steps::cutpoint_step<G>(cats, d.y.data(), eta.data(), theta,
                            beta[pr.cutpoints.intercept_col], pr.cutpoints.sd, widths, adapt,
                            threads, rng);
    sync(pr, pp);
  }
  // the part of the cutpoints' joint log prior that the intercept's conditional prior leaves
  // out: sum_k N(theta_k - beta_0) = N(beta_0; mean theta, s^2/(K-1)) * exp(-sum (theta_k -
  // mean)^2 / (2 s^2)) up to constants
  double spread_log_prior(const GlmPrior& pr) const {
    const double sd = pr.cutpoints.sd;
    return -0.5 * (theta.array() - theta.mean()).square().sum() / (sd * sd);
  }

  // ---- the joint move: psi = (beta, theta_1 ..) by an independence Metropolis-Hastings step
  // with a multivariate-t proposal at the joint mode, scaled by the inverse Hessian there (the
  // conditional steps alone mix slowly: the cutpoints and the intercept are strongly coupled).
  static constexpr double kJointDf = 8.0;
  Vector psi_mode;
  Matrix psi_chol;  // lower Cholesky factor of the inverse Hessian at psi_mode
  bool joint_ready = false;
  std::int64_t joint_accepted = 0, joint_sampling = 0;

  static bool ordered(const Vector& th) {
    for (Index k = 1; k < th.size(); ++k)
      if (!(th[k] > th[k - 1])) return false;
    return true;
  }
  Vector pack(const Vector& beta, const Vector& th) const {
    Vector psi(beta.size() + th.size() - 1);
    psi << beta, th.tail(th.size() - 1);
    return psi;
  }
  void unpack(const Vector& psi, Index p, Vector& beta, Vector& th) const {
    beta = psi.head(p);
    th.resize(theta.size());
    th[0] = 0.0;
    th.tail(th.size() - 1) = psi.tail(th.size() - 1);
  }
  // log p(y | beta, theta) + log p(beta without beta_0) + sum_k log N(theta_k - beta_0; 0, s^2)
  template <typename G>
  double joint_log_post(const GlmData& d, const GlmPrior& pr, const PriorPrecision& pp,
                        const Vector& beta, const Vector& th, int threads) const {
    if (!ordered(th) || !beta.allFinite()) return -std::numeric_limits<double>::infinity();
    const Index ic = pr.cutpoints.intercept_col;
    const FamilyParams fp{1.0, 1.0, th.data(), static_cast<int>(th.size())};
    Vector m = pr.mean;
    m[ic] = beta[ic];  // the intercept is independent of the rest a priori: its term vanishes
    const double sd = pr.cutpoints.sd;
    const double lp = log_kernel_sum<G>(d, beta, fp, threads) + pp.log_density(beta, m) -
                      0.5 * (th.array() - beta[ic]).square().sum() / (sd * sd);
    return std::isfinite(lp) ? lp : -std::numeric_limits<double>::infinity();
  }
  // its gradient in psi
  template <typename G>
  Vector joint_gradient(const GlmData& d, const GlmPrior& pr, const PriorPrecision& pp,
                        const Vector& beta, const Vector& th) const {
    using F = typename G::Family;
    const Index p = d.cols(), kc = th.size(), ic = pr.cutpoints.intercept_col;
    const FamilyParams fp{1.0, 1.0, th.data(), static_cast<int>(kc)};
    Vector g = Vector::Zero(p + kc - 1);
    for (Index i = 0; i < d.rows(); ++i) {
      const double wt = d.weight(i);  // case weight
      if (wt == 0.0) continue;
      const double eta = eta_at(d, beta, i);
      const int k = static_cast<int>(d.y[i]);
      const double a = F::upper(k, eta, fp), b = F::lower(k, eta, fp);
      const double lp = F::log_prob(a, b);
      const double ra = wt * F::density_ratio(a, lp), rb = wt * F::density_ratio(b, lp);
      g.head(p).noalias() += (rb - ra) * d.x.row(i).transpose();
      if (k >= 1 && k < kc) g[p + k - 1] += ra;  // theta_k
      if (k >= 2) g[p + k - 2] -= rb;           // theta_{k-1}
    }
    Vector m = pr.mean;
    m[ic] = beta[ic];
    g.head(p) -= pp.precision * (beta - m);
    const double s2 = pr.cutpoints.sd * pr.cutpoints.sd;
    for (Index k = 0; k < kc; ++k) {
      const double r = (th[k] - beta[ic]) / s2;
      g[ic] += r;
      if (k >= 1) g[p + k - 1] -= r;
    }
    return g;
  }
  // the joint mode by Newton steps (Hessian by central differences of the gradient) from the
  // alternating mode, and the proposal's scale; off if the Hessian is not negative definite
  template <typename G>
  void prepare_joint(const GlmData& d, const GlmPrior& pr, const PriorPrecision& pp,
                     int threads) {
    const Index p = d.cols();
    for (Index j = 0; j < p; ++j)
      if (j != pr.cutpoints.intercept_col &&
          (pr.covariance(j, pr.cutpoints.intercept_col) != 0.0 ||
           pr.covariance(pr.cutpoints.intercept_col, j) != 0.0))
        throw std::invalid_argument(
            "cumulative family: the intercept must be independent of the other coefficients a "
            "priori");
    Vector psi = pack(mode.beta, theta);
    const Index dim = psi.size();
    Vector beta, th;
    const auto hessian = [&](const Vector& at) {
      Matrix h(dim, dim);
      for (Index j = 0; j < dim; ++j) {
        const double step = 1e-5 * std::max(1.0, std::fabs(at[j]));
        Vector up = at, down = at;
        up[j] += step;
        down[j] -= step;
        unpack(up, p, beta, th);
        const Vector gu = joint_gradient<G>(d, pr, pp, beta, th);
        unpack(down, p, beta, th);
        h.col(j) = -(gu - joint_gradient<G>(d, pr, pp, beta, th)) / (2.0 * step);
      }
      return Matrix(0.5 * (h + h.transpose()));
    };
    unpack(psi, p, beta, th);
    double lp = joint_log_post<G>(d, pr, pp, beta, th, threads);
    for (int it = 0; it < 20; ++it) {
      Eigen::LLT<Matrix> llt(hessian(psi));
      if (llt.info() != Eigen::Success) return;
      unpack(psi, p, beta, th);
      const Vector step = llt.solve(joint_gradient<G>(d, pr, pp, beta, th));
      double f = 1.0, lp_new = -std::numeric_limits<double>::infinity();
      Vector cand = psi;
      for (int half = 0; half < 30; ++half, f *= 0.5) {
        cand = psi + f * step;
        unpack(cand, p, beta, th);
        lp_new = joint_log_post<G>(d, pr, pp, beta, th, threads);
        if (lp_new >= lp - 1e-12 * (1.0 + std::fabs(lp))) break;
      }
      if (!(lp_new >= lp - 1e-12 * (1.0 + std::fabs(lp)))) break;
      const double moved = (cand - psi).norm();
      psi = cand;
      lp = lp_new;
      if (moved < 1e-9 * (1.0 + psi.norm())) break;
    }
    Eigen::LLT<Matrix> llt(hessian(psi));
    if (llt.info() != Eigen::Success) return;
    const Matrix cov = llt.solve(Matrix::Identity(dim, dim));
    Eigen::LLT<Matrix> chol(0.5 * (cov + cov.transpose()));
    if (chol.info() != Eigen::Success) return;
    psi_mode = psi;
    psi_chol = chol.matrixL();
    joint_ready = psi_chol.allFinite();
  }
  double joint_log_proposal(const Vector& psi) const {
    Vector r = psi - psi_mode;
    psi_chol.triangularView<Eigen::Lower>().solveInPlace(r);
    return -0.5 * (kJointDf + static_cast<double>(psi.size())) *
           std::log1p(r.squaredNorm() / kJointDf);
  }
  template <typename G>
  void joint_step(const GlmData& d, GlmPrior& pr, PriorPrecision& pp, Vector& beta, int threads,
                  rng::Rng& rng, rng::Rng& accept_rng) {
    if (!joint_ready) return;
    const Index p = d.cols(), dim = psi_mode.size();
    Vector z(dim);
    linalg::fill_std_normal(z, rng);
    const double w = rng::chi_square_rng(kJointDf, rng) / kJointDf;
    const Vector cand = psi_mode + (psi_chol * z) / std::sqrt(w);
    Vector beta_c, th_c;
    unpack(cand, p, beta_c, th_c);
    const double lp_c = joint_log_post<G>(d, pr, pp, beta_c, th_c, threads);
    const double log_ratio = lp_c - joint_log_post<G>(d, pr, pp, beta, theta, threads) +
                             joint_log_proposal(pack(beta, theta)) - joint_log_proposal(cand);
    if (std::isfinite(lp_c) && std::log(accept_rng.uniform()) < log_ratio) {
      beta = beta_c;
      theta = th_c;  // same size: the FamilyParams pointing at theta stay valid
      sync(pr, pp);
      ++joint_accepted;
    }
  }
};

template <typename G>
GlmChainResult metropolis_chain(const GlmData& data, const GlmPrior& prior,
                                const GlmConfig& cfg, rng::ChainKey key,
                                const RunControl& control) {
  const int threads = resolve_threads(cfg.threads);
  // A zero-inflated family reads its rows' zi shifts through the trials slot: the chain's own
  // (all 0 without a zi formula; steps/zero_inflation.hpp).
  GlmData d = data;
  steps::ZiState zi;
  constexpr int kZi = ZeroInflationParam<G>;
  if constexpr (kZi >= 0) {
    steps::zi_start(d.zi, d.rows(), zi);
    new (&d.trials) Eigen::Map<const Vector>(zi.shift.data(), zi.shift.size());
  }
  const bool zi_formula = kZi >= 0 && d.zi.active();
  const Index p = d.cols();
  FamilyParams phi{std::is_same_v<G, GaussianIdentity> ? cfg.known_sigma * cfg.known_sigma : 1.0};
  if (std::is_same_v<G, GaussianIdentity> && !(cfg.known_sigma > 0.0))
    throw std::invalid_argument(
        "run_glm_chain: Metropolis sampling of a gaussian model needs a known sigma");
  constexpr bool kDispersion = HasDispersion<G>;
  constexpr bool kCut = HasCutpoints<G>;
  constexpr int kParams = kFamilyParams<G>;
  for (int k = 0; k < kParams; ++k) steps::check_dispersion_prior(prior.family_prior(k));
  GlmPrior pr = prior;  // cumulative families: the intercept's prior mean follows the cutpoints
  PriorPrecision pp(prior);
  CutpointChain cuts;
  GlmMode mode;
  if constexpr (kCut) {
    cuts.start<G>(d, pr, pp, threads, phi);
    cuts.prepare_joint<G>(d, pr, pp, threads);
    mode = cuts.mode;
  } else {
    mode = kDispersion ? joint_mode<G>(d, prior, pp, threads, phi)
                       : find_mode<G>(d, prior, pp, phi, threads);
  }

  GlmChainResult out;
  out.mode = mode.beta;
  out.proposal_covariance = cfg.proposal_covariance == ProposalCovariance::Fisher
                                ? mode.covariance
                                : scaled_cross_product<G>(d);
  const Matrix l_v = linalg::cholesky_lower(out.proposal_covariance, "proposal covariance");
  const bool independence = cfg.method == GlmMethod::Independence;
  double log_scale =
      std::log(cfg.initial_scale > 0.0 ? cfg.initial_scale : 2.38 * 2.38 / static_cast<double>(p));

  const std::int64_t kept = cfg.draws;
  const std::int64_t total = cfg.warmup + cfg.draws * cfg.thin;
  allocate(out, kept, p, false, kParams);
  if constexpr (kCut) out.cutpoints.setZero(kept, prior.categories - 1);
  if (zi_formula) out.zi_coef.setZero(kept, d.zi.p());

  auto log_post = [&](const Vector& b) {
    return log_kernel_sum<G>(d, b, phi, threads) + pp.log_density(b, pr.mean);
  };
  // log density of the multivariate-t proposal, up to a constant.
  auto log_t = [&](const Vector& b) {
    Vector r = b - mode.beta;
    l_v.triangularView<Eigen::Lower>().solveInPlace(r);
    return -0.5 * (cfg.t_df + static_cast<double>(p)) * std::log1p(r.squaredNorm() / cfg.t_df);
  };

  // Overdispersed start: the mode plus two proposal standard deviations of noise, so that
  // R-hat can detect chains that have not forgotten where they began.
  Vector beta;
  {
    rng::Rng rng(key, 0, 0, rng::Stream::Init);
    beta = linalg::multi_normal_chol_rng(mode.beta, 2.0 * l_v, rng);
    // and each family parameter within a factor of about e^(+-1) of its mode
    for (int k = 0; k < kParams; ++k)
      if (prior.family_prior(k).kind != steps::DispersionPriorKind::Fixed)
        phi = phi.with(k, phi.get(k) * std::exp(0.5 * rng.std_normal()));
  }
  double lp = log_post(beta);
  if (!std::isfinite(lp)) {
    beta = mode.beta;
    lp = log_post(beta);
  }
  Vector z(p), step(p), candidate(p);
  Poller poller(control, total);
  std::int64_t accepted_warmup = 0, accepted_sampling = 0, sampled = 0, stored = 0;
  for (std::int64_t t = 0; t < total; ++t) {
    const bool warmup = t < cfg.warmup;
    rng::Rng rng(key, static_cast<std::uint64_t>(t), 0, rng::Stream::Beta);
    linalg::fill_std_normal(z, rng);
    double log_ratio;
    step.noalias() = l_v.triangularView<Eigen::Lower>() * z;
    if (independence) {
      const double w = rng::chi_square_rng(cfg.t_df, rng) / cfg.t_df;
      candidate = mode.beta + step / std::sqrt(w);
    } else {
      candidate = beta + std::exp(0.5 * log_scale) * step;
    }
    const double lp_candidate = log_post(candidate);
    log_ratio = lp_candidate - lp;
    if (independence) log_ratio += log_t(beta) - log_t(candidate);
    rng::Rng accept_rng(key, static_cast<std::uint64_t>(t), 0, rng::Stream::BetaAccept);
    const bool accept =
        std::isfinite(lp_candidate) && std::log(accept_rng.uniform()) < log_ratio;
    if (accept) {
      beta = candidate;
      lp = lp_candidate;
    }
    double lp_stored = lp;  // with a dispersion: the full log-likelihood and phi's prior
    if constexpr (kDispersion) {
      const Vector eta = linear_predictor(d, beta);
      rng::Rng phi_rng(key, static_cast<std::uint64_t>(t), 0, rng::Stream::Dispersion);
      for (int k = 0; k < kParams; ++k) {  // phi, then phi2 given phi
        if (zi_formula && k == kZi) continue;  // the odds move with the zi slopes (below)
        const auto ll = [&](double v) {
          return log_lik_at_eta<G>(d, eta, phi.with(k, v), threads);
        };
        phi = phi.with(k, steps::dispersion_slice_step(ll, phi.get(k), prior.family_prior(k),
                                                       phi_rng));
      }
      if constexpr (kZi >= 0) {
        if (zi_formula) {  // the zi formula's intercept (the odds) and slopes
          const steps::AdaptiveMhArgs za =
              steps::zi_step_args(key, static_cast<std::uint64_t>(t) + 1, warmup, cfg.warmup);
          steps::zero_inflation_step<G>(d.zi, prior.family_prior(kZi), d.y, d.weights, eta, phi,
                                        zi, za, threads);
        }
      }
      lp = log_post(beta);  // the kernel depends on phi
      if (!warmup) {
        lp_stored = log_lik_at_eta<G>(d, eta, phi, threads) + pp.log_density(beta, prior.mean);
        for (int k = 0; k < kParams; ++k)
          lp_stored += steps::dispersion_log_prior(prior.family_prior(k), std::log(phi.get(k)));
        if (zi_formula)
          lp_stored -= 0.5 * zi.alpha.cwiseQuotient(d.zi.prior_sd).squaredNorm();
      }
    }
    if constexpr (kCut) {
      rng::Rng joint_rng(key, static_cast<std::uint64_t>(t), 1, rng::Stream::Beta);
      rng::Rng joint_accept(key, static_cast<std::uint64_t>(t), 1, rng::Stream::BetaAccept);
      const std::int64_t before = cuts.joint_accepted;
      cuts.joint_step<G>(d, pr, pp, beta, threads, joint_rng, joint_accept);
      if (!warmup) cuts.joint_sampling += cuts.joint_accepted - before;
      rng::Rng cut_rng(key, static_cast<std::uint64_t>(t), 0, rng::Stream::Dispersion);
      cuts.step<G>(d, beta, pr, pp, warmup, threads, cut_rng);
      lp = log_post(beta);  // the kernel and the intercept's prior depend on the cutpoints
      lp_stored = lp + cuts.spread_log_prior(pr);
    }
    if (warmup) {
      accepted_warmup += accept;
      if (!independence) {
        // Robbins-Monro on log c towards the target acceptance; frozen after warm-up.
        const double alpha = std::isfinite(log_ratio) ? std::min(1.0, std::exp(log_ratio)) : 0.0;
        const double gain = 1.0 / std::pow(static_cast<double>(t) + 10.0, 0.6);
        log_scale += 3.0 * gain * (alpha - cfg.target_acceptance);
      }
    } else {
      accepted_sampling += accept;
      ++sampled;
      const std::int64_t s = t - cfg.warmup;
      if ((s + 1) % cfg.thin == 0) {
        out.beta.row(stored) = beta.transpose();
        out.log_posterior[stored] = lp_stored;
        out.accepted[stored] = accept ? 1.0 : 0.0;
        if constexpr (kParams >= 1) out.dispersion[stored] = phi.phi;
        if constexpr (kParams >= 2) out.dispersion2[stored] = phi.phi2;
        if (zi_formula) out.zi_coef.row(stored) = zi.alpha.transpose();
        if constexpr (kCut)
          out.cutpoints.row(stored) =
              (cuts.theta.array() - beta[pr.cutpoints.intercept_col]).matrix().transpose();
        ++stored;
      }
    }
    if (poller.poll(t + 1)) {
      out.interrupted = t + 1 < total;
      if (out.interrupted) break;
    }
  }
  out.draws_done = stored;
  if constexpr (kCut) {
    out.joint_acceptance = cuts.joint_ready && sampled > 0
                               ? static_cast<double>(cuts.joint_sampling) / static_cast<double>(sampled)
                               : std::numeric_limits<double>::quiet_NaN();
  }
  out.proposal_scale = independence ? 1.0 : std::exp(log_scale);
  out.zi_acceptance = zi.proposal.acceptance();
  out.warmup_acceptance_rate =
      cfg.warmup > 0 ? static_cast<double>(accepted_warmup) / static_cast<double>(cfg.warmup) : 0.0;
  out.acceptance_rate =
      sampled > 0 ? static_cast<double>(accepted_sampling) / static_cast<double>(sampled) : 0.0;
  return out;
}

GlmChainResult conjugate_chain(const GlmData& d, const GlmPrior& prior, const GlmConfig& cfg,
                               rng::ChainKey key, const RunControl& control) {
  const int threads = resolve_threads(cfg.threads);
  const Index p = d.cols();
  const Index n = d.rows();
  const bool known = cfg.known_sigma > 0.0;
  const double known_var = cfg.known_sigma * cfg.known_sigma;
  const PriorPrecision pp(prior);
  // with case weights W: X'WX, X'Wr, the weighted residual sum of squares and N = sum w
  Vector r = d.y - d.offset;
  const Vector sqrt_w = d.weighted() ? Vector(d.weights.array().sqrt()) : Vector::Ones(n);
  const RowMatrix xw = sqrt_w.asDiagonal() * d.x;
  r.array() *= sqrt_w.array();
  Matrix xtx = Matrix::Zero(p, p);
  xtx.selfadjointView<Eigen::Lower>().rankUpdate(xw.transpose());
  xtx = xtx.selfadjointView<Eigen::Lower>();
  const Vector xtr = xw.transpose() * r;
  const double n_obs = d.weighted() ? d.weights.sum() : static_cast<double>(n);
  const double data_weight = known ? 1.0 / known_var : 1.0;
  const Matrix q = pp.precision + data_weight * xtx;
  const Matrix l = linalg::cholesky_lower(q, "posterior precision X'X + V0^{-1}");
  Vector mean = pp.precision_mean + data_weight * xtr;
  l.triangularView<Eigen::Lower>().solveInPlace(mean);
  l.transpose().triangularView<Eigen::Upper>().solveInPlace(mean);
  double shape = 0.0, scale = 0.0;
  if (!known) {
    check_positive("run_glm_chain", "sigma2 prior shape", prior.sigma2_shape);
    check_positive("run_glm_chain", "sigma2 prior scale", prior.sigma2_scale);
    const Vector resid = r - xw * mean;
    const Vector prior_dev = pp.l_precision.transpose() * (mean - prior.mean);
    shape = prior.sigma2_shape + 0.5 * n_obs;
    scale = prior.sigma2_scale + 0.5 * (resid.squaredNorm() + prior_dev.squaredNorm());
  }
  GlmChainResult out;
  out.mode = mean;
  out.proposal_covariance = linalg::inverse_from_cholesky(l);
  out.proposal_scale = 1.0;
  allocate(out, cfg.draws, p, true);
  Poller poller(control, cfg.draws);
  std::int64_t stored = 0;
  Vector z(p);
  for (std::int64_t t = 0; t < cfg.draws; ++t) {
    rng::Rng rng(key, static_cast<std::uint64_t>(t), 0, rng::Stream::Beta);
    const double sigma2 = known ? known_var : rng::inv_gamma_rng(shape, scale, rng);
    linalg::fill_std_normal(z, rng);
    l.transpose().triangularView<Eigen::Upper>().solveInPlace(z);
    const double s = known ? 1.0 : std::sqrt(sigma2);
    const Vector beta = mean + s * z;
    out.beta.row(stored) = beta.transpose();
    out.sigma[stored] = std::sqrt(sigma2);
    out.log_posterior[stored] =
        log_kernel_sum<GaussianIdentity>(d, beta, FamilyParams{sigma2}, threads) +
        (known ? 0.0 : -0.5 * n_obs * std::log(sigma2)) +
        pp.log_density(beta, prior.mean) / (known ? 1.0 : sigma2);
    out.accepted[stored] = 1.0;
    ++stored;
    if (poller.poll(t + 1) && t + 1 < cfg.draws) {
      out.interrupted = true;
      break;
    }
  }
  out.draws_done = stored;
  out.acceptance_rate = 1.0;
  out.warmup_acceptance_rate = 1.0;
  return out;
}

}  // namespace

GlmData make_glm_data(ConstRowMatrixRef x, ConstVectorRef y, ConstVectorRef trials,
                      ConstVectorRef offset, FamilyLink family_link, ConstVectorRef weights) {
  const char* fn = "glm";
  check_size_match(fn, "y", y.size(), "rows of X", x.rows());
  check_size_match(fn, "trials", trials.size(), "rows of X", x.rows());
  check_size_match(fn, "offset", offset.size(), "rows of X", x.rows());
  if (x.rows() == 0) throw std::invalid_argument("glm: no observations");
  if (x.cols() == 0) throw std::invalid_argument("glm: X has no columns");
  check_all_finite(fn, "X", x);
  check_all_finite(fn, "y", y);
  check_all_finite(fn, "trials", trials);
  check_all_finite(fn, "offset", offset);
  check_weights(fn, weights, x.rows());
  dispatch(family_link, [&](auto g) {  // the new families check their support here too
    using F = typename decltype(g)::Family;
    if constexpr (HasDispersion<decltype(g)>) {
      for (Index i = 0; i < y.size(); ++i)
        if (!F::in_support(y[i], trials[i]))
          throw std::invalid_argument(concat(fn, ": y[", i, "] = ", y[i], " (trials ", trials[i],
                                             ") is outside the support of the ", F::name,
                                             " family"));
    }
    return 0;
  });
  return GlmData{Eigen::Map<const RowMatrix>(x.data(), x.rows(), x.cols()),
                 Eigen::Map<const Vector>(y.data(), y.size()),
                 Eigen::Map<const Vector>(trials.data(), trials.size()),
                 Eigen::Map<const Vector>(offset.data(), offset.size()), family_link,
                 Eigen::Map<const Vector>(weights.data(), weights.size())};
}

GlmMode glm_mode(const GlmData& data, const GlmPrior& prior, const FamilyParams& phi,
                 int threads) {
  const PriorPrecision pp(prior);
  return dispatch(data.family_link, [&](auto g) {
    return find_mode<decltype(g)>(data, prior, pp, phi, resolve_threads(threads));
  });
}

GlmMode glm_joint_mode(const GlmData& data, const GlmPrior& prior, int threads,
                       FamilyParams& fp) {
  const PriorPrecision pp(prior);
  return dispatch(data.family_link, [&](auto g) {
    using G = decltype(g);
    if constexpr (HasDispersion<G>)
      return joint_mode<G>(data, prior, pp, resolve_threads(threads), fp);
    return find_mode<G>(data, prior, pp, fp, resolve_threads(threads));
  });
}

double glm_log_kernel(const GlmData& data, const Vector& beta, const FamilyParams& phi,
                      int threads) {
  return dispatch(data.family_link, [&](auto g) {
    return log_kernel_sum<decltype(g)>(data, beta, phi, resolve_threads(threads));
  });
}

GlmChainResult run_glm_chain(const GlmData& data, const GlmPrior& prior, const GlmConfig& config,
                             rng::ChainKey key, const RunControl& control) {
  const char* fn = "run_glm_chain";
  check_size_match(fn, "prior mean", prior.mean.size(), "columns of X", data.cols());
  check_size_match(fn, "prior covariance", prior.covariance.rows(), "columns of X", data.cols());
  check_size_match(fn, "prior covariance columns", prior.covariance.cols(), "columns of X",
                   data.cols());
  if (config.draws < 0 || config.warmup < 0 || config.thin < 1)
    throw std::invalid_argument("run_glm_chain: need draws >= 0, warmup >= 0 and thin >= 1");
  if (config.method == GlmMethod::Conjugate) {
    if (data.family_link != FamilyLink::GaussianIdentity)
      throw std::invalid_argument("run_glm_chain: the conjugate sampler needs gaussian/identity");
    return conjugate_chain(data, prior, config, key, control);
  }
  return dispatch(data.family_link, [&](auto g) {
    return metropolis_chain<decltype(g)>(data, prior, config, key, control);
  });
}

RowMatrix glm_pointwise_log_lik(const GlmData& data, const RowMatrix& beta, const Vector& phi,
                                const Vector& phi2, const RowMatrix& cutpoints, int threads) {
  check_size_match("glm_pointwise_log_lik", "beta columns", beta.cols(), "columns of X",
                   data.cols());
  check_size_match("glm_pointwise_log_lik", "phi", phi.size(), "draws", beta.rows());
  if (phi2.size() > 0)
    check_size_match("glm_pointwise_log_lik", "phi2", phi2.size(), "draws", beta.rows());
  if (cutpoints.size() > 0)
    check_size_match("glm_pointwise_log_lik", "cutpoint rows", cutpoints.rows(), "draws",
                     beta.rows());
  RowMatrix out(beta.rows(), data.rows());
  const int n_threads = resolve_threads(threads);
  (void)n_threads;
  dispatch(data.family_link, [&](auto g) {
    using G = decltype(g);
    if (HasCutpoints<G> && cutpoints.cols() == 0)
      throw std::invalid_argument("glm_pointwise_log_lik: the cumulative family needs cutpoints");
    ExceptionVault vault;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(static) num_threads(n_threads) if (beta.rows() * data.rows() > 100000)
#endif
    for (Index s = 0; s < beta.rows(); ++s) {
      vault.run([&] {
        const Vector b = beta.row(s).transpose();
        const Vector cut = cutpoints.size() > 0 ? Vector(cutpoints.row(s).transpose()) : Vector();
        const FamilyParams fp{phi[s], phi2.size() > 0 ? phi2[s] : 1.0, cut.data(),
                              static_cast<int>(cut.size())};
        for (Index i = 0; i < data.rows(); ++i)
          out(s, i) = G::log_lik(data.y[i], data.trials[i], eta_at(data, b, i), fp);
      });
    }
    vault.rethrow();
    return 0;
  });
  return out;
}

}  // namespace bglmm
