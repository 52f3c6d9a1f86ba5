// bglmm/steps/accept.hpp — the Metropolis-Hastings decision, in one place: the acceptance
// probability min(1, exp(log_ratio)) (0 for NaN: a failed evaluation is a rejection) and one
// uniform draw u from the step's own stream; accepted when u < prob.
#pragma once
#include <algorithm>
#include <cmath>

#include "bglmm/rng/philox.hpp"

namespace bglmm::steps {

struct MhDecision {
  bool accepted = false;
  double prob = 0.0;
};

inline double mh_probability(double log_ratio) {
  return std::isnan(log_ratio) ? 0.0 : std::min(1.0, std::exp(log_ratio));
}

inline MhDecision mh_accept(double log_ratio, rng::Rng& rng) {
  const double prob = mh_probability(log_ratio);
  return {rng.uniform() < prob, prob};
}

}  // namespace bglmm::steps
