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
        total += r * r;
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
  LmmModel mdl{data, 0, 0, 0, 0, {}, {}, {}, Matrix(), Vector(), 0.0, Vector()};
  mdl.n = data.rows();
  mdl.m = data.n_groups();
  mdl.p = data.p();
  mdl.q = data.q();
  const Index m = mdl.m, p = mdl.p, q = mdl.q;
  if (p == 0) throw std::invalid_argument("lmm: X has no columns");
  mdl.ztz.assign(static_cast<std::size_t>(m * q * q), 0.0);
  mdl.ztx.assign(static_cast<std::size_t>(m * q * p), 0.0);
  mdl.zty.assign(static_cast<std::size_t>(m * q), 0.0);
  const std::int64_t n_chunks = (m + kGroupChunk - 1) / kGroupChunk;
  std::vector<Matrix> xtx(static_cast<std::size_t>(n_chunks));
  std::vector<Vector> xty(static_cast<std::size_t>(n_chunks));
  std::vector<double> yty(static_cast<std::size_t>(n_chunks));
  std::vector<Vector> zsq(static_cast<std::size_t>(n_chunks));
  const int n_threads = resolve_threads(threads);
  for_each_chunk(n_chunks, n_threads, [&](std::int64_t c) {
    const auto cs = static_cast<std::size_t>(c);
    xtx[cs] = Matrix::Zero(p, p);
    xty[cs] = Vector::Zero(p);
    zsq[cs] = Vector::Zero(q);
    double yy = 0.0;
    for (Index j = static_cast<Index>(c) * kGroupChunk; j < chunk_end(mdl, c); ++j) {
      double* ztz = &mdl.ztz[static_cast<std::size_t>(j * q * q)];
      double* ztx = &mdl.ztx[static_cast<std::size_t>(j * q * p)];
      double* zty = &mdl.zty[static_cast<std::size_t>(j * q)];
      for (Index i = data.begin(j); i < data.begin(j) + data.size(j); ++i) {
        const double yi = data.y[i] - data.offset[i];
        yy += yi * yi;
        for (Index a = 0; a < q; ++a) {
          const double za = data.z(i, a);
          zsq[cs][a] += za * za;
          zty[a] += za * yi;
          for (Index b = 0; b < q; ++b) ztz[a * q + b] += za * data.z(i, b);
          for (Index k = 0; k < p; ++k) ztx[a * p + k] += za * data.x(i, k);
        }
        for (Index a = 0; a < p; ++a) {
          xty[cs][a] += data.x(i, a) * yi;
          for (Index b = 0; b <= a; ++b) xtx[cs](a, b) += data.x(i, a) * data.x(i, b);
        }
      }
    }
    yty[cs] = yy;
  });
  mdl.xtx = Matrix::Zero(p, p);
  mdl.xty = Vector::Zero(p);
  mdl.z_mean_square = Vector::Zero(q);
  for (std::size_t c = 0; c < static_cast<std::size_t>(n_chunks); ++c) {
    mdl.xtx += xtx[c];
    mdl.xty += xty[c];
    mdl.yty += yty[c];
    mdl.z_mean_square += zsq[c];
  }
  mdl.xtx = mdl.xtx.selfadjointView<Eigen::Lower>();
  mdl.z_mean_square /= static_cast<double>(mdl.n);
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
  if (prior.use_scale_prior) {
    if (mdl.q != 1)
      throw std::invalid_argument("lmm prior: a prior on the SD applies to one random effect (q = 1)");
    if (prior.sd_prior.kind == steps::ScalePriorKind::Uniform && std::isinf(prior.sd_prior.b) &&
        mdl.m < 3)
      throw std::invalid_argument("lmm prior: a flat prior on the SD needs at least 3 groups");
  } else {
    if (!(prior.cov_prior.df > static_cast<double>(mdl.q) - 1.0))
      throw std::invalid_argument(concat("lmm prior: inverse-Wishart df ", prior.cov_prior.df,
                                         " must exceed q - 1 = ", mdl.q - 1));
    check_size_match(fn, "inverse-Wishart scale", prior.cov_prior.scale.rows(), "columns of Z",
                     mdl.q);
    check_size_match(fn, "inverse-Wishart scale columns", prior.cov_prior.scale.cols(),
                     "columns of Z", mdl.q);
    check_all_finite(fn, "inverse-Wishart scale", prior.cov_prior.scale);
    linalg::cholesky_lower(prior.cov_prior.scale, "lmm prior: inverse-Wishart scale S0", true);
  }
}

