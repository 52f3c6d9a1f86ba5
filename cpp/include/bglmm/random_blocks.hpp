// bglmm/random_blocks.hpp — the random-effect blocks beyond the one the rows are sorted by:
// further grouping factors (crossed, nested, observation-level) and further blocks on the
// same factor (uncorrelated terms). Block k adds z_ik' b_{k, c_k(i)} to eta_i, with
// b_{k,j} ~ N_{q_k}(0, Sigma_k) independently over its levels j.
//
// Layout (never dense in rows x levels): the level code of every row, the block's own term
// matrix (rows x q_k), and a CSR index of each level's rows (level_start, level_rows) into the
// rows in the primary block's order. Given everything else a block's levels are independent,
// and two levels never share a row, so their updates run in parallel and each writes only its
// own rows of the cached linear predictor.
#pragma once
#include <utility>
#include <vector>

#include "bglmm/error.hpp"
#include "bglmm/steps/adaptive_mh.hpp"
#include "bglmm/steps/covariance_prior.hpp"
#include "bglmm/types.hpp"

namespace bglmm {

struct ExtraBlock {
  Eigen::Map<const IndexVector> codes;        // N: level of each row
  Eigen::Map<const RowMatrix> z;              // N x q: the block's term matrix
  Eigen::Map<const IndexVector> level_start;  // m + 1
  Eigen::Map<const IndexVector> level_rows;   // N: level j's rows at [start[j], start[j+1])
  // Translation pairs (steps/extra_blocks.hpp): X column c equals w_j z_k[., t] on the rows of
  // every level j — the same column (w = 1), or a level-constant covariate against the random
  // intercept (w_j its value on level j). Shifting b_k[j, t] by delta w_j and beta_c by -delta
  // leaves eta unchanged.
  struct Shift {
    Index term, col;
    Vector w;  // m: the weights w_j
  };
  std::vector<Shift> shifts;
  // Nesting (set_parent): every level of this block lies within one level of a parent block
  // (-1: the primary block; k >= 0: extra block k), as class within school. The nested
  // translation move shifts a parent level's effect against all its children's, term pairs
  // (child term, parent term) with identical columns; children of parent level p are
  // children[child_start[p] .. child_start[p+1]).
  Index parent = -2;  // -2: none
  std::vector<Index> parent_level;  // m: the parent level of each level
  std::vector<Index> child_start, children;
  std::vector<std::pair<Index, Index>> nest_pairs;

  Index q() const { return z.cols(); }
  Index m() const { return level_start.size() - 1; }
  Index rows() const { return codes.size(); }
  Index begin(Index j) const { return static_cast<Index>(level_start[j]); }
  Index end(Index j) const { return static_cast<Index>(level_start[j + 1]); }
};

// Checks the layout (sizes, codes in range, level_rows a permutation that lists each level's
// rows) and finds the translation pairs against the fixed-effects design x (N x p).
ExtraBlock make_extra_block(ConstIndexVectorRef codes, ConstRowMatrixRef z,
                            ConstIndexVectorRef level_start, ConstIndexVectorRef level_rows,
                            const Eigen::Map<const RowMatrix>& x, Index block);

// Declares block `blk` nested in `parent` (-1 primary, else an extra block index), its levels'
// parents in parent_level (length m, each in [0, parent levels)); finds the term pairs with
// identical columns (parent_z: the parent's N x q_p term matrix, rows in the same order).
// Throws unless every row's parent level (parent_codes, N) is its level's parent.
void set_parent(ExtraBlock& blk, Index parent, const std::vector<Index>& parent_level,
                Index parent_levels, const Eigen::Map<const RowMatrix>& parent_z,
                const IndexVector& parent_codes);

// One block's part of a chain's state.
struct ExtraBlockState {
  RowMatrix b;                  // m x q
  Matrix sigma, chol, prec;     // Sigma_k, its lower Cholesky factor and inverse
  double log_scale_step = 0.0;  // the scale move's random-walk step (adapted in warm-up)
  double log_nest_step = 0.0;   // the nested scale move's step (adapted in warm-up)
  steps::AdaptiveProposal collapsed;  // the collapsed nested move's proposals on (log s_P, log s_C)
  // gaussian family: each level's score Z_j'(y - eta)/phi and information Z_j'Z_j/phi at the
  // current effects, kept by the level step (the scale move's likelihood is exact from them)
  RowMatrix level_grad, level_info;
};

// What a block's steps report in one sweep (steps/extra_blocks.hpp).
struct ExtraStepInfo {
  double level_accept_mean = 0.0;  // mean over levels of min(1, MH ratio)
  bool scale_accepted = false;     // the non-centred scale move moved
  double nest_accept = 0.0;        // the nested scale move: fraction of its proposals accepted
  double collapsed_accept = 0.0;   // the collapsed nested scale move: likewise
};

}  // namespace bglmm
