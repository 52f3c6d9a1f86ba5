// bglmm/grouped.hpp — observations of a model with one grouping factor, sorted by group.
// Group g owns rows [group_start[g], group_start[g+1]) of x (fixed-effects design, N x p),
// z (random-effects design, N x q), y, trials, offset and the case weights (empty: every row
// counts once). The arrays are the caller's.
#pragma once
#include "bglmm/error.hpp"
#include "bglmm/glm.hpp"
#include "bglmm/types.hpp"

namespace bglmm {

struct GroupedData {
  Eigen::Map<const RowMatrix> x;
  Eigen::Map<const RowMatrix> z;
  Eigen::Map<const Vector> y;
  Eigen::Map<const Vector> trials;
  Eigen::Map<const Vector> offset;
  Eigen::Map<const IndexVector> group_start;
  FamilyLink family_link;
  Eigen::Map<const Vector> weights;  // case weights w_i >= 0 (likelihood_block.hpp), or empty

  Index rows() const { return y.size(); }
  Index p() const { return x.cols(); }
  Index q() const { return z.cols(); }
  Index n_groups() const { return group_start.size() - 1; }
  Index begin(Index g) const { return static_cast<Index>(group_start[g]); }
  Index size(Index g) const { return static_cast<Index>(group_start[g + 1] - group_start[g]); }
  bool weighted() const { return weights.size() > 0; }
  double weight(Index i) const { return weighted() ? weights[i] : 1.0; }
  // the weights of the rows from `start` on (nullptr: unweighted), for the block passes
  const double* weights_from(Index start) const {
    return weighted() ? weights.data() + start : nullptr;
  }
  // N, or the sum of the weights: the count of observations in the likelihood
  double total_weight() const { return weighted() ? weights.sum() : static_cast<double>(rows()); }
};

// Checks shapes, finiteness and the group offsets (0 = start[0] < start[1] < ... = N).
inline GroupedData make_grouped_data(ConstRowMatrixRef x, ConstRowMatrixRef z, ConstVectorRef y,
                                     ConstVectorRef trials, ConstVectorRef offset,
                                     ConstIndexVectorRef group_start, FamilyLink family_link,
                                     ConstVectorRef weights = Vector()) {
  const char* fn = "grouped data";
  const Index n = y.size();
  if (n == 0) throw std::invalid_argument("grouped data: no observations");
  check_size_match(fn, "rows of X", x.rows(), "y", n);
  check_size_match(fn, "rows of Z", z.rows(), "y", n);
  check_size_match(fn, "trials", trials.size(), "y", n);
  check_size_match(fn, "offset", offset.size(), "y", n);
  if (z.cols() == 0) throw std::invalid_argument("grouped data: Z has no columns");
  check_all_finite(fn, "X", x);
  check_all_finite(fn, "Z", z);
  check_all_finite(fn, "y", y);
  check_all_finite(fn, "trials", trials);
  check_all_finite(fn, "offset", offset);
  check_weights(fn, weights, n);
  if (group_start.size() < 2) throw std::invalid_argument("grouped data: need at least one group");
  if (group_start[0] != 0 || group_start[group_start.size() - 1] != n)
    throw std::invalid_argument("grouped data: group offsets must start at 0 and end at N");
  for (Index g = 0; g + 1 < group_start.size(); ++g)
    if (group_start[g + 1] <= group_start[g])
      throw std::invalid_argument(concat("grouped data: group ", g, " is empty"));
  return GroupedData{Eigen::Map<const RowMatrix>(x.data(), x.rows(), x.cols()),
                     Eigen::Map<const RowMatrix>(z.data(), z.rows(), z.cols()),
                     Eigen::Map<const Vector>(y.data(), n),
                     Eigen::Map<const Vector>(trials.data(), n),
                     Eigen::Map<const Vector>(offset.data(), n),
                     Eigen::Map<const IndexVector>(group_start.data(), group_start.size()),
                     family_link, Eigen::Map<const Vector>(weights.data(), weights.size())};
}

}  // namespace bglmm
