// Exception translation: bglmm::NumericalError -> bglmm.NumericalError (an ArithmeticError).
// std::invalid_argument / std::domain_error become ValueError through pybind11's defaults.
#include "bglmm/error.hpp"
#include "pybind.hpp"

namespace bglmm::bindings {
void bind_errors(py::module_& m) {
  py::register_exception<NumericalError>(m, "NumericalError", PyExc_ArithmeticError);
}
}  // namespace bglmm::bindings
