// bglmm/linear_predictor.hpp — the GLMM's linear predictor, in one place:
//   eta_i = offset_i + x_F,i' beta_F + z_i' gamma_{g(i)},
// with beta_F the free coefficients (the centred ones reach eta through gamma) and offset the
// chain's effective offset (the user's plus every extra block's part, random_blocks.hpp).
// Row form (row_eta) for the scalar loops, block form (block_eta) for the vectorised family
// kernels; both add the terms in the same order. free_coefficients / set_free_coefficients
// move beta_F between the full beta and its own vector; full_linear_predictor fills eta for
// every row (the per-row cache of the extra blocks' steps and the dispersion step).
#pragma once
#include "bglmm/glmm_model.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/types.hpp"

namespace bglmm {

inline Vector free_coefficients(const GlmmData& d, const Vector& beta) {
  Vector out(d.p_free());
  for (Index k = 0; k < d.p_free(); ++k) out[k] = beta[d.free_cols[static_cast<std::size_t>(k)]];
  return out;
}

inline void set_free_coefficients(const GlmmData& d, const Vector& beta_free, Vector& beta) {
  for (Index k = 0; k < d.p_free(); ++k) beta[d.free_cols[static_cast<std::size_t>(k)]] = beta_free[k];
}

// eta of row i at free coefficients beta_free (p_F) and its group's gamma (q).
inline double row_eta(const GlmmData& d, Index i, const double* beta_free, const double* gamma) {
  double eta = d.obs.offset[i];
  for (Index k = 0; k < d.p_free(); ++k) eta += d.x_free(i, k) * beta_free[k];
  const double* zi = d.obs.z.data() + i * d.q();
  for (Index k = 0; k < d.q(); ++k) eta += zi[k] * gamma[k];
  return eta;
}

// eta of rows start .. start + len - 1 (one group's, sharing gamma; q terms) into e, from the
// column-major copies of X_F and Z.
inline void block_eta(const GlmmData& d, Index start, Index len, Index q, const double* beta_free,
                      const double* gamma, double* e) {
  const Index n_rows = d.obs.rows();
  const double* off = d.obs.offset.data() + start;
#pragma omp simd
  for (Index i = 0; i < len; ++i) e[i] = off[i];
  for (Index k = 0; k < d.p_free(); ++k) {
    const double* xk = d.x_free.data() + k * n_rows + start;
    const double bk = beta_free[k];
#pragma omp simd
    for (Index i = 0; i < len; ++i) e[i] += xk[i] * bk;
  }
  for (Index k = 0; k < q; ++k) {
    const double* zk = d.z_cols.data() + k * n_rows + start;
    const double gk = gamma[k];
#pragma omp simd
    for (Index i = 0; i < len; ++i) e[i] += zk[i] * gk;
  }
}

constexpr std::int64_t kRowChunk = 4096;  // rows per chunk of the ordered sums

// eta_rows[i] = offset[i] + x_free[i] beta_free + z[i] gamma_{g(i)} for every row (the offset
// being the chain's effective one, which holds the extra blocks' parts).
inline void full_linear_predictor(const GlmmData& d, const GlmmState& s, Vector& eta_rows,
                                  int threads) {
  const Index m = d.m(), q = d.q();
  eta_rows.resize(d.obs.rows());
  const Vector beta_free = free_coefficients(d, s.beta);
  (void)threads;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, group_chunk(m, threads)) num_threads(threads)
#endif
  for (Index g = 0; g < m; ++g) {
    const Index begin = d.obs.begin(g), end = begin + d.obs.size(g);
    for (Index i = begin; i < end; ++i) {
      eta_rows[i] = row_eta(d, i, beta_free.data(), s.gamma.data() + g * q);
    }
  }
}

}  // namespace bglmm