LmmWorkspace::LmmWorkspace(const LmmModel& mdl) {
  const Index m = mdl.m, p = mdl.p, q = mdl.q;
  n_chunks = (m + kGroupChunk - 1) / kGroupChunk;
  const auto nc = static_cast<std::size_t>(n_chunks);
  chol.assign(static_cast<std::size_t>(m * q * q), 0.0);
  chunk_aa.assign(nc * static_cast<std::size_t>(p * p), 0.0);
  chunk_ac.assign(nc * static_cast<std::size_t>(p), 0.0);
  chunk_bb.assign(nc * static_cast<std::size_t>(q * q), 0.0);
  chunk_ssr.assign(nc, 0.0);
  group_scratch.assign(nc * static_cast<std::size_t>(q * p + 3 * q), 0.0);
}

LmmState lmm_initial_state(const LmmModel& mdl, const LmmPrior& prior, rng::ChainKey key) {
  const Index p = mdl.p, q = mdl.q;
  LmmState s;
  const Matrix l0 = linalg::cholesky_lower(prior.beta_cov, "beta prior covariance", true);
  const Matrix q0 = linalg::inverse_from_cholesky(l0);
  const Matrix l = linalg::cholesky_lower(mdl.xtx + q0, "X'X + V0^-1");
  Vector beta = mdl.xty + q0 * prior.beta_mean;
  l.triangularView<Eigen::Lower>().solveInPlace(beta);
  l.transpose().triangularView<Eigen::Upper>().solveInPlace(beta);
  double ssr = mdl.yty - 2.0 * beta.dot(mdl.xty) + beta.dot(mdl.xtx * beta);
  double s2 = std::max(ssr / static_cast<double>(mdl.n), 1e-12 * (1.0 + mdl.yty / mdl.n));
  rng::Rng rng(key, 0, 0, rng::Stream::Init);
  auto factor = [&] { return std::exp((2.0 * rng.uniform() - 1.0) * std::log(3.0)); };
  s.beta = beta;
  for (Index k = 0; k < p; ++k) s.beta[k] += 0.1 * std::sqrt(s2) * rng.std_normal();
  s.b = RowMatrix::Zero(mdl.m, q);
  s.cov = Matrix::Zero(q, q);
  for (Index k = 0; k < q; ++k)
    s.cov(k, k) = 0.5 * s2 * factor() / std::max(mdl.z_mean_square[k], 1e-12);
  s.sigma2 = 0.5 * s2 * factor();
  if (prior.use_scale_prior && prior.sd_prior.kind == steps::ScalePriorKind::Uniform &&
      s.cov(0, 0) >= prior.sd_prior.b * prior.sd_prior.b)
    s.cov(0, 0) = 0.25 * prior.sd_prior.b * prior.sd_prior.b;
  return s;
}

