// Test-only access to the random-number layer: the raw Philox block function and vectors
// of draws from each distribution, so pytest can check them with KS / chi-square tests.
#include <string>

#include "bglmm/linalg/mvn.hpp"
#include "bglmm/linalg/wishart.hpp"
#include "bglmm/rng/distributions.hpp"
#include "bglmm/rng/philox.hpp"
#include "pybind.hpp"

namespace bglmm::bindings {

void bind_rng(py::module_& m) {
  py::module_ t = m.def_submodule("rng", "Random-number layer (exposed for tests).");
  t.def(
      "philox4x64_10",
      [](std::array<std::uint64_t, 4> counter, std::array<std::uint64_t, 2> key) {
        return rng::philox4x64_10(counter, key);
      },
      "counter"_a, "key"_a);
  t.def(
      "draw",
      [](const std::string& name, std::int64_t n, std::vector<double> params, std::uint64_t seed,
         std::uint64_t chain, std::uint64_t iteration, std::uint64_t group) {
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
      "wishart",
      [](double nu, const Matrix& l_scale, bool inverse, std::int64_t n, std::uint64_t seed) {
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
}

}  // namespace bglmm::bindings
