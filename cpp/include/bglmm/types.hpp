// bglmm/types.hpp — array types shared by the core and the bindings.
// Observations are sorted by group: group g owns rows [group_start[g], group_start[g+1]).
#pragma once
#include <Eigen/Dense>
#include <cstdint>

namespace bglmm {
using Index = Eigen::Index;
using Vector = Eigen::VectorXd;
using Matrix = Eigen::MatrixXd;  // column-major, small dense matrices (p x p, q x q)
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using IndexVector = Eigen::Matrix<std::int64_t, Eigen::Dynamic, 1>;
using ConstRowMatrixRef = Eigen::Ref<const RowMatrix>;
using ConstMatrixRef = Eigen::Ref<const Matrix>;
using ConstVectorRef = Eigen::Ref<const Vector>;
using ConstIndexVectorRef = Eigen::Ref<const IndexVector>;
}  // namespace bglmm
