// bglmm/glm.hpp — a (Family, Link) pair as one compile-time type, and the runtime switch.
// Hot loops are templates on the pair; the runtime family/link choice becomes one switch per
// call (dispatch). Binomial-logit gets a fused canonical form: y eta - n log(1 + e^eta).
// Families with a dispersion parameter sampled alongside beta (negative binomial, gamma,
// beta-binomial, and the zero-inflated Poisson's odds of a structural zero) say so with
// `has_dispersion`; the pair's HasDispersion reads it. A family with a second such parameter
// (the zero-inflated negative binomial; the Student-t's scale and degrees of freedom) says
// `has_second_dispersion`. The cumulative ordinal families (`has_cutpoints`) take the whole
// FamilyParams (their cutpoints).
#pragma once
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "bglmm/error.hpp"
#include "bglmm/family_params.hpp"
#include "bglmm/families/beta_binomial.hpp"
#include "bglmm/families/binomial.hpp"
#include "bglmm/families/cumulative.hpp"
#include "bglmm/families/gamma.hpp"
#include "bglmm/families/gaussian.hpp"
#include "bglmm/families/negative_binomial.hpp"
#include "bglmm/families/poisson.hpp"
#include "bglmm/families/student_t.hpp"
#include "bglmm/families/zero_inflated_negative_binomial.hpp"
#include "bglmm/families/zero_inflated_poisson.hpp"
#include "bglmm/links/cloglog.hpp"
#include "bglmm/links/identity.hpp"
#include "bglmm/links/log.hpp"
#include "bglmm/links/logit.hpp"
#include "bglmm/links/probit.hpp"
#include "bglmm/types.hpp"

