// Linear mixed model Gibbs sampler; see bglmm/lmm_sampler.hpp for the model and the sweep.
// The per-group kernels use small loops on raw row-major blocks (q and p are small), so the
// hot loop allocates nothing.
#include "bglmm/lmm_sampler.hpp"

#include <algorithm>
#include <cmath>

#include "bglmm/error.hpp"
#include "bglmm/linalg/cholesky.hpp"
#include "bglmm/linalg/mvn.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/rng/distributions.hpp"

namespace bglmm {
namespace {

constexpr Index kGroupChunk = 64;  // groups per chunk (fixed: thread-count independence)

// In-place lower Cholesky of a q x q row-major block (lower triangle used); false if not SPD.
inline bool chol_inplace(double* a, Index q) {
  for (Index j = 0; j < q; ++j) {
    double s = a[j * q + j];
    for (Index k = 0; k < j; ++k) s -= a[j * q + k] * a[j * q + k];
    if (!(s > 0.0)) return false;
    const double d = std::sqrt(s);
    a[j * q + j] = d;
    for (Index i = j + 1; i < q; ++i) {
      double t = a[i * q + j];
      for (Index k = 0; k < j; ++k) t -= a[i * q + k] * a[j * q + k];
      a[i * q + j] = t / d;
    }
  }
  return true;
}

// Solve L x = b in place; x has stride `stride` between its q entries.
inline void forward_solve(const double* l, Index q, double* x, Index stride) {
  for (Index i = 0; i < q; ++i) {
    double t = x[i * stride];
    for (Index k = 0; k < i; ++k) t -= l[i * q + k] * x[k * stride];
    x[i * stride] = t / l[i * q + i];
  }
}

// Solve L' x = b in place.
inline void backward_solve(const double* l, Index q, double* x) {
  for (Index i = q - 1; i >= 0; --i) {
    double t = x[i];
    for (Index k = i + 1; k < q; ++k) t -= l[k * q + i] * x[k];
    x[i] = t / l[i * q + i];
  }
}

template <typename Body>
void for_each_chunk(std::int64_t n_chunks, int threads, Body&& body) {
  ExceptionVault vault;
  (void)threads;
#ifdef BGLMM_HAVE_OPENMP
  // One chunk (<= 64 groups) is not worth a parallel region: waking threads costs more than
  // the work, badly so on a loaded machine. The chunks, hence the draws, are the same.
#pragma omp parallel for schedule(static) num_threads(threads) if (n_chunks > 1 && threads > 1)
#endif
  for (std::int64_t c = 0; c < n_chunks; ++c) vault.run([&] { body(c); });
  vault.rethrow();
}

Index chunk_end(const LmmModel& mdl, std::int64_t c) {
  return std::min<Index>(mdl.m, static_cast<Index>(c + 1) * kGroupChunk);
}

// sum over rows of (y - offset - X beta - Z b)^2, by chunks of groups.
double residual_ss_direct(const LmmModel& mdl, const LmmState& s, LmmWorkspace& ws, int threads) {
  const GroupedData& d = mdl.data;
  for_each_chunk(ws.n_chunks, threads, [&](std::int64_t c) {
    double total = 0.0;
    for (Index j = static_cast<Index>(c) * kGroupChunk; j < chunk_end(mdl, c); ++j) {
      for (Index i = d.begin(j); i < d.begin(j) + d.size(j); ++i) {
        const double r = d.y[i] - d.offset[i] - d.x.row(i).dot(s.beta) - d.z.row(i).dot(s.b.row(j));
        total += d.weight(i) * r * r;
      }
    }
    ws.chunk_ssr[static_cast<std::size_t>(c)] = total;
  });
  double ssr = 0.0;
  for (double v : ws.chunk_ssr) ssr += v;
  return ssr;
}

}  // namespace

LmmModel make_lmm_model(const GroupedData& data, int threads) {
  LmmModel mdl{data, 0.0, 0, 0, 0, {}, {}, {}, Matrix(), Vector(), 0.0, Vector(), Vector()};
  mdl.n = data.total_weight();
  mdl.m = data.n_groups();
  mdl.p = data.p();
  mdl.q = data.q();
  const Index m = mdl.m, p = mdl.p, q = mdl.q;
  if (p == 0) throw std::invalid_argument("lmm: X has no columns");
  mdl.ztz.assign(static_cast<std::size_t>(m * q * q), 0.0);
  mdl.ztx.assign(static_cast<std::size_t>(m * q * p), 0.0);
  mdl.ztr.assign(static_cast<std::size_t>(m * q), 0.0);
  const std::int64_t n_chunks = (m + kGroupChunk - 1) / kGroupChunk;
  std::vector<Matrix> xtx(static_cast<std::size_t>(n_chunks));
  std::vector<Vector> xty(static_cast<std::size_t>(n_chunks));
  std::vector<Vector> zsq(static_cast<std::size_t>(n_chunks));
  std::vector<double> rr(static_cast<std::size_t>(n_chunks));
  const int n_threads = resolve_threads(threads);
  // Pass 1: Z'Z, Z'X and Z'y per group (Z'y becomes Z'r below), X'X and X'y per chunk.
  for_each_chunk(n_chunks, n_threads, [&](std::int64_t c) {
    const auto cs = static_cast<std::size_t>(c);
    xtx[cs] = Matrix::Zero(p, p);
    xty[cs] = Vector::Zero(p);
    zsq[cs] = Vector::Zero(q);
    for (Index j = static_cast<Index>(c) * kGroupChunk; j < chunk_end(mdl, c); ++j) {
      double* ztz = &mdl.ztz[static_cast<std::size_t>(j * q * q)];
      double* ztx = &mdl.ztx[static_cast<std::size_t>(j * q * p)];
      double* zty = &mdl.ztr[static_cast<std::size_t>(j * q)];
      for (Index i = data.begin(j); i < data.begin(j) + data.size(j); ++i) {
        const double yi = data.y[i] - data.offset[i], wi = data.weight(i);
        for (Index a = 0; a < q; ++a) {
          const double za = data.z(i, a), wza = wi * za;
          zsq[cs][a] += wza * za;
          zty[a] += wza * yi;
          for (Index b = 0; b < q; ++b) ztz[a * q + b] += wza * data.z(i, b);
          for (Index k = 0; k < p; ++k) ztx[a * p + k] += wza * data.x(i, k);
        }
        for (Index a = 0; a < p; ++a) {
          const double wxa = wi * data.x(i, a);
          xty[cs][a] += wxa * yi;
          for (Index b = 0; b <= a; ++b) xtx[cs](a, b) += wxa * data.x(i, b);
        }
      }
    }
  });
  mdl.xtx = Matrix::Zero(p, p);
  Vector xty_total = Vector::Zero(p);
  mdl.z_mean_square = Vector::Zero(q);
  for (std::size_t c = 0; c < static_cast<std::size_t>(n_chunks); ++c) {
    mdl.xtx += xtx[c];
    xty_total += xty[c];
    mdl.z_mean_square += zsq[c];
  }
  mdl.xtx = mdl.xtx.selfadjointView<Eigen::Lower>();
  mdl.z_mean_square /= mdl.n;
  // beta_ref: least squares, with a tiny ridge so that a rank-deficient X still gives a point.
  {
    const double ridge = 1e-10 * std::max(1e-300, mdl.xtx.diagonal().maxCoeff());
    const Matrix l = linalg::cholesky_lower(
        mdl.xtx + ridge * Matrix::Identity(p, p), "lmm: X'X (are the columns of X finite?)");
    mdl.beta_ref = xty_total;
    l.triangularView<Eigen::Lower>().solveInPlace(mdl.beta_ref);
    l.transpose().triangularView<Eigen::Upper>().solveInPlace(mdl.beta_ref);
    if (!mdl.beta_ref.allFinite()) mdl.beta_ref.setZero();
  }
  mdl.xtr = xty_total - mdl.xtx * mdl.beta_ref;
  // Pass 2: r = y - offset - X beta_ref, r'r from the rows; Z'r = Z'y - Z'X beta_ref.
  const double* bref = mdl.beta_ref.data();
  for_each_chunk(n_chunks, n_threads, [&](std::int64_t c) {
    double total = 0.0;
    for (Index j = static_cast<Index>(c) * kGroupChunk; j < chunk_end(mdl, c); ++j) {
      double* ztr = &mdl.ztr[static_cast<std::size_t>(j * q)];
      const double* ztx = &mdl.ztx[static_cast<std::size_t>(j * q * p)];
      for (Index a = 0; a < q; ++a)
        for (Index k = 0; k < p; ++k) ztr[a] -= ztx[a * p + k] * bref[k];
      for (Index i = data.begin(j); i < data.begin(j) + data.size(j); ++i) {
        double r = data.y[i] - data.offset[i];
        for (Index k = 0; k < p; ++k) r -= data.x(i, k) * bref[k];
        total += data.weight(i) * r * r;
      }
    }
    rr[static_cast<std::size_t>(c)] = total;
  });
  for (double v : rr) mdl.rtr += v;
  return mdl;
}

void check_lmm_prior(const LmmModel& mdl, const LmmPrior& prior) {
  const char* fn = "lmm prior";
  check_size_match(fn, "beta prior mean", prior.beta_mean.size(), "columns of X", mdl.p);
  check_size_match(fn, "beta prior covariance", prior.beta_cov.rows(), "columns of X", mdl.p);
  check_size_match(fn, "beta prior covariance columns", prior.beta_cov.cols(), "columns of X",
                   mdl.p);
  check_all_finite(fn, "beta prior mean", prior.beta_mean);
  linalg::cholesky_lower(prior.beta_cov, "lmm prior: beta prior covariance", true);
  check_positive(fn, "sigma^2 prior shape", prior.sigma2_shape);
  check_positive(fn, "sigma^2 prior scale", prior.sigma2_scale);
  steps::check_covariance_prior(fn, prior.cov_prior, mdl.q);
  if (!steps::covariance_prior_proper(prior.cov_prior) && mdl.m < 3)
    throw std::invalid_argument("lmm prior: a flat prior on the SD needs at least 3 groups");
}

LmmWorkspace::LmmWorkspace(const LmmModel& mdl, const LmmPrior& prior) {
  const Index m = mdl.m, p = mdl.p, q = mdl.q;
  n_chunks = (m + kGroupChunk - 1) / kGroupChunk;
  const auto nc = static_cast<std::size_t>(n_chunks);
  chol.assign(static_cast<std::size_t>(m * q * q), 0.0);
  chol_alt.assign(static_cast<std::size_t>(m * q * q), 0.0);
  chunk_aa.assign(nc * static_cast<std::size_t>(p * p), 0.0);
  chunk_ac.assign(nc * static_cast<std::size_t>(p), 0.0);
  chunk_bb.assign(nc * static_cast<std::size_t>(q * q), 0.0);
  chunk_ssr.assign(nc, 0.0);
  chunk_logdet.assign(nc, 0.0);
  chunk_cc.assign(nc, 0.0);
  chunk_ok.assign(nc, 1);
  group_scratch.assign(nc * static_cast<std::size_t>(q * p + 3 * q), 0.0);
  // The collapsed move's starting random walk: a posterior SD of about 1 / sqrt(2 m) for a
  // log SD or a CPC, 1 / sqrt(2 N) for log sigma (refined in warm-up).
  Vector step(steps::unconstrained_dim(q) + 1);
  step.setConstant(1.0 / std::sqrt(2.0 * static_cast<double>(std::max<Index>(m, 1))));
  step[step.size() - 1] = 1.0 / std::sqrt(2.0 * mdl.n);
  proposal = steps::make_adaptive_proposal(step);
  beta_prec = linalg::inverse_from_cholesky(
      linalg::cholesky_lower(prior.beta_cov, "beta prior covariance", true));
}

LmmState lmm_initial_state(const LmmModel& mdl, const LmmPrior& prior, rng::ChainKey key) {
  const Index p = mdl.p, q = mdl.q;
  LmmState s;
  const Matrix l0 = linalg::cholesky_lower(prior.beta_cov, "beta prior covariance", true);
  const Matrix q0 = linalg::inverse_from_cholesky(l0);
  const Matrix l = linalg::cholesky_lower(mdl.xtx + q0, "X'X + V0^-1");
  // delta = beta - beta_ref at the posterior mode ignoring the groups
  Vector delta = mdl.xtr + q0 * (prior.beta_mean - mdl.beta_ref);
  l.triangularView<Eigen::Lower>().solveInPlace(delta);
  l.transpose().triangularView<Eigen::Upper>().solveInPlace(delta);
  const double ssr = mdl.rtr - 2.0 * delta.dot(mdl.xtr) + delta.dot(mdl.xtx * delta);
  const double s2 = std::max(ssr / mdl.n, 1e-12 * (1.0 + mdl.rtr / mdl.n));
  rng::Rng rng(key, 0, 0, rng::Stream::Init);
  auto factor = [&] { return std::exp((2.0 * rng.uniform() - 1.0) * std::log(3.0)); };
  s.beta = mdl.beta_ref + delta;
  for (Index k = 0; k < p; ++k) s.beta[k] += 0.1 * std::sqrt(s2) * rng.std_normal();
  s.b = RowMatrix::Zero(mdl.m, q);
  s.cov = Matrix::Zero(q, q);
  for (Index k = 0; k < q; ++k)
    s.cov(k, k) = 0.5 * s2 * factor() / std::max(mdl.z_mean_square[k], 1e-12);
  s.sigma2 = 0.5 * s2 * factor();
  if (prior.cov_prior.separation())  // start inside a bounded SD prior's support
    for (Index k = 0; k < q; ++k) {
      const steps::ScalePrior& sp = prior.cov_prior.sd[static_cast<std::size_t>(k)];
      if (sp.kind == steps::ScalePriorKind::Uniform && s.cov(k, k) >= sp.b * sp.b)
        s.cov(k, k) = 0.25 * sp.b * sp.b;
    }
  return s;
}

namespace {

// What the collapsed likelihood at (Sigma, sigma^2) gives: the marginal log-likelihood and
// the Gaussian conditional of delta = beta - beta_ref (precision factor and linear term).
struct Collapsed {
  bool ok = false;
  double log_lik = 0.0;
  Matrix prec_chol;  // P = L L'
  Vector h;
};

// Pass 1 at (Sigma, sigma^2): the factors L_j into `chol` and the collapsed terms.
Collapsed collapsed_terms(const LmmModel& mdl, const LmmPrior& prior, const Matrix& cov,
                          double s2, std::vector<double>& chol, LmmWorkspace& ws, int threads) {
  const Index m = mdl.m, p = mdl.p, q = mdl.q;
  Collapsed out;
  Eigen::LLT<Matrix> llt_cov(cov);
  if (llt_cov.info() != Eigen::Success || !(s2 > 0.0) || !std::isfinite(s2)) return out;
  const Matrix l_cov = llt_cov.matrixL();
  if (!l_cov.allFinite() || !(l_cov.diagonal().minCoeff() > 0.0)) return out;
  RowMatrix s2_cov_inv = s2 * linalg::inverse_from_cholesky(l_cov);  // row-major, raw loops
  const double* penalty = s2_cov_inv.data();
  const std::size_t scratch_size = static_cast<std::size_t>(q * p + 3 * q);
  for_each_chunk(ws.n_chunks, threads, [&](std::int64_t c) {
    const auto cs = static_cast<std::size_t>(c);
    double* aa = &ws.chunk_aa[cs * static_cast<std::size_t>(p * p)];
    double* ac = &ws.chunk_ac[cs * static_cast<std::size_t>(p)];
    double* a_mat = &ws.group_scratch[cs * scratch_size];
    double* cvec = a_mat + q * p;
    std::fill(aa, aa + p * p, 0.0);
    std::fill(ac, ac + p, 0.0);
    double logdet = 0.0, cc = 0.0;
    ws.chunk_ok[cs] = 1;
    for (Index j = static_cast<Index>(c) * kGroupChunk; j < chunk_end(mdl, c); ++j) {
      double* l = &chol[static_cast<std::size_t>(j * q * q)];
      const double* ztz = &mdl.ztz[static_cast<std::size_t>(j * q * q)];
      for (Index t = 0; t < q * q; ++t) l[t] = ztz[t] + penalty[t];
      if (!chol_inplace(l, q)) {
        ws.chunk_ok[cs] = 0;
        return;
      }
      for (Index a = 0; a < q; ++a) logdet += 2.0 * std::log(l[a * q + a]);
      std::copy(&mdl.ztx[static_cast<std::size_t>(j * q * p)],
                &mdl.ztx[static_cast<std::size_t>((j + 1) * q * p)], a_mat);
      std::copy(&mdl.ztr[static_cast<std::size_t>(j * q)],
                &mdl.ztr[static_cast<std::size_t>((j + 1) * q)], cvec);
      for (Index k = 0; k < p; ++k) forward_solve(l, q, a_mat + k, p);
      forward_solve(l, q, cvec, 1);
      for (Index r = 0; r < q; ++r) {
        const double* row = a_mat + r * p;
        cc += cvec[r] * cvec[r];
        for (Index a = 0; a < p; ++a) {
          ac[a] += row[a] * cvec[r];
          for (Index b = 0; b <= a; ++b) aa[a * p + b] += row[a] * row[b];
        }
      }
    }
    ws.chunk_logdet[cs] = logdet;
    ws.chunk_cc[cs] = cc;
  });
  Matrix prec = Matrix::Zero(p, p);
  Vector h = Vector::Zero(p);
  double logdet = 0.0, cc = 0.0;
  for (std::int64_t c = 0; c < ws.n_chunks; ++c) {
    const auto cs = static_cast<std::size_t>(c);
    if (!ws.chunk_ok[cs]) return out;
    logdet += ws.chunk_logdet[cs];
    cc += ws.chunk_cc[cs];
    for (Index a = 0; a < p; ++a) {
      h[a] += ws.chunk_ac[cs * static_cast<std::size_t>(p) + static_cast<std::size_t>(a)];
      for (Index b = 0; b <= a; ++b)
        prec(a, b) += ws.chunk_aa[cs * static_cast<std::size_t>(p * p) +
                                  static_cast<std::size_t>(a * p + b)];
    }
  }
  prec = prec.selfadjointView<Eigen::Lower>();
  const Vector dm = prior.beta_mean - mdl.beta_ref;
  prec = (mdl.xtx - prec) / s2 + ws.beta_prec;
  out.h = (mdl.xtr - h) / s2 + ws.beta_prec * dm;
  Eigen::LLT<Matrix> llt(prec);
  if (llt.info() != Eigen::Success) return out;
  out.prec_chol = llt.matrixL();
  if (!out.prec_chol.allFinite() || !(out.prec_chol.diagonal().minCoeff() > 0.0)) return out;
  const Vector w = out.prec_chol.triangularView<Eigen::Lower>().solve(out.h);
  const double n = mdl.n, mq = static_cast<double>(m * q);
  out.log_lik = -0.5 * ((n - mq) * std::log(s2) +
                        static_cast<double>(m) * linalg::log_det_from_cholesky(l_cov) + logdet +
                        linalg::log_det_from_cholesky(out.prec_chol) + (mdl.rtr - cc) / s2 +
                        dm.dot(ws.beta_prec * dm) - w.squaredNorm());
  out.ok = std::isfinite(out.log_lik);
  return out;
}

// x = (unconstrained Sigma coordinates, log sigma) and back.
Vector pack_variances(const Matrix& cov, double s2) {
  Vector xs;
  if (!steps::unconstrained_from_sigma(cov, xs))
    throw NumericalError("lmm: the random-effect covariance Sigma is not positive definite");
  Vector x(xs.size() + 1);
  x << xs, 0.5 * std::log(s2);
  return x;
}

bool unpack_variances(const Vector& x, Index q, Matrix& cov, double& s2) {
  Matrix chol;
  if (!steps::chol_from_unconstrained(x.head(x.size() - 1), q, chol)) return false;
  cov = chol * chol.transpose();
  s2 = std::exp(2.0 * x[x.size() - 1]);
  return std::isfinite(s2) && s2 > 0.0 && cov.allFinite();
}

// log prior of x: the covariance prior in its coordinates, and IG(a0, b0) on sigma^2 times
// d sigma^2 / d log sigma = 2 sigma^2.
double variances_log_prior(const LmmPrior& prior, const Vector& x, Index q) {
  const double lp = steps::covariance_log_prior_unconstrained(prior.cov_prior, x.head(x.size() - 1), q);
  const double ls2 = 2.0 * x[x.size() - 1];
  return lp - prior.sigma2_shape * ls2 - prior.sigma2_scale * std::exp(-ls2);
}

// Step 0: Metropolis-Hastings on x targeting p(x | y) with beta and b integrated out
// (steps/adaptive_mh.hpp: an independence t after warm-up and two random walks). On exit ws.chol
// holds the factors at the state's (Sigma, sigma^2) and `cur` their terms.
void collapsed_move(const LmmModel& mdl, const LmmPrior& prior, LmmState& s, LmmWorkspace& ws,
                    rng::ChainKey key, const LmmSweepArgs& a, Collapsed& cur) {
  const Index q = mdl.q;
  Vector x = pack_variances(s.cov, s.sigma2);
  const double lp_cur = variances_log_prior(prior, x, q);
  if (!cur.ok || !std::isfinite(lp_cur)) return;
  double target_cur = cur.log_lik + lp_cur;
  Matrix cov_p;
  double s2_p = 0.0;
  Collapsed prop;
  auto evaluate = [&](const Vector& xp) {
    if (!unpack_variances(xp, q, cov_p, s2_p)) return -std::numeric_limits<double>::infinity();
    const double lp = variances_log_prior(prior, xp, q);
    if (!std::isfinite(lp)) return lp;
    prop = collapsed_terms(mdl, prior, cov_p, s2_p, ws.chol_alt, ws, a.threads);
    return prop.ok ? prop.log_lik + lp : -std::numeric_limits<double>::infinity();
  };
  auto commit = [&] {
    s.cov = cov_p;
    s.sigma2 = s2_p;
    std::swap(ws.chol, ws.chol_alt);
    cur = prop;
  };
  steps::AdaptiveMhArgs ma;
  ma.key = key;
  ma.iteration = a.iteration;
  ma.adapt = a.adapt;
  ma.warmup = a.warmup;
  // three random walks a sweep (two left the NELS slope SD near zero with a tail ESS of 95 on
  // one seed of twenty; the move costs O(m q^3) per proposal, no pass over the data)
  ma.random_walks = 3;
  ma.slot_base = 0;
  ma.accept_goal = 0.3;
  steps::adaptive_mh(ws.proposal, x, target_cur, ma, evaluate, commit);
}

// Steps 1-3 given the factors in ws.chol at the state's (Sigma, sigma^2) and their terms.
void gibbs_steps(const LmmModel& mdl, const LmmPrior& prior, LmmState& s, LmmWorkspace& ws,
                 rng::ChainKey key, const LmmSweepArgs& a, const Collapsed& cur) {
  const Index m = mdl.m, p = mdl.p, q = mdl.q;
  const std::uint64_t iteration = a.iteration;
  const double sigma = std::sqrt(s.sigma2);
  const std::size_t scratch_size = static_cast<std::size_t>(q * p + 3 * q);
  // 1a. delta = beta - beta_ref | Sigma, sigma^2, y (b integrated out).
  Vector delta;
  {
    rng::Rng rng(key, iteration, 0, rng::Stream::Beta);
    delta = linalg::multi_normal_canonical_rng(cur.h, cur.prec_chol, rng);
    s.beta = mdl.beta_ref + delta;
  }
  // 1b. b_j | beta; scatter and residual pieces per chunk.
  const double* dl = delta.data();
  for_each_chunk(ws.n_chunks, a.threads, [&](std::int64_t c) {
    const auto cs = static_cast<std::size_t>(c);
    double* bb = &ws.chunk_bb[cs * static_cast<std::size_t>(q * q)];
    double* r0 = &ws.group_scratch[cs * scratch_size];
    double* r = r0 + q;
    std::fill(bb, bb + q * q, 0.0);
    double ssr = 0.0;
    for (Index j = static_cast<Index>(c) * kGroupChunk; j < chunk_end(mdl, c); ++j) {
      const double* l = &ws.chol[static_cast<std::size_t>(j * q * q)];
      const double* ztx = &mdl.ztx[static_cast<std::size_t>(j * q * p)];
      const double* ztr = &mdl.ztr[static_cast<std::size_t>(j * q)];
      const double* ztz = &mdl.ztz[static_cast<std::size_t>(j * q * q)];
      for (Index k = 0; k < q; ++k) {
        double t = ztr[k];
        for (Index i = 0; i < p; ++i) t -= ztx[k * p + i] * dl[i];
        r0[k] = t;
        r[k] = t;
      }
      forward_solve(l, q, r, 1);
      rng::Rng rng(key, iteration, static_cast<std::uint64_t>(j), rng::Stream::GroupProposal);
      for (Index k = 0; k < q; ++k) r[k] += sigma * rng.std_normal();
      backward_solve(l, q, r);
      double* bj = s.b.row(j).data();
      double quad = 0.0;
      for (Index k = 0; k < q; ++k) {
        bj[k] = r[k];
        double zb = 0.0;
        for (Index i = 0; i < q; ++i) zb += ztz[k * q + i] * r[i];
        quad += r[k] * (zb - 2.0 * r0[k]);
        for (Index i = 0; i <= k; ++i) bb[k * q + i] += r[k] * r[i];
      }
      ssr += quad;
    }
    ws.chunk_ssr[cs] = ssr;
  });
  // 2. sigma^2 | beta, b.
  {
    double ssr = mdl.rtr - 2.0 * delta.dot(mdl.xtr) + delta.dot(mdl.xtx * delta);
    for (double v : ws.chunk_ssr) ssr += v;
    // The cross-product form loses digits when SSR << r'r; recompute from the rows then.
    if (!(ssr > 1e-7 * mdl.rtr)) {
      ssr = residual_ss_direct(mdl, s, ws, a.threads);
      ++ws.fallbacks;
    }
    rng::Rng rng(key, iteration, 0, rng::Stream::Dispersion);
    s.sigma2 = rng::inv_gamma_rng(prior.sigma2_shape + 0.5 * mdl.n,
                                  prior.sigma2_scale + 0.5 * std::max(ssr, 0.0), rng);
  }
  // 3. Sigma | b.
  {
    Matrix scatter = Matrix::Zero(q, q);
    for (std::int64_t c = 0; c < ws.n_chunks; ++c)
      for (Index k = 0; k < q; ++k)
        for (Index i = 0; i <= k; ++i)
          scatter(k, i) += ws.chunk_bb[static_cast<std::size_t>(c) * static_cast<std::size_t>(q * q) +
                                       static_cast<std::size_t>(k * q + i)];
    scatter = scatter.selfadjointView<Eigen::Lower>();
    rng::Rng rng(key, iteration, 0, rng::Stream::Covariance);
    s.cov = steps::covariance_conditional_step(prior.cov_prior, scatter, m, s.cov, rng);
  }
}

}  // namespace

void lmm_sweep(const LmmModel& mdl, const LmmPrior& prior, LmmState& s, LmmWorkspace& ws,
               rng::ChainKey key, const LmmSweepArgs& a) {
  Collapsed cur = collapsed_terms(mdl, prior, s.cov, s.sigma2, ws.chol, ws, a.threads);
  if (!cur.ok)
    throw NumericalError(concat("lmm: the precision of a group's effects or of beta is not positive "
                                "definite at iteration ", a.iteration));
  if (a.collapsed) collapsed_move(mdl, prior, s, ws, key, a, cur);
  gibbs_steps(mdl, prior, s, ws, key, a, cur);
}

LmmResult run_lmm_chain(const LmmModel& mdl, const LmmPrior& prior, const LmmConfig& cfg,
                        rng::ChainKey key, const RunControl& control) {
  check_lmm_prior(mdl, prior);
  if (cfg.draws < 0 || cfg.warmup < 0 || cfg.thin < 1)
    throw std::invalid_argument("lmm: need draws >= 0, warmup >= 0 and thin >= 1");
  const Index m = mdl.m, p = mdl.p, q = mdl.q;
  LmmSweepArgs args;
  args.threads = resolve_threads(cfg.threads);
  args.collapsed = cfg.collapsed;
  args.warmup = cfg.warmup;
  LmmState s = lmm_initial_state(mdl, prior, key);
  LmmWorkspace ws(mdl, prior);
  LmmResult out;
  out.beta.setZero(cfg.draws, p);
  out.cov.setZero(cfg.draws, q * q);
  out.sigma.setZero(cfg.draws);
  if (cfg.keep_effects) out.b.setZero(cfg.draws, m * q);
  RowMatrix b_sum = RowMatrix::Zero(m, q), b_sq = RowMatrix::Zero(m, q);
  const std::int64_t total = cfg.warmup + cfg.draws * cfg.thin;
  Poller poller(control, total);
  std::int64_t stored = 0;
  for (std::int64_t t = 0; t < total; ++t) {
    args.iteration = static_cast<std::uint64_t>(t) + 1;
    args.adapt = t < cfg.warmup;
    lmm_sweep(mdl, prior, s, ws, key, args);
    if (t >= cfg.warmup && (t - cfg.warmup + 1) % cfg.thin == 0) {
      out.beta.row(stored) = s.beta.transpose();
      for (Index a = 0; a < q; ++a)
        for (Index k = 0; k < q; ++k) out.cov(stored, a * q + k) = s.cov(a, k);
      out.sigma[stored] = std::sqrt(s.sigma2);
      if (cfg.keep_effects)
        out.b.row(stored) = Eigen::Map<const Eigen::RowVectorXd>(s.b.data(), m * q);
      b_sum += s.b;
      b_sq.array() += s.b.array().square();
      ++stored;
    }
    if (poller.poll(t + 1)) {
      out.interrupted = t + 1 < total;
      if (out.interrupted) break;
    }
  }
  out.draws_done = stored;
  const double n = static_cast<double>(std::max<std::int64_t>(stored, 1));
  out.b_mean = b_sum / n;
  out.b_sd = ((b_sq / n).array() - out.b_mean.array().square()).max(0.0).sqrt() *
             (stored > 1 ? std::sqrt(n / (n - 1.0)) : 1.0);
  out.residual_fallbacks = static_cast<double>(ws.fallbacks);
  out.collapsed_accept = ws.proposal.acceptance();
  return out;
}

}  // namespace bglmm