void lmm_sweep(const LmmModel& mdl, const LmmPrior& prior, LmmState& s, LmmWorkspace& ws,
               rng::ChainKey key, std::uint64_t iteration, int threads) {
  const Index m = mdl.m, p = mdl.p, q = mdl.q;
  const double s2 = s.sigma2;
  const double sigma = std::sqrt(s2);
  // Sigma^-1 (q x q) from its Cholesky factor.
  const Matrix l_cov = linalg::cholesky_lower(s.cov, "lmm: random-effect covariance Sigma");
  const Matrix cov_inv = linalg::inverse_from_cholesky(l_cov);
  RowMatrix s2_cov_inv = s2 * cov_inv;  // row-major copy for the raw loops
  const double* penalty = s2_cov_inv.data();
  const std::size_t scratch_size = static_cast<std::size_t>(q * p + 3 * q);

  // Pass 1: factor M_j, accumulate sum A_j'A_j and A_j'c_j per chunk.
  for_each_chunk(ws.n_chunks, threads, [&](std::int64_t c) {
    const auto cs = static_cast<std::size_t>(c);
    double* aa = &ws.chunk_aa[cs * static_cast<std::size_t>(p * p)];
    double* ac = &ws.chunk_ac[cs * static_cast<std::size_t>(p)];
    double* a_mat = &ws.group_scratch[cs * scratch_size];
    double* cvec = a_mat + q * p;
    std::fill(aa, aa + p * p, 0.0);
    std::fill(ac, ac + p, 0.0);
    for (Index j = static_cast<Index>(c) * kGroupChunk; j < chunk_end(mdl, c); ++j) {
      double* l = &ws.chol[static_cast<std::size_t>(j * q * q)];
      const double* ztz = &mdl.ztz[static_cast<std::size_t>(j * q * q)];
      for (Index t = 0; t < q * q; ++t) l[t] = ztz[t] + penalty[t];
      if (!chol_inplace(l, q))
        throw NumericalError(concat("lmm: Cholesky of group ", j, "'s precision failed at iteration ",
                                    iteration));
      std::copy(&mdl.ztx[static_cast<std::size_t>(j * q * p)],
                &mdl.ztx[static_cast<std::size_t>((j + 1) * q * p)], a_mat);
      std::copy(&mdl.zty[static_cast<std::size_t>(j * q)],
                &mdl.zty[static_cast<std::size_t>((j + 1) * q)], cvec);
      for (Index k = 0; k < p; ++k) forward_solve(l, q, a_mat + k, p);
      forward_solve(l, q, cvec, 1);
      for (Index r = 0; r < q; ++r) {
        const double* row = a_mat + r * p;
        for (Index a = 0; a < p; ++a) {
          ac[a] += row[a] * cvec[r];
          for (Index b = 0; b <= a; ++b) aa[a * p + b] += row[a] * row[b];
        }
      }
    }
  });

  // beta | Sigma, sigma^2, y (b integrated out).
  {
    Matrix prec = Matrix::Zero(p, p);
    Vector h = Vector::Zero(p);
    for (std::int64_t c = 0; c < ws.n_chunks; ++c) {
      const auto cs = static_cast<std::size_t>(c);
      for (Index a = 0; a < p; ++a) {
        h[a] += ws.chunk_ac[cs * static_cast<std::size_t>(p) + static_cast<std::size_t>(a)];
        for (Index b = 0; b <= a; ++b)
          prec(a, b) += ws.chunk_aa[cs * static_cast<std::size_t>(p * p) +
                                    static_cast<std::size_t>(a * p + b)];
      }
    }
    prec = prec.selfadjointView<Eigen::Lower>();
    const Matrix l0 = linalg::cholesky_lower(prior.beta_cov, "beta prior covariance", true);
    const Matrix q0 = linalg::inverse_from_cholesky(l0);
    prec = (mdl.xtx - prec) / s2 + q0;
    h = (mdl.xty - h) / s2 + q0 * prior.beta_mean;
    const Matrix l = linalg::cholesky_lower(
        prec, "lmm: marginal precision of beta");
    rng::Rng rng(key, iteration, 0, rng::Stream::Beta);
    s.beta = linalg::multi_normal_canonical_rng(h, l, rng);
  }

  // Pass 2: b_j | beta; scatter and residual pieces per chunk.
  const double* beta = s.beta.data();
  for_each_chunk(ws.n_chunks, threads, [&](std::int64_t c) {
    const auto cs = static_cast<std::size_t>(c);
    double* bb = &ws.chunk_bb[cs * static_cast<std::size_t>(q * q)];
    double* r0 = &ws.group_scratch[cs * scratch_size];
    double* r = r0 + q;
    std::fill(bb, bb + q * q, 0.0);
    double ssr = 0.0;
    for (Index j = static_cast<Index>(c) * kGroupChunk; j < chunk_end(mdl, c); ++j) {
      const double* l = &ws.chol[static_cast<std::size_t>(j * q * q)];
      const double* ztx = &mdl.ztx[static_cast<std::size_t>(j * q * p)];
      const double* zty = &mdl.zty[static_cast<std::size_t>(j * q)];
      const double* ztz = &mdl.ztz[static_cast<std::size_t>(j * q * q)];
      for (Index a = 0; a < q; ++a) {
        double t = zty[a];
        for (Index k = 0; k < p; ++k) t -= ztx[a * p + k] * beta[k];
        r0[a] = t;
        r[a] = t;
      }
      forward_solve(l, q, r, 1);
      rng::Rng rng(key, iteration, static_cast<std::uint64_t>(j), rng::Stream::GroupProposal);
      for (Index a = 0; a < q; ++a) r[a] += sigma * rng.std_normal();
      backward_solve(l, q, r);
      double* bj = s.b.row(j).data();
      double quad = 0.0;
      for (Index a = 0; a < q; ++a) {
        bj[a] = r[a];
        double zb = 0.0;
        for (Index k = 0; k < q; ++k) zb += ztz[a * q + k] * r[k];
        quad += r[a] * (zb - 2.0 * r0[a]);
        for (Index k = 0; k <= a; ++k) bb[a * q + k] += r[a] * r[k];
      }
      ssr += quad;
    }
    ws.chunk_ssr[cs] = ssr;
  });

  // sigma^2 | beta, b.
  {
    double ssr = mdl.yty - 2.0 * s.beta.dot(mdl.xty) + s.beta.dot(mdl.xtx * s.beta);
    for (double v : ws.chunk_ssr) ssr += v;
    // The cross-product form loses digits when SSR << y'y; recompute from the rows then.
    if (!(ssr > 1e-7 * mdl.yty)) {
      ssr = residual_ss_direct(mdl, s, ws, threads);
      ++ws.fallbacks;
    }
    rng::Rng rng(key, iteration, 0, rng::Stream::Dispersion);
    s.sigma2 = rng::inv_gamma_rng(prior.sigma2_shape + 0.5 * static_cast<double>(mdl.n),
                                  prior.sigma2_scale + 0.5 * std::max(ssr, 0.0), rng);
  }

  // Sigma | b.
  {
    Matrix scatter = Matrix::Zero(q, q);
    for (std::int64_t c = 0; c < ws.n_chunks; ++c)
      for (Index a = 0; a < q; ++a)
        for (Index k = 0; k <= a; ++k)
          scatter(a, k) += ws.chunk_bb[static_cast<std::size_t>(c) * static_cast<std::size_t>(q * q) +
                                       static_cast<std::size_t>(a * q + k)];
    scatter = scatter.selfadjointView<Eigen::Lower>();
    rng::Rng rng(key, iteration, 0, rng::Stream::Covariance);
    if (prior.use_scale_prior) {
      s.cov(0, 0) = steps::draw_variance(prior.sd_prior, scatter(0, 0), static_cast<double>(m),
                                         s.cov(0, 0), rng);
    } else {
      s.cov = steps::covariance_step_from_scatter(scatter, m, prior.cov_prior, rng);
    }
  }
}

LmmResult run_lmm_chain(const LmmModel& mdl, const LmmPrior& prior, const LmmConfig& cfg,
                        rng::ChainKey key, const RunControl& control) {
  check_lmm_prior(mdl, prior);
  if (cfg.draws < 0 || cfg.warmup < 0 || cfg.thin < 1)
    throw std::invalid_argument("lmm: need draws >= 0, warmup >= 0 and thin >= 1");
  const Index m = mdl.m, p = mdl.p, q = mdl.q;
  const int threads = resolve_threads(cfg.threads);
  LmmState s = lmm_initial_state(mdl, prior, key);
  LmmWorkspace ws(mdl);
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
    lmm_sweep(mdl, prior, s, ws, key, static_cast<std::uint64_t>(t) + 1, threads);
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
  return out;
}

}  // namespace bglmm
