// Test-only vectorised access to every family x link: log-likelihood, score, Fisher weight,
// inverse link, so pytest can compare against scipy on grids including |eta| = 700; and to
// each link's scalar functions (link, linkinv, dmu_deta and the stable log forms).
#include "bglmm/glm.hpp"
#include "pybind.hpp"

namespace bglmm::bindings {

namespace {

// f(link) for a link name; links without the log forms (identity, log) accept only
// link / linkinv / dmu_deta.
template <typename Link, bool has_log_forms>
double link_function(const std::string& what, double x) {
  if (what == "link") return Link::link(x);
  if (what == "linkinv") return Link::linkinv(x);
  if (what == "dmu_deta") return Link::dmu_deta(x);
  if constexpr (has_log_forms) {
    if (what == "log_mu") return Link::log_mu(x);
    if (what == "log1m_mu") return Link::log1m_mu(x);
    if (what == "dlog_mu") return Link::dlog_mu(x);
    if (what == "dlog1m_mu") return Link::dlog1m_mu(x);
    if constexpr (std::is_same_v<Link, links::Logit> || std::is_same_v<Link, links::Probit>)
      if (what == "log_dmu_deta") return Link::log_dmu_deta(x);
  }
  throw std::invalid_argument(
      concat("link_evaluate: unknown quantity '", what, "' for link '", Link::name, "'"));
}

}  // namespace

void bind_families(py::module_& m) {
  py::module_ f = m.def_submodule("families", "Family x link functions (exposed for tests).");
  f.def(
      "evaluate",
      [](int family_link, const std::string& what, const Vector& y, const Vector& trials,
         const Vector& eta, double phi, double phi2, const Vector& cutpoints) {
        check_size_match("evaluate", "y", y.size(), "eta", eta.size());
        check_size_match("evaluate", "trials", trials.size(), "eta", eta.size());
        check_positive("evaluate", "phi", phi);
        check_positive("evaluate", "phi2", phi2);
        const FamilyLink fl = family_link_from_code(family_link);
        const RowMatrix cut_row = cutpoints.transpose();
        check_category_codes("evaluate", fl, y, cut_row);
        for (Index k = 1; k < cutpoints.size(); ++k)
          if (!(cutpoints[k] > cutpoints[k - 1]))
            throw std::invalid_argument("evaluate: cutpoints must increase");
        const FamilyParams fp{phi, phi2, cutpoints.data(), static_cast<int>(cutpoints.size())};
        Vector out(eta.size());
        dispatch(fl, [&](auto g) {
          using G = decltype(g);
          for (Index i = 0; i < eta.size(); ++i) {
            if (what == "log_lik") out[i] = G::log_lik(y[i], trials[i], eta[i], fp);
            else if (what == "log_kernel") out[i] = G::log_kernel(y[i], trials[i], eta[i], fp);
            else if (what == "score") out[i] = G::score(y[i], trials[i], eta[i], fp);
            else if (what == "weight") out[i] = G::weight(trials[i], eta[i], fp);
            else if (what == "linkinv") out[i] = G::linkinv(eta[i]);
            else throw std::invalid_argument(concat("evaluate: unknown quantity '", what, "'"));
          }
          return 0;
        });
        return out;
      },
      "family_link"_a, "what"_a, "y"_a, "trials"_a, "eta"_a, "phi"_a = 1.0, "phi2"_a = 1.0,
      "cutpoints"_a = Vector(),
      "Elementwise log_lik, log_kernel, score, weight or linkinv of a family x link at (y, "
      "trials, eta) and its parameters (cutpoints: the cumulative families', increasing).");
  f.def(
      "link_evaluate",
      [](const std::string& link, const std::string& what, const Vector& x) {
        Vector out(x.size());
        for (Index i = 0; i < x.size(); ++i) {
          if (link == "identity") out[i] = link_function<links::Identity, false>(what, x[i]);
          else if (link == "log") out[i] = link_function<links::Log, false>(what, x[i]);
          else if (link == "logit") out[i] = link_function<links::Logit, true>(what, x[i]);
          else if (link == "probit") out[i] = link_function<links::Probit, true>(what, x[i]);
          else if (link == "cloglog") out[i] = link_function<links::Cloglog, true>(what, x[i]);
          else throw std::invalid_argument(concat("link_evaluate: unknown link '", link, "'"));
        }
        return out;
      },
      "link"_a, "what"_a, "x"_a,
      "Elementwise link function `what` (link, linkinv, dmu_deta, log_mu, log1m_mu, dlog_mu, "
      "dlog1m_mu) of the named link.");
}

}  // namespace bglmm::bindings
