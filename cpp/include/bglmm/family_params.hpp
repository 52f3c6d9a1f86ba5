// bglmm/family_params.hpp — what a family's likelihood needs besides y, trials and eta: its
// dispersion phi (gaussian sigma^2, negative-binomial and beta-binomial phi, gamma shape, the
// zero-inflated Poisson's odds of a structural zero) and, for a family with two such
// parameters, the second, phi2 (the zero-inflated negative binomial's odds of a structural zero;
// its phi is the negative binomial's). Families with one parameter ignore phi2. The cumulative
// ordinal families read their K - 1 ordered cutpoints through `cut` (owned by the caller, e.g.
// the chain's state); the others ignore them.
#pragma once

namespace bglmm {

struct FamilyParams {
  double phi = 1.0;
  double phi2 = 1.0;
  const double* cut = nullptr;  // cutpoints c_0 < ... < c_{n_cut - 1} (cumulative families)
  int n_cut = 0;
  // parameter `which` (0: phi, 1: phi2), and a copy with it set to v
  double get(int which) const { return which == 0 ? phi : phi2; }
  FamilyParams with(int which, double v) const {
    FamilyParams out = *this;
    (which == 0 ? out.phi : out.phi2) = v;
    return out;
  }
};

}  // namespace bglmm
