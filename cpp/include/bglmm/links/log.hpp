// bglmm/links/log.hpp — log link: mu = exp(eta).
#pragma once
#include <cmath>

namespace bglmm::links {
struct Log {
  static constexpr const char* name = "log";
  static double link(double mu) { return std::log(mu); }
  static double linkinv(double eta) { return std::exp(eta); }
  static double dmu_deta(double eta) { return std::exp(eta); }
};
}  // namespace bglmm::links
