// PYBIND11_MODULE(_core): declares the module and calls one bind_* per area; nothing else.
#include "pybind.hpp"

#include "bglmm/parallel.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "bglmm C++ core (samplers, distributions, families)";
  m.attr("__version__") = BGLMM_VERSION;
  m.def("have_openmp", &bglmm::have_openmp, "True if the core was built with OpenMP.");
  m.def("max_threads", &bglmm::max_threads, "Threads OpenMP would use by default.");
  m.def("request_stop", [] { bglmm::bindings::stop_requested() = true; },
        "Ask every running chain to stop and return its draws (used on Ctrl-C).");
  m.def("clear_stop", [] { bglmm::bindings::stop_requested() = false; },
        "Reset the stop request before a new fit.");
  bglmm::bindings::bind_errors(m);
  bglmm::bindings::bind_rng(m);
  bglmm::bindings::bind_families(m);
  bglmm::bindings::bind_glm(m);
  bglmm::bindings::bind_hierarchical(m);
  bglmm::bindings::bind_glmm(m);
}
