// Bindings of the hierarchical samplers (filled in by the hierarchical work).
#include "pybind.hpp"

namespace bglmm::bindings {
void bind_hierarchical(py::module_& m) { (void)m; }
}  // namespace bglmm::bindings
