// Bindings of the glmm samplers (filled in by the glmm work).
#include "pybind.hpp"

namespace bglmm::bindings {
void bind_glmm(py::module_& m) { (void)m; }
}  // namespace bglmm::bindings