namespace bglmm {

enum class FamilyLink : int {
  GaussianIdentity = 0,
  PoissonLog = 1,
  BinomialLogit = 2,
  BinomialProbit = 3,
  BinomialCloglog = 4,
  NegBinomialLog = 5,
  GammaLog = 6,
  BetaBinomialLogit = 7,
  BetaBinomialProbit = 8,
  BetaBinomialCloglog = 9,
  ZeroInflatedPoissonLog = 10,
  ZeroInflatedNegBinomialLog = 11,
  StudentIdentity = 12,
  CumulativeLogit = 13,
  CumulativeProbit = 14,
};
constexpr int kLastFamilyLink = 14;

// True for a family whose dispersion phi the GLM sampler updates (Family::has_dispersion).
template <typename F, typename = void>
struct FamilyHasDispersion : std::false_type {};
template <typename F>
struct FamilyHasDispersion<F, std::void_t<decltype(F::has_dispersion)>>
    : std::bool_constant<F::has_dispersion> {};
template <typename G>
constexpr bool HasDispersion = FamilyHasDispersion<typename G::Family>::value;

// True for a family with a second parameter phi2 (Family::has_second_dispersion), whose
// functions take (..., phi, phi2).
template <typename F, typename = void>
struct FamilyHasSecondDispersion : std::false_type {};
template <typename F>
struct FamilyHasSecondDispersion<F, std::void_t<decltype(F::has_second_dispersion)>>
    : std::bool_constant<F::has_second_dispersion> {};
template <typename G>
constexpr bool HasSecondDispersion = FamilyHasSecondDispersion<typename G::Family>::value;

// The zero-inflated families: which parameter (0: phi, 1: phi2) holds the odds of a structural
// zero (Family::zero_inflation_param), whose rows may be shifted by a zi formula
// (steps/zero_inflation.hpp); -1 for the others.
template <typename F, typename = void>
struct FamilyZeroInflation : std::integral_constant<int, -1> {};
template <typename F>
struct FamilyZeroInflation<F, std::void_t<decltype(F::zero_inflation_param)>>
    : std::integral_constant<int, F::zero_inflation_param> {};
template <typename G>
constexpr int ZeroInflationParam = FamilyZeroInflation<typename G::Family>::value;
template <typename G>
constexpr bool IsZeroInflated = ZeroInflationParam<G> >= 0;

// True for the cumulative ordinal families (Family::has_cutpoints), whose functions take the
// FamilyParams (with its cutpoints).
template <typename F, typename = void>
struct FamilyHasCutpoints : std::false_type {};
template <typename F>
struct FamilyHasCutpoints<F, std::void_t<decltype(F::has_cutpoints)>>
    : std::bool_constant<F::has_cutpoints> {};
template <typename G>
constexpr bool HasCutpoints = FamilyHasCutpoints<typename G::Family>::value;

// The number of family parameters beyond beta the samplers update: 0, 1 (phi) or 2 (phi2).
template <typename G>
constexpr int kFamilyParams = HasSecondDispersion<G> ? 2 : (HasDispersion<G> ? 1 : 0);

// The pair's functions take the family's parameters (FamilyParams) and pass the family what it
// uses; a bare phi is accepted for the families with at most one parameter (a family with two
// given one fails to compile).
template <typename FamilyT, typename LinkT>
struct Glm {
  using Family = FamilyT;
  using Link = LinkT;
  static constexpr bool kSecond = FamilyHasSecondDispersion<FamilyT>::value;
  static constexpr bool kCut = FamilyHasCutpoints<FamilyT>::value;
  static double linkinv(double eta) { return Link::linkinv(eta); }
  static double log_kernel(double y, double n, double eta, const FamilyParams& p) {
    if constexpr (kCut) return Family::log_kernel(y, n, eta, p);
    else if constexpr (kSecond) return Family::log_kernel(y, n, eta, p.phi, p.phi2);
    else return Family::log_kernel(y, n, eta, p.phi);
  }
  static double log_constant(double y, double n, const FamilyParams& p) {
    if constexpr (kCut) return Family::log_constant(y, n, p);
    else if constexpr (kSecond) return Family::log_constant(y, n, p.phi, p.phi2);
    else return Family::log_constant(y, n, p.phi);
  }
  static double log_lik(double y, double n, double eta, const FamilyParams& p) {
    return log_kernel(y, n, eta, p) + log_constant(y, n, p);
  }
  static double score(double y, double n, double eta, const FamilyParams& p) {
    if constexpr (kCut) return Family::score(y, n, eta, p);
    else if constexpr (kSecond) return Family::score(y, n, eta, p.phi, p.phi2);
    else return Family::score(y, n, eta, p.phi);
  }
  static double weight(double n, double eta, const FamilyParams& p) {
    if constexpr (kCut) return Family::weight(n, eta, p);
    else if constexpr (kSecond) return Family::weight(n, eta, p.phi, p.phi2);
    else return Family::weight(n, eta, p.phi);
  }
  // the same with a bare phi (families with at most one parameter)
  static double log_kernel(double y, double n, double eta, double phi) {
    static_assert(!kSecond && !kCut, "this family needs FamilyParams");
    return log_kernel(y, n, eta, FamilyParams{phi});
  }
  static double log_lik(double y, double n, double eta, double phi) {
    static_assert(!kSecond && !kCut, "this family needs FamilyParams");
    return log_lik(y, n, eta, FamilyParams{phi});
  }
  static double score(double y, double n, double eta, double phi) {
    static_assert(!kSecond && !kCut, "this family needs FamilyParams");
    return score(y, n, eta, FamilyParams{phi});
  }
  static double weight(double n, double eta, double phi) {
    static_assert(!kSecond && !kCut, "this family needs FamilyParams");
    return weight(n, eta, FamilyParams{phi});
  }
};

// Canonical binomial-logit: fused, overflow-safe forms.
template <>
struct Glm<families::Binomial<links::Logit>, links::Logit> {
  using Family = families::Binomial<links::Logit>;
  using Link = links::Logit;
  static double linkinv(double eta) { return links::inv_logit(eta); }
  // y eta - n log(1 + e^eta), written per sign of eta so that no large terms cancel:
  // for eta > 0 it is (y - n) eta - n log(1 + e^-eta).
  static constexpr bool kSecond = false;
  static double log_kernel(double y, double n, double eta, const FamilyParams& /*p*/) {
    if (eta > 0.0) return (y - n) * eta - n * std::log1p(std::exp(-eta));
    return y * eta - n * std::log1p(std::exp(eta));
  }
  static double log_constant(double y, double n, const FamilyParams& p) {
    return Family::log_constant(y, n, p.phi);
  }
  static double log_lik(double y, double n, double eta, const FamilyParams& p) {
    return log_kernel(y, n, eta, p) + log_constant(y, n, p);
  }
  // y - n mu = y (1 - mu) - (n - y) mu, with mu and 1 - mu from one exp(-|eta|), so that a
  // tiny score (y = n, eta = 30) keeps its relative accuracy instead of n - n (1 - 1e-13).
  static double score(double y, double n, double eta, const FamilyParams& /*p*/) {
    const double e = std::exp(-std::fabs(eta));
    if (eta > 0.0) return (y * e - (n - y)) / (1.0 + e);
    return (y - (n - y) * e) / (1.0 + e);
  }
  static double weight(double n, double eta, const FamilyParams& /*p*/) {
    return n * links::inv_logit(eta) * links::inv_logit(-eta);
  }
  static double log_kernel(double y, double n, double eta, double phi) {
    return log_kernel(y, n, eta, FamilyParams{phi});
  }
  static double log_lik(double y, double n, double eta, double phi) {
    return log_lik(y, n, eta, FamilyParams{phi});
  }
  static double score(double y, double n, double eta, double phi) {
    return score(y, n, eta, FamilyParams{phi});
  }
  static double weight(double n, double eta, double phi) {
    return weight(n, eta, FamilyParams{phi});
  }
};

using GaussianIdentity = Glm<families::Gaussian, links::Identity>;
using PoissonLog = Glm<families::Poisson, links::Log>;
using BinomialLogit = Glm<families::Binomial<links::Logit>, links::Logit>;
using BinomialProbit = Glm<families::Binomial<links::Probit>, links::Probit>;
using BinomialCloglog = Glm<families::Binomial<links::Cloglog>, links::Cloglog>;
using NegBinomialLog = Glm<families::NegativeBinomial, links::Log>;
using GammaLog = Glm<families::Gamma, links::Log>;
using BetaBinomialLogit = Glm<families::BetaBinomial<links::Logit>, links::Logit>;
using BetaBinomialProbit = Glm<families::BetaBinomial<links::Probit>, links::Probit>;
using BetaBinomialCloglog = Glm<families::BetaBinomial<links::Cloglog>, links::Cloglog>;
using ZeroInflatedPoissonLog = Glm<families::ZeroInflatedPoisson, links::Log>;
using ZeroInflatedNegBinomialLog = Glm<families::ZeroInflatedNegativeBinomial, links::Log>;
using StudentIdentity = Glm<families::StudentT, links::Identity>;
using CumulativeLogit = Glm<families::Cumulative<links::Logit>, links::Logit>;
using CumulativeProbit = Glm<families::Cumulative<links::Probit>, links::Probit>;

inline FamilyLink family_link_from_code(int code) {
  if (code < 0 || code > kLastFamilyLink)
    throw std::invalid_argument(concat("unknown family/link code ", code));
  return static_cast<FamilyLink>(code);
}

// Calls f(GlmType{}) for the runtime choice; f is a generic lambda.
template <typename F>
decltype(auto) dispatch(FamilyLink family_link, F&& f) {
  switch (family_link) {
    case FamilyLink::GaussianIdentity: return f(GaussianIdentity{});
    case FamilyLink::PoissonLog: return f(PoissonLog{});
    case FamilyLink::BinomialLogit: return f(BinomialLogit{});
    case FamilyLink::BinomialProbit: return f(BinomialProbit{});
    case FamilyLink::BinomialCloglog: return f(BinomialCloglog{});
    case FamilyLink::NegBinomialLog: return f(NegBinomialLog{});
    case FamilyLink::GammaLog: return f(GammaLog{});
    case FamilyLink::BetaBinomialLogit: return f(BetaBinomialLogit{});
    case FamilyLink::BetaBinomialProbit: return f(BetaBinomialProbit{});
    case FamilyLink::BetaBinomialCloglog: return f(BetaBinomialCloglog{});
    case FamilyLink::ZeroInflatedPoissonLog: return f(ZeroInflatedPoissonLog{});
    case FamilyLink::ZeroInflatedNegBinomialLog: return f(ZeroInflatedNegBinomialLog{});
    case FamilyLink::StudentIdentity: return f(StudentIdentity{});
    case FamilyLink::CumulativeLogit: return f(CumulativeLogit{});
    case FamilyLink::CumulativeProbit: return f(CumulativeProbit{});
  }
  throw std::invalid_argument("unknown family/link");
}

}  // namespace bglmm
