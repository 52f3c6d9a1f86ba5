// Test-only access to the random-number layer: the raw Philox block function, raw Rng word
// streams, and vectors of draws from each distribution, so pytest can check them with
// KS / chi-square tests. Every entry point validates sizes first: the module is built with
// NDEBUG, so an Eigen size mismatch would otherwise corrupt memory instead of raising.
#include <string>

#include "bglmm/linalg/mvn.hpp"
#include "bglmm/linalg/wishart.hpp"
#include "bglmm/rng/distributions.hpp"
#include "bglmm/rng/philox.hpp"
#include "pybind.hpp"

namespace bglmm::bindings {

namespace {

void check_count(const char* function, std::int64_t n) {
  if (n < 0) throw std::invalid_argument(concat(function, ": n must be >= 0, got ", n));
}

// A square, lower-triangular factor with a positive diagonal, of dimension `dim` (if >= 0).
void check_lower_factor(const char* function, const char* name, const Matrix& l, Index dim) {
  if (l.rows() != l.cols())
    throw std::invalid_argument(
        concat(function, ": ", name, " must be square, got ", l.rows(), " x ", l.cols()));
  if (dim >= 0) check_size_match(function, name, l.rows(), "mean", dim);
  check_all_finite(function, name, l);
  for (Index j = 0; j < l.cols(); ++j) {
    if (!(l(j, j) > 0.0))
      throw std::invalid_argument(
          concat(function, ": ", name, " must have a positive diagonal (entry ", j, ")"));
    for (Index i = 0; i < j; ++i)
      if (l(i, j) != 0.0)
        throw std::invalid_argument(
            concat(function, ": ", name, " must be lower triangular (entry ", i, ", ", j, ")"));
  }
}

rng::Stream stream_from_code(std::uint64_t code) {
  // Any code is a valid counter word; the enum only names the ones the samplers use.
  return static_cast<rng::Stream>(code);
}

}  // namespace

void bind_rng(py::module_& m) {
  py::module_ t = m.def_submodule("rng", "Random-number layer (exposed for tests).");
  t.def(
      "philox4x64_10",
      [](std::array<std::uint64_t, 4> counter, std::array<std::uint64_t, 2> key) {
        return rng::philox4x64_10(counter, key);
      },
      "counter"_a, "key"_a);
  t.def(
      "raw",
      [](std::int64_t n, std::uint64_t seed, std::uint64_t chain, std::uint64_t iteration,
         std::uint64_t group, std::uint64_t stream) {
        check_count("raw", n);
        rng::Rng r(rng::ChainKey{seed, chain}, iteration, group, stream_from_code(stream));
        std::vector<std::uint64_t> out(static_cast<std::size_t>(n));
        for (auto& word : out) word = r.next_u64();
        return py::array_t<std::uint64_t>(static_cast<py::ssize_t>(out.size()), out.data());
      },
      "n"_a, "seed"_a, "chain"_a, "iteration"_a, "group"_a, "stream"_a,
      "The first n 64-bit words of Rng(ChainKey{seed, chain}, iteration, group, stream).");
  t.def(
      "draw",
      [](const std::string& name, std::int64_t n, std::vector<double> params, std::uint64_t seed,
         std::uint64_t chain, std::uint64_t iteration, std::uint64_t group) {
        check_count("draw", n);
        Vector out(n);
        rng::Rng r(rng::ChainKey{seed, chain}, iteration, group, rng::Stream::Test);
        auto param = [&](std::size_t i) {
          if (i >= params.size())
            throw std::invalid_argument(concat("draw('", name, "'): missing parameter ", i));
          return params[i];
        };
        for (Index i = 0; i < n; ++i) {
          if (name == "uniform") out[i] = r.uniform();
          else if (name == "normal") out[i] = r.std_normal();
          else if (name == "gamma") out[i] = rng::gamma_rng(param(0), param(1), r);
          else if (name == "log_gamma") out[i] = rng::log_gamma_rng(param(0), r);
          else if (name == "chi_square") out[i] = rng::chi_square_rng(param(0), r);
          else if (name == "inv_gamma") out[i] = rng::inv_gamma_rng(param(0), param(1), r);
          else if (name == "exponential") out[i] = rng::exponential_rng(param(0), r);
          else if (name == "beta") out[i] = rng::beta_rng(param(0), param(1), r);
          else if (name == "truncated_normal")
            out[i] = rng::truncated_normal_rng(param(0), param(1), param(2), param(3), r);
          else throw std::invalid_argument(concat("draw: unknown distribution '", name, "'"));
        }
        return out;
      },
      "name"_a, "n"_a, "params"_a = std::vector<double>{}, "seed"_a = 1, "chain"_a = 0,
      "iteration"_a = 0, "group"_a = 0);
  t.def(
      "multi_normal",
      [](const Vector& mean, const Matrix& factor, bool precision, std::int64_t n,
         std::uint64_t seed) {
        check_count("multi_normal", n);
        check_lower_factor("multi_normal", "cholesky_factor", factor, mean.size());
        RowMatrix out(n, mean.size());
        for (Index i = 0; i < n; ++i) {
          rng::Rng r(rng::ChainKey{seed, 0}, static_cast<std::uint64_t>(i), 0, rng::Stream::Test);
          out.row(i) = (precision ? linalg::multi_normal_prec_chol_rng(mean, factor, r)
                                  : linalg::multi_normal_chol_rng(mean, factor, r))
                           .transpose();
        }
        return out;
      },
      "mean"_a, "cholesky_factor"_a, "precision"_a, "n"_a, "seed"_a = 1);
  t.def(
      "multi_normal_canonical",
      [](const Vector& h, const Matrix& l_prec, std::int64_t n, std::uint64_t seed) {
        check_count("multi_normal_canonical", n);
        check_lower_factor("multi_normal_canonical", "cholesky_factor", l_prec, h.size());
        RowMatrix out(n, h.size());
        for (Index i = 0; i < n; ++i) {
          rng::Rng r(rng::ChainKey{seed, 0}, static_cast<std::uint64_t>(i), 0, rng::Stream::Test);
          out.row(i) = linalg::multi_normal_canonical_rng(h, l_prec, r).transpose();
        }
        return out;
      },
      "h"_a, "cholesky_factor"_a, "n"_a, "seed"_a = 1,
      "n draws from N(Q^{-1} h, Q^{-1}), Q = L L'.");
  t.def(
      "multi_normal_lpdf",
      [](const Vector& x, const Vector& mean, const Matrix& l_cov) {
        check_size_match("multi_normal_lpdf", "x", x.size(), "mean", mean.size());
        check_lower_factor("multi_normal_lpdf", "cholesky_factor", l_cov, mean.size());
        return linalg::multi_normal_chol_lpdf(x, mean, l_cov);
      },
      "x"_a, "mean"_a, "cholesky_factor"_a);
  t.def(
      "wishart",
      [](double nu, const Matrix& l_scale, bool inverse, std::int64_t n, std::uint64_t seed) {
        check_count("wishart", n);
        check_lower_factor("wishart", "scale_cholesky", l_scale, -1);
        const Index p = l_scale.rows();
        RowMatrix out(n, p * p);
        for (Index i = 0; i < n; ++i) {
          rng::Rng r(rng::ChainKey{seed, 0}, static_cast<std::uint64_t>(i), 0, rng::Stream::Test);
          const Matrix w = inverse ? linalg::inv_wishart_rng(nu, l_scale, r)
                                   : linalg::wishart_rng(nu, l_scale, r);
          out.row(i) = Eigen::Map<const Eigen::RowVectorXd>(w.data(), p * p);
        }
        return out;
      },
      "nu"_a, "scale_cholesky"_a, "inverse"_a, "n"_a, "seed"_a = 1,
      "n draws, each a p x p matrix flattened (rows of the result).");
  t.def(
      "wishart_cholesky",
      [](double nu, const Matrix& l_scale, bool inverse, std::int64_t n, std::uint64_t seed) {
        check_count("wishart_cholesky", n);
        check_lower_factor("wishart_cholesky", "scale_cholesky", l_scale, -1);
        const Index p = l_scale.rows();
        RowMatrix out(n, p * p);
        for (Index i = 0; i < n; ++i) {
          rng::Rng r(rng::ChainKey{seed, 0}, static_cast<std::uint64_t>(i), 0, rng::Stream::Test);
          const RowMatrix l = inverse ? linalg::inv_wishart_cholesky_rng(nu, l_scale, r)
                                      : linalg::wishart_cholesky_rng(nu, l_scale, r);
          out.row(i) = Eigen::Map<const Eigen::RowVectorXd>(l.data(), p * p);
        }
        return out;
      },
      "nu"_a, "scale_cholesky"_a, "inverse"_a, "n"_a, "seed"_a = 1,
      "Like wishart, but each row is the lower Cholesky factor of the draw (row-major).");
}

}  // namespace bglmm::bindings
