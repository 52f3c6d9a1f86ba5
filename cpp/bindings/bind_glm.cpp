// Bayesian GLM entry points: run_glm_chain (one chain, GIL released), glm_mode, and the
// pointwise log-likelihood for WAIC/LOO.
#include "bglmm/glm_sampler.hpp"
#include "pybind.hpp"

namespace bglmm::bindings {
namespace {

GlmPrior make_prior(const Vector& mean, const Matrix& covariance, double a0, double b0,
                    int dispersion_kind = 0, double dispersion_a = 0.01,
                    double dispersion_b = 0.01, int dispersion2_kind = 0,
                    double dispersion2_a = 0.01, double dispersion2_b = 0.01) {
  GlmPrior prior;
  prior.mean = mean;
  prior.covariance = covariance;
  prior.sigma2_shape = a0;
  prior.sigma2_scale = b0;
  prior.dispersion = steps::dispersion_prior_from_code(dispersion_kind, dispersion_a, dispersion_b);
  prior.dispersion2 =
      steps::dispersion_prior_from_code(dispersion2_kind, dispersion2_a, dispersion2_b);
  return prior;
}

py::dict to_dict(GlmChainResult&& r) {
  const Index kept = r.draws_done;
  py::dict out;
  out["beta"] = RowMatrix(r.beta.topRows(kept));
  out["sigma"] = r.sigma.size() ? Vector(r.sigma.head(kept)) : Vector();
  out["dispersion"] = r.dispersion.size() ? Vector(r.dispersion.head(kept)) : Vector();
  out["dispersion2"] = r.dispersion2.size() ? Vector(r.dispersion2.head(kept)) : Vector();
  out["cutpoints"] = r.cutpoints.size() ? RowMatrix(r.cutpoints.topRows(kept)) : RowMatrix();
  out["zi_coef"] = r.zi_coef.size() ? RowMatrix(r.zi_coef.topRows(kept)) : RowMatrix();
  out["zi_acceptance"] = r.zi_acceptance;
  out["joint_acceptance"] = r.joint_acceptance;
  out["log_posterior"] = Vector(r.log_posterior.head(kept));
  out["accepted"] = Vector(r.accepted.head(kept));
  out["acceptance_rate"] = r.acceptance_rate;
  out["warmup_acceptance_rate"] = r.warmup_acceptance_rate;
  out["proposal_scale"] = r.proposal_scale;
  out["mode"] = r.mode;
  out["proposal_covariance"] = r.proposal_covariance;
  out["draws_done"] = r.draws_done;
  out["interrupted"] = r.interrupted;
  return out;
}

}  // namespace

void bind_glm(py::module_& m) {
  m.def(
      "run_glm_chain",
      [](ConstRowMatrixRef x, ConstVectorRef y, ConstVectorRef trials, ConstVectorRef offset,
         int family_link, const Vector& prior_mean, const Matrix& prior_cov, double sigma2_shape,
         double sigma2_scale, std::int64_t draws, std::int64_t warmup, std::int64_t thin,
         int method, int proposal_covariance, double target_acceptance, double initial_scale,
         double known_sigma, int threads, std::uint64_t seed, std::uint64_t chain,
         const py::object& progress, int dispersion_kind, double dispersion_a,
         double dispersion_b, int dispersion2_kind, double dispersion2_a, double dispersion2_b,
         double cutpoint_sd, Index intercept_col, int categories, ConstVectorRef weights,
         ConstRowMatrixRef zi_x, const Vector& zi_prior_sd) {
        GlmData data =
            make_glm_data(x, y, trials, offset, family_link_from_code(family_link), weights);
        GlmPrior prior =
            make_prior(prior_mean, prior_cov, sigma2_shape, sigma2_scale, dispersion_kind,
                       dispersion_a, dispersion_b, dispersion2_kind, dispersion2_a, dispersion2_b);
        const int zi_param =
            dispatch(data.family_link, [](auto g) { return ZeroInflationParam<decltype(g)>; });
        data.zi = steps::make_zi_design(zi_x, zi_prior_sd, data.rows(), zi_param >= 0,
                                        prior.family_prior(std::max(zi_param, 0)));
        prior.cutpoints = steps::CutpointPrior{cutpoint_sd, intercept_col};
        prior.categories = categories;
        GlmConfig config;
        config.draws = draws;
        config.warmup = warmup;
        config.thin = thin;
        config.method = static_cast<GlmMethod>(method);
        config.proposal_covariance = static_cast<ProposalCovariance>(proposal_covariance);
        config.target_acceptance = target_acceptance;
        config.initial_scale = initial_scale;
        config.known_sigma = known_sigma;
        config.threads = threads;
        const RunControl control = make_run_control(progress);
        GlmChainResult result;
        {
          py::gil_scoped_release nogil;
          result = run_glm_chain(data, prior, config, rng::ChainKey{seed, chain}, control);
        }
        return to_dict(std::move(result));
      },
      "x"_a.noconvert(), "y"_a.noconvert(), "trials"_a.noconvert(), "offset"_a.noconvert(),
      "family_link"_a, "prior_mean"_a, "prior_cov"_a, "sigma2_shape"_a, "sigma2_scale"_a,
      "draws"_a, "warmup"_a, "thin"_a, "method"_a, "proposal_covariance"_a,
      "target_acceptance"_a, "initial_scale"_a, "known_sigma"_a, "threads"_a, "seed"_a,
      "chain"_a, "progress"_a = py::none(), "dispersion_kind"_a = 0, "dispersion_a"_a = 0.01,
      "dispersion_b"_a = 0.01, "dispersion2_kind"_a = 0, "dispersion2_a"_a = 0.01,
      "dispersion2_b"_a = 0.01, "cutpoint_sd"_a = 0.0, "intercept_col"_a = -1,
      "categories"_a = 0, "weights"_a.noconvert() = Vector(), "zi_x"_a.noconvert() = RowMatrix(),
      "zi_prior_sd"_a = Vector(),
      "Run one chain of the Bayesian GLM sampler (GIL released while sampling). "
      "dispersion_kind: 0 Gamma(a, b) on phi, 1 phi fixed at a, 2 Beta(a, b) on phi / (1 + phi); "
      "dispersion2_*: the same for a second parameter phi2 (zero_inflated_negbinomial). "
      "Cumulative families: y holds category codes 0 .. categories - 1, X an intercept "
      "(column intercept_col), each cutpoint ~ N(0, cutpoint_sd^2) ordered. weights: case "
      "weights (each row's log-likelihood times its weight), or empty. zi_x (N x p_zi, centred) "
      "and zi_prior_sd: a zero-inflated family's zi formula without its intercept (the odds' "
      "prior is the intercept's), slopes ~ N(0, sd^2).");

  m.def(
      "dispersion_slice_chain",
      [](int kind, double a, double b, double phi, std::int64_t iterations, std::uint64_t seed) {
        const steps::DispersionPrior prior = steps::dispersion_prior_from_code(kind, a, b);
        check_positive("dispersion_slice_chain", "phi", phi);
        Vector out(iterations);
        const auto flat = [](double) { return 0.0; };
        for (std::int64_t t = 0; t < iterations; ++t) {
          rng::Rng rng(rng::ChainKey{seed, 0}, static_cast<std::uint64_t>(t), 0,
                       rng::Stream::Dispersion);
          phi = steps::dispersion_slice_step(flat, phi, prior, rng);
          out[t] = phi;
        }
        return out;
      },
      "kind"_a, "a"_a, "b"_a, "phi"_a, "iterations"_a, "seed"_a,
      "Test hook: `iterations` dispersion slice steps under a flat likelihood (draws of phi "
      "from its prior).");

  m.def(
      "glm_mode",
      [](ConstRowMatrixRef x, ConstVectorRef y, ConstVectorRef trials, ConstVectorRef offset,
         int family_link, const Vector& prior_mean, const Matrix& prior_cov, double phi,
         int threads, ConstVectorRef weights) {
        const GlmData data =
            make_glm_data(x, y, trials, offset, family_link_from_code(family_link), weights);
        if (dispatch(data.family_link, [](auto g) { return HasCutpoints<decltype(g)>; }))
          throw std::invalid_argument("glm_mode: the cumulative families need their cutpoints; "
                                      "run_glm_chain finds the joint mode");
        const GlmMode mode =
            glm_mode(data, make_prior(prior_mean, prior_cov, 0, 0), FamilyParams{phi}, threads);
        return py::make_tuple(mode.beta, mode.covariance, mode.iterations, mode.converged);
      },
      "x"_a.noconvert(), "y"_a.noconvert(), "trials"_a.noconvert(), "offset"_a.noconvert(),
      "family_link"_a, "prior_mean"_a, "prior_cov"_a, "phi"_a = 1.0, "threads"_a = 0,
      "weights"_a.noconvert() = Vector(),
      "Posterior mode and inverse curvature by penalised IWLS (Fisher scoring).");

  m.def(
      "glm_pointwise_log_lik",
      [](ConstRowMatrixRef x, ConstVectorRef y, ConstVectorRef trials, ConstVectorRef offset,
         int family_link, const RowMatrix& beta, const Vector& phi, int threads,
         const Vector& phi2, const RowMatrix& cutpoints) {
        const GlmData data = make_glm_data(x, y, trials, offset, family_link_from_code(family_link));
        check_category_codes("glm_pointwise_log_lik", data.family_link, data.y, cutpoints);
        py::gil_scoped_release nogil;
        return glm_pointwise_log_lik(data, beta, phi, phi2, cutpoints, threads);
      },
      "x"_a.noconvert(), "y"_a.noconvert(), "trials"_a.noconvert(), "offset"_a.noconvert(),
      "family_link"_a, "beta"_a, "phi"_a, "threads"_a = 0, "phi2"_a = Vector(),
      "cutpoints"_a = RowMatrix(),
      "Pointwise log-likelihood, draws x observations.");
}

}  // namespace bglmm::bindings
