// Test-only vectorised access to every family x link: log-likelihood, score, Fisher weight,
// inverse link, so pytest can compare against scipy on grids including |eta| = 700.
#include "bglmm/glm.hpp"
#include "pybind.hpp"

namespace bglmm::bindings {

void bind_families(py::module_& m) {
  py::module_ f = m.def_submodule("families", "Family x link functions (exposed for tests).");
  f.def(
      "evaluate",
      [](int family_link, const std::string& what, const Vector& y, const Vector& trials,
         const Vector& eta, double phi) {
        check_size_match("evaluate", "y", y.size(), "eta", eta.size());
        check_size_match("evaluate", "trials", trials.size(), "eta", eta.size());
        Vector out(eta.size());
        dispatch(family_link_from_code(family_link), [&](auto g) {
          using G = decltype(g);
          for (Index i = 0; i < eta.size(); ++i) {
            if (what == "log_lik") out[i] = G::log_lik(y[i], trials[i], eta[i], phi);
            else if (what == "log_kernel") out[i] = G::log_kernel(y[i], trials[i], eta[i], phi);
            else if (what == "score") out[i] = G::score(y[i], trials[i], eta[i], phi);
            else if (what == "weight") out[i] = G::weight(trials[i], eta[i], phi);
            else if (what == "linkinv") out[i] = G::linkinv(eta[i]);
            else throw std::invalid_argument(concat("evaluate: unknown quantity '", what, "'"));
          }
          return 0;
        });
        return out;
      },
      "family_link"_a, "what"_a, "y"_a, "trials"_a, "eta"_a, "phi"_a = 1.0);
}

}  // namespace bglmm::bindings
