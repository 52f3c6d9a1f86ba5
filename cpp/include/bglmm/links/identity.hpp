// bglmm/links/identity.hpp — identity link: mu = eta.
#pragma once

namespace bglmm::links {
struct Identity {
  static constexpr const char* name = "identity";
  static double link(double mu) { return mu; }
  static double linkinv(double eta) { return eta; }
  static double dmu_deta(double /*eta*/) { return 1.0; }
};
}  // namespace bglmm::links
