// The one pybind11 include of the bindings (keeps casters consistent across files),
// plus the helpers every binding file shares.
#pragma once
#include <pybind11/eigen.h>
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>

#include "bglmm/control.hpp"
#include "bglmm/error.hpp"
#include "bglmm/glm.hpp"
#include "bglmm/steps/covariance_prior.hpp"

namespace py = pybind11;
using namespace pybind11::literals;

namespace bglmm::bindings {

// Set by bglmm._core.request_stop(): when chains run in worker threads, only the main thread
// sees Ctrl-C, and it asks every running chain to stop through this flag.
inline std::atomic<bool>& stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

// A RunControl whose callbacks re-acquire the GIL: Ctrl-C (a pending SIGINT, seen on the main
// thread) or request_stop() stops the run, and `progress` (a Python callable or None) receives
// (done, total).
inline RunControl make_run_control(const py::object& progress) {
  RunControl control;
  control.interrupted = [] {
    if (stop_requested().load(std::memory_order_relaxed)) return true;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) {
      PyErr_Clear();  // the run returns its draws with interrupted=True instead
      return true;
    }
    return false;
  };
  if (!progress.is_none()) {
    auto callback = std::make_shared<py::object>(progress);
    control.progress = [callback](std::int64_t done, std::int64_t total) {
      py::gil_scoped_acquire gil;
      try {
        (*callback)(done, total);
      } catch (py::error_already_set&) {
        // a failing progress bar must not kill the run
      }
    };
  }
  return control;
}

// The pointwise log-likelihoods of the cumulative families: one row of cutpoints per draw, and
// y the category codes 0 .. K - 1 with K - 1 the number of cutpoints (else the family would read
// past them).
template <typename Y>
void check_category_codes(const char* fn, FamilyLink family_link, const Y& y,
                          const RowMatrix& cutpoints) {
  if (!dispatch(family_link, [](auto g) { return HasCutpoints<decltype(g)>; })) return;
  if (cutpoints.cols() == 0)
    throw std::invalid_argument(concat(fn, ": the cumulative family needs cutpoints"));
  const double k = static_cast<double>(cutpoints.cols());
  for (Index i = 0; i < y.size(); ++i)
    if (!(y[i] >= 0.0 && y[i] <= k && y[i] == std::floor(y[i])))
      throw std::invalid_argument(concat(fn, ": y[", i, "] = ", y[i],
                                         " is not a category code 0 .. ", k));
}

// A covariance prior from the dict that bglmm.priors.covariance_prior_spec builds:
// kind (0 inverse-Wishart, 1 separation), iw_df, iw_scale, sd_kind, sd_a, sd_b, eta.
inline steps::CovariancePrior covariance_prior_from(const py::dict& spec) {
  auto get = [&](const char* key) {
    if (!spec.contains(key))
      throw std::invalid_argument(std::string("covariance prior: missing '") + key + "'");
    return spec[key];
  };
  const int kind = get("kind").cast<int>();
  if (kind == 0)
    return steps::make_covariance_prior(0, get("iw_df").cast<double>(),
                                        get("iw_scale").cast<Matrix>(), {}, {}, {}, 1.0);
  return steps::make_covariance_prior(kind, 0.0, Matrix(), get("sd_kind").cast<std::vector<int>>(),
                                      get("sd_a").cast<std::vector<double>>(),
                                      get("sd_b").cast<std::vector<double>>(),
                                      get("eta").cast<double>());
}

void bind_errors(py::module_& m);
void bind_rng(py::module_& m);
void bind_families(py::module_& m);
void bind_glm(py::module_& m);
void bind_hierarchical(py::module_& m);
void bind_glmm(py::module_& m);

}  // namespace bglmm::bindings
