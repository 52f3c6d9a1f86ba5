// bglmm/steps/interweave.hpp — ancillarity-sufficiency interweaving (ASIS; Yu & Meng 2011) of
// the centred and non-centred parameterisations of the random effects.
//
// The Gibbs steps of the sweep work in the centred ("sufficient") parameterisation gamma_j,
// where Sigma | gamma and beta_C | gamma are conjugate. They mix slowly when each group carries
// little information about its own effects: gamma and Sigma then move in lock-step. This step
// re-expresses the state in the non-centred ("ancillary") parameterisation
//   gamma_j = mu_j(beta_C) + L eta_j,   eta_j ~ N_q(0, I),   Sigma = L L',
// and updates psi = (beta_C, L) with every eta_j held fixed. In these coordinates the joint
// density is p(y | gamma(eta, psi)) N(eta | 0, I) p(psi): the eta prior does not involve psi
// (the |L|^m of the change of variables cancels), so the step targets the GLM-like posterior
//   log p(psi | eta, y) = sum_i log f(y_i | eta_i(psi)) + log p(psi) + const,
// a regression of y on the "covariates" d eta_i / d psi (z_i' E_j for beta_C, z_ik eta_jl for
// L_kl), low-dimensional and informed by all N observations. It is a Metropolis-Hastings step
// with a Newton (IWLS) proposal N(psi + H^{-1} g, H^{-1}) and the reverse proposal density in
// the ratio, so it leaves the posterior exactly invariant.
//
// psi = (beta_C, L) and its target terms: steps/non_centred.hpp. The current point costs no
// pass over the data; the proposal costs one pass, whose caches become the state's on
// acceptance. All sums over groups run over fixed chunks added in order, so the draws do not
// depend on the thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "bglmm/glmm_model.hpp"
#include "bglmm/linear_predictor.hpp"
#include "bglmm/linalg/cholesky.hpp"
#include "bglmm/linalg/mvn.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/rng/philox.hpp"
#include "bglmm/steps/accept.hpp"
#include "bglmm/steps/group_mh.hpp"
#include "bglmm/steps/non_centred.hpp"

namespace bglmm::steps {

struct InterweaveArgs {
  rng::ChainKey key;
  std::uint64_t iteration = 0;
  int threads = 1;
  bool reversed = false;  // order of the random terms in L (see below)
  // A small SD that the data hardly inform (the neck of the funnel) has almost no curvature in
  // its log: the joint Newton proposal then jumps many units on the log scale and is
  // rejected, and the SD sticks near zero (seeds, 21 plates: ESS 320 of 4,000; with a floor of
  // 1, 1,700). The floor makes the jump at most 1 / sqrt(floor) units. The sweep sets it for
  // the joint step only: where the step goes term by term (many terms, few groups) a weakly
  // identified SD is wide rather than pinned at zero, and the floor halves the worst ESS of
  // the tumour model. Either way a valid kernel: the floor depends on psi's layout only.
  double min_log_sd_curvature = 0.0;
};

// Above this many coordinates of psi the step updates one random term at a time (its centred
// means and its row of L, the others held fixed): a joint Newton proposal in many dimensions
// fits the posterior too roughly to be accepted (the tumour model, q = 5 with 21 groups, took
// 5% of its 20-dimensional proposals). Each block costs one pass over the data.
constexpr Index kJointInterweaveMaxDim = 8;

// True when the step goes term by term (psi has more than kJointInterweaveMaxDim coordinates).
inline bool interweave_by_term(const GlmmData& d) {
  return d.p_centred() + d.q() * (d.q() + 1) / 2 > kJointInterweaveMaxDim;
}

namespace detail {
// gamma_j = mu_j(beta) + P L eta_j for every group (P: the layout's term order).
inline RowMatrix centred_effects(const GlmmData& d, const NonCentredLayout& lay,
                                 const RowMatrix& eta, const Vector& beta, const Matrix& chol) {
  const Index q = d.q();
  const Matrix lower = chol.triangularView<Eigen::Lower>();
  const RowMatrix le = eta * lower.transpose();  // rows: (L eta_j)'
  RowMatrix gamma(d.m(), q);
  for (Index k = 0; k < q; ++k) gamma.col(lay.perm[static_cast<std::size_t>(k)]) = le.col(k);
  for (std::size_t c = 0; c < d.centred_cols.size(); ++c)
    gamma.col(d.centred_term[c]) += beta[d.centred_cols[c]] * d.centred_value.col(static_cast<Index>(c));
  return gamma;
}

// Sigma = P L L' P' back in the terms' own order.
inline Matrix sigma_in_term_order(const NonCentredLayout& lay, const Matrix& chol) {
  const Index q = chol.rows();
  const Matrix sigma_perm = chol * chol.transpose();
  Matrix sigma(q, q);
  for (Index k = 0; k < q; ++k)
    for (Index l = 0; l < q; ++l)
      sigma(lay.perm[static_cast<std::size_t>(k)], lay.perm[static_cast<std::size_t>(l)]) = sigma_perm(k, l);
  return sigma;
}

// The group caches at the proposal (beta_new, L_new) with eta held fixed, into s.proposal.
template <typename G>
void proposal_caches(const GlmmData& d, GlmmState& s, const NonCentredLayout& lay,
                     const RowMatrix& eta, const Vector& beta_new, const Matrix& chol_new,
                     int threads) {
  const Index m = d.m(), q = d.q();
  const auto& perm = lay.perm;
  const Vector beta_free = free_coefficients(d, s.beta);
  with_q(q, [&](auto qc) {
    using V = typename QTypes<decltype(qc)::value>::Vec;
    using M = typename QTypes<decltype(qc)::value>::Mat;
    const M lq = chol_new;
    ExceptionVault vault;
#ifdef BGLMM_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, group_chunk(m, threads)) num_threads(threads)
#endif
    for (Index g = 0; g < m; ++g) {
      vault.run([&] {
        V mu(q), grad(q);
        M inf(q, q);
        group_centre(d, beta_new, g, mu);
        const V e = eta.row(g).transpose();
        const V le = lq.template triangularView<Eigen::Lower>() * e;
        V x = mu;
        for (Index k = 0; k < q; ++k) x[perm[static_cast<std::size_t>(k)]] += le[k];
        const double ll =
            group_data_pass<G, true>(d, g, beta_free.data(), x.data(), s.params(), grad, inf);
        s.proposal.store(g, ll, grad, inf);
      });
    }
    vault.rethrow();
  });
}

// The state in the layout's coordinates: returns L (Cholesky factor of Sigma with the terms in
// the order lay.perm) and sets eta_j = L^{-1} P (gamma_j - mu_j) for every group.
inline Matrix non_centred_coordinates(const GlmmData& d, const GlmmState& s,
                                      const NonCentredLayout& lay, RowMatrix& eta) {
  const Index m = d.m(), q = d.q();
  const auto& perm = lay.perm;
  Matrix permuted(q, q);
  for (Index k = 0; k < q; ++k)
    for (Index l = 0; l < q; ++l)
      permuted(k, l) = s.sigma(perm[static_cast<std::size_t>(k)], perm[static_cast<std::size_t>(l)]);
  const bool identity = std::is_sorted(perm.begin(), perm.end());
  Matrix chol = identity ? s.sigma_chol
                         : linalg::cholesky_lower(permuted, "interweave: permuted Sigma");
  const RowMatrix dev = group_deviations(d, s.beta, s.gamma);
  eta.resize(m, q);
  for (Index k = 0; k < q; ++k) eta.col(k) = dev.col(perm[static_cast<std::size_t>(k)]);
  chol.triangularView<Eigen::Lower>().solveInPlace(eta.transpose());  // L^{-1} on each row
  return chol;
}

// One Metropolis-Hastings update of the coordinates `block` of psi (eta fixed). On acceptance
// writes the state (gamma, beta, Sigma, caches) and `psi`, `chol`. Returns the acceptance
// probability.
template <typename G>
double interweave_block(const GlmmData& d, const GlmmPriors& pr, GlmmState& s,
                        const InterweaveArgs& a, const NonCentredLayout& lay,
                        const RowMatrix& eta, const std::vector<Index>& block,
                        std::uint64_t stream_slot, Vector& psi, Matrix& chol, bool& accepted) {
  accepted = false;
  Vector g_data, g_prior = Vector::Zero(lay.dim), mean_fwd, mean_rev;
  Matrix f_data, h_prior = Matrix::Zero(lay.dim, lay.dim), l_fwd, l_rev;
  const double ll_cur =
      non_centred_data_terms(d, lay, eta, chol, s.cache.ll, s.cache.grad, s.cache.info, a.threads, g_data, f_data);
  const double lp_cur = non_centred_log_prior(d, pr, lay, s.beta, psi, g_prior, h_prior, &block);
  if (!std::isfinite(lp_cur) ||
      !non_centred_moments(lay, psi, g_data, f_data, g_prior, h_prior, block, mean_fwd, l_fwd,
                           a.min_log_sd_curvature))
    return 0.0;
  const Index nb = static_cast<Index>(block.size());
  rng::Rng rng(a.key, a.iteration, stream_slot, rng::Stream::Hyper);
  Vector z(nb);
  linalg::fill_std_normal(z, rng);
  l_fwd.transpose().triangularView<Eigen::Upper>().solveInPlace(z);
  const Vector moved = mean_fwd + z;
  Vector proposal = psi, psi_block(nb);
  for (Index i = 0; i < nb; ++i) {
    proposal[block[static_cast<std::size_t>(i)]] = moved[i];
    psi_block[i] = psi[block[static_cast<std::size_t>(i)]];
  }
  Vector beta_new = s.beta;
  Matrix chol_new;
  unpack_psi(d, lay, proposal, beta_new, chol_new);
  if (!chol_new.allFinite() || !(chol_new.diagonal().minCoeff() > 0.0)) return 0.0;
  proposal_caches<G>(d, s, lay, eta, beta_new, chol_new, a.threads);
  Vector g_data_new, g_prior_new = Vector::Zero(lay.dim);
  Matrix f_data_new, h_prior_new = Matrix::Zero(lay.dim, lay.dim);
  const double ll_new = non_centred_data_terms(d, lay, eta, chol_new, s.proposal.ll, s.proposal.grad,
                                               s.proposal.info, a.threads, g_data_new, f_data_new);
  const double lp_new =
      non_centred_log_prior(d, pr, lay, s.beta, proposal, g_prior_new, h_prior_new, &block);
  if (!std::isfinite(ll_new) || !std::isfinite(lp_new) || !g_data_new.allFinite() ||
      !f_data_new.allFinite() ||
      !non_centred_moments(lay, proposal, g_data_new, f_data_new, g_prior_new, h_prior_new,
                           block, mean_rev, l_rev, a.min_log_sd_curvature))
    return 0.0;
  const double log_ratio = ll_new + lp_new - ll_cur - lp_cur +
                           non_centred_log_density(psi_block, mean_rev, l_rev) -
                           non_centred_log_density(moved, mean_fwd, l_fwd);
  // Every commit below is prepared first: a Sigma that cannot be factored is a rejection, and
  // the state is written only once nothing can fail.
  GlmmState::SigmaFactors factors;
  if (!GlmmState::factor_sigma(sigma_in_term_order(lay, chol_new), factors)) return 0.0;
  rng::Rng accept_rng(a.key, a.iteration, stream_slot + 1, rng::Stream::Hyper);
  const MhDecision decision = mh_accept(log_ratio, accept_rng);
  if (decision.accepted) {
    s.gamma = centred_effects(d, lay, eta, beta_new, chol_new);
    s.beta = beta_new;
    s.commit_proposal();
    s.commit_sigma(std::move(factors));
    psi = proposal;
    chol = chol_new;
    accepted = true;
  }
  return decision.prob;
}
}  // namespace detail

// One interweaving step: one joint block, or one block per random term when psi has more
// than kJointInterweaveMaxDim coordinates. Group caches (with derivatives) valid on entry and
// exit; `eta` is workspace (m x q). Returns the mean acceptance probability over the blocks;
// `accepted` is set when any block was accepted.
// The ancillary eta_j depends on the square root of Sigma: with the Cholesky factor in term
// order, the last term's conditional SD moves with eta fixed; in reversed order, the last
// term's marginal SD does. The sweep alternates the two (each step leaves the posterior
// invariant on its own), which mixes the later SDs and the correlations faster than either.
template <typename G>
double interweave_step(const GlmmData& d, const GlmmPriors& pr, GlmmState& s,
                       const InterweaveArgs& a, RowMatrix& eta, bool& accepted) {
  accepted = false;
  const NonCentredLayout lay = make_non_centred_layout(d, pr, a.reversed && d.q() > 1);
  Matrix chol = detail::non_centred_coordinates(d, s, lay, eta);
  Vector psi = pack_psi(d, lay, s.beta, chol);
  const std::vector<std::vector<Index>> blocks =
      lay.dim > kJointInterweaveMaxDim ? term_blocks(lay)
                                       : std::vector<std::vector<Index>>{all_coordinates(lay)};
  double total = 0.0;
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    bool block_accepted = false;
    // slots 0/1 for the joint block (as before blocking); 100 + 2b for term blocks
    const std::uint64_t slot = blocks.size() == 1 ? 0 : 100 + 2 * static_cast<std::uint64_t>(b);
    total += detail::interweave_block<G>(d, pr, s, a, lay, eta, blocks[b], slot, psi, chol,
                                         block_accepted);
    accepted = accepted || block_accepted;
  }
  return total / static_cast<double>(blocks.size());
}

}  // namespace bglmm::steps
