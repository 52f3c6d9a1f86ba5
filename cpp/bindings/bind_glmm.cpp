// Bindings of the GLMM Metropolis-within-Gibbs sampler: run_glmm_chain (one chain, GIL
// released), glmm_geweke (joint-distribution test), glmm_pointwise_log_lik (WAIC/LOO) and
// glmm_log_lik_pass_seconds (the cost yardstick of a sweep).
#include "bglmm/glmm_sampler.hpp"
#include "pybind.hpp"

namespace bglmm::bindings {
namespace {

GroupedData grouped(ConstRowMatrixRef x, ConstRowMatrixRef z, ConstVectorRef y,
                    ConstVectorRef trials, ConstVectorRef offset, ConstIndexVectorRef group_start,
                    int family_link, ConstVectorRef weights = Vector()) {
  return make_grouped_data(x, z, y, trials, offset, group_start, family_link_from_code(family_link),
                           weights);
}

// The extra random-effect blocks as Python passes them: a list of dicts with codes (N,
// int64), z (N x q), level_start (m + 1), level_rows (N) and, for the samplers, cov_prior.
// The arrays are held here for the duration of the call (the blocks map them).
struct ExtraArrays {
  using IntArray = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;
  using RealArray = py::array_t<double, py::array::c_style | py::array::forcecast>;
  IntArray codes, level_start, level_rows;
  RealArray z;
  py::object cov_prior;
  Index parent = -2;                // nested in: -1 the primary block, k >= 0 extra block k
  std::vector<Index> parent_level;  // the parent level of each level
};

std::vector<ExtraArrays> extra_arrays(const py::list& extra) {
  std::vector<ExtraArrays> out;
  for (const py::handle item : extra) {
    const py::dict d = py::reinterpret_borrow<py::dict>(item);
    ExtraArrays a{ExtraArrays::IntArray::ensure(d["codes"]),
                  ExtraArrays::IntArray::ensure(d["level_start"]),
                  ExtraArrays::IntArray::ensure(d["level_rows"]),
                  ExtraArrays::RealArray::ensure(d["z"]),
                  d.contains("cov_prior") ? py::object(d["cov_prior"]) : py::object(py::none())};
    if (!a.codes || !a.level_start || !a.level_rows || !a.z)
      throw std::invalid_argument("extra random-effect block: arrays of the wrong type");
    if (a.z.ndim() != 2) throw std::invalid_argument("extra random-effect block: z must be 2-D");
    if (d.contains("parent")) {
      a.parent = d["parent"].cast<Index>();
      a.parent_level = d["parent_level"].cast<std::vector<Index>>();
    }
    out.push_back(std::move(a));
  }
  return out;
}

// The extra blocks over the sorted rows of `obs` (x and, for nesting in the primary block,
// its z and group offsets).
std::vector<ExtraBlock> extra_blocks(const std::vector<ExtraArrays>& arrays,
                                     const GroupedData& obs) {
  std::vector<ExtraBlock> out;
  Index k = 0;
  for (const ExtraArrays& a : arrays) {
    using IMap = Eigen::Map<const IndexVector>;
    out.push_back(make_extra_block(
        IMap(a.codes.data(), a.codes.size()),
        Eigen::Map<const RowMatrix>(a.z.data(), a.z.shape(0), a.z.shape(1)),
        IMap(a.level_start.data(), a.level_start.size()),
        IMap(a.level_rows.data(), a.level_rows.size()), obs.x, ++k));
  }
  for (std::size_t e = 0; e < arrays.size(); ++e) {
    const ExtraArrays& a = arrays[e];
    if (a.parent == -2) continue;
    if (a.parent == -1) {
      IndexVector codes(obs.rows());
      for (Index g = 0; g < obs.n_groups(); ++g) codes.segment(obs.begin(g), obs.size(g)).setConstant(g);
      set_parent(out[e], -1, a.parent_level, obs.n_groups(), obs.z, codes);
    } else {
      if (a.parent < 0 || a.parent >= static_cast<Index>(out.size()) ||
          a.parent == static_cast<Index>(e))
        throw std::invalid_argument("extra random-effect block: parent is not another block");
      const ExtraBlock& par = out[static_cast<std::size_t>(a.parent)];
      set_parent(out[e], a.parent, a.parent_level, par.m(), par.z, IndexVector(par.codes));
    }
  }
  return out;
}

// A zero-inflated family's zi formula (steps/zero_inflation.hpp); inactive without columns.
steps::ZiDesign zi_design(const GlmmData& d, const GlmmPriors& pr, ConstRowMatrixRef zi_x,
                          const Vector& zi_prior_sd) {
  const int which = dispatch(d.obs.family_link, [](auto g) { return ZeroInflationParam<decltype(g)>; });
  return steps::make_zi_design(zi_x, zi_prior_sd, d.obs.rows(), which >= 0,
                               pr.family_prior(std::max(which, 0)));
}

GlmmPriors priors(const GlmmData& d, const Vector& beta_mean, const Matrix& beta_cov,
                  const py::dict& cov_prior, double phi_shape, double phi_scale,
                  const steps::DispersionPrior& dispersion,
                  const steps::DispersionPrior& dispersion2,
                  const std::vector<ExtraArrays>& extra = {},
                  const steps::CutpointPrior& cutpoints = {}) {
  GlmmPriors pr;
  pr.cutpoints = cutpoints;
  pr.beta_mean = beta_mean;
  pr.beta_cov = beta_cov;
  pr.cov = covariance_prior_from(cov_prior);
  for (const ExtraArrays& a : extra) {
    if (a.cov_prior.is_none())
      throw std::invalid_argument("extra random-effect block: missing cov_prior");
    pr.extra_cov.push_back(covariance_prior_from(py::reinterpret_borrow<py::dict>(a.cov_prior)));
  }
  pr.phi_shape = phi_shape;
  pr.phi_scale = phi_scale;
  pr.dispersion = dispersion;
  pr.dispersion2 = dispersion2;
  prepare_priors(d, pr);
  return pr;
}

GlmmConfig config_from(const py::dict& c) {
  GlmmConfig cfg;
  for (auto item : c) {
    const auto key = item.first.cast<std::string>();
    const py::handle v = item.second;
    if (key == "draws") cfg.draws = v.cast<std::int64_t>();
    else if (key == "warmup") cfg.warmup = v.cast<std::int64_t>();
    else if (key == "thin") cfg.thin = v.cast<std::int64_t>();
    else if (key == "threads") cfg.threads = v.cast<int>();
    else if (key == "kernel") cfg.kernel = static_cast<GroupKernel>(v.cast<int>());
    else if (key == "rw_scale") cfg.rw_scale = v.cast<double>();
    else if (key == "rw_target") cfg.rw_target = v.cast<double>();
    else if (key == "adapt_rw") cfg.adapt_rw = v.cast<bool>();
    else if (key == "fixed_target") cfg.fixed_target = v.cast<double>();
    else if (key == "keep_group_effects") cfg.keep_group_effects = v.cast<bool>();
    else if (key == "interweave") cfg.interweave = v.cast<bool>();
    else if (key == "marginal_move") cfg.marginal_move = v.cast<bool>();
    else if (key == "translation") cfg.translation = v.cast<bool>();
    else if (key == "non_centred_slice") cfg.non_centred_slice = v.cast<bool>();
    else if (key == "non_centred_slice_max_groups")
      cfg.non_centred_slice_max_groups = v.cast<std::int64_t>();
    else if (key == "non_centred_slice_passes") cfg.non_centred_slice_passes = v.cast<int>();
    else if (key == "non_centred_slice_double_jacobian")
      cfg.non_centred_slice_double_jacobian = v.cast<bool>();
    else if (key == "drop_proposal_correction") cfg.drop_proposal_correction = v.cast<bool>();
    else if (key == "unshifted_centred_mean") cfg.unshifted_centred_mean = v.cast<bool>();
    else if (key == "collapsed_drop_normaliser") cfg.collapsed_drop_normaliser = v.cast<bool>();
    else if (key == "zi_drop_slope_prior") cfg.zi_drop_slope_prior = v.cast<bool>();
    else if (key == "phi_init") cfg.phi_init = v.cast<double>();
    else if (key == "min_rows_per_thread") cfg.min_rows_per_thread = v.cast<std::int64_t>();
    else throw std::invalid_argument("glmm: unknown config key '" + key + "'");
  }
  if (cfg.kernel != GroupKernel::Laplace && cfg.kernel != GroupKernel::RandomWalk)
    throw std::invalid_argument("glmm: kernel must be 0 (laplace) or 1 (random walk)");
  return cfg;
}

py::dict to_dict(GlmmChainResult&& r) {
  const Index kept = r.draws_done;
  py::dict out;
  out["beta"] = RowMatrix(r.beta.topRows(kept));
  out["sigma"] = RowMatrix(r.sigma.topRows(kept));
  out["b"] = r.b.size() ? RowMatrix(r.b.topRows(kept)) : RowMatrix();
  out["phi"] = r.phi.size() ? Vector(r.phi.head(kept)) : Vector();
  out["phi2"] = r.phi2.size() ? Vector(r.phi2.head(kept)) : Vector();
  out["cutpoints"] = r.cutpoints.size() ? RowMatrix(r.cutpoints.topRows(kept)) : RowMatrix();
  out["zi_coef"] = r.zi_coef.size() ? RowMatrix(r.zi_coef.topRows(kept)) : RowMatrix();
  out["zi_acceptance"] = r.zi_acceptance;
  out["log_lik"] = Vector(r.log_lik.head(kept));
  out["group_accept_mean"] = Vector(r.group_accept_mean.head(kept));
  out["fixed_accepted"] = Vector(r.fixed_accepted.head(kept));
  out["group_acceptance"] = r.group_acceptance;
  out["group_warmup_acceptance"] = r.group_warmup_acceptance;
  out["rw_scale"] = r.rw_scale;
  out["fixed_acceptance"] = r.fixed_acceptance;
  out["fixed_warmup_acceptance"] = r.fixed_warmup_acceptance;
  if (r.fixed_proposal_cov.size() > 0) {  // random-walk kernel only (Laplace: unused)
    out["fixed_scale"] = r.fixed_scale;
    out["fixed_proposal_cov"] = r.fixed_proposal_cov;
  }
  out["interweave_acceptance"] = r.interweave_acceptance;  // NaN: the step did not run
  out["marginal_acceptance"] = r.marginal_acceptance;      // NaN: the move did not run
  out["marginal_status"] = static_cast<int>(r.marginal_status);
  out["marginal_warmup_draws"] = r.marginal_warmup_draws;
  out["marginal_dim"] = r.marginal_dim;
  out["warmup_seconds"] = r.warmup_seconds;
  out["sampling_seconds"] = r.sampling_seconds;
  out["sampling_sweeps"] = r.sampling_sweeps;
  out["threads_used"] = r.threads_used;
  out["draws_done"] = r.draws_done;
  out["interrupted"] = r.interrupted;
  py::list extra_sigma, extra_b;
  for (std::size_t k = 0; k < r.extra_sigma.size(); ++k) {
    extra_sigma.append(RowMatrix(r.extra_sigma[k].topRows(kept)));
    extra_b.append(r.extra_b[k].size() ? RowMatrix(r.extra_b[k].topRows(kept)) : RowMatrix());
  }
  out["extra_sigma"] = extra_sigma;
  out["extra_b"] = extra_b;
  out["extra_level_acceptance"] = r.extra_level_acceptance;
  out["extra_scale_acceptance"] = r.extra_scale_acceptance;
  return out;
}

}  // namespace

void bind_glmm(py::module_& m) {
  m.def(
      "run_glmm_chain",
      [](ConstRowMatrixRef x, ConstRowMatrixRef z, ConstVectorRef y, ConstVectorRef trials,
         ConstVectorRef offset, ConstIndexVectorRef group_start, int family_link,
         const std::vector<std::pair<Index, Index>>& centred, const Vector& beta_mean, const Matrix& beta_cov,
         const py::dict& cov_prior, double phi_shape, double phi_scale,
         const py::dict& config, std::uint64_t seed, std::uint64_t chain,
         const py::object& progress, const py::list& extra, int dispersion_kind,
         double dispersion_a, double dispersion_b, int dispersion2_kind, double dispersion2_a,
         double dispersion2_b, int categories, double cutpoint_sd, Index intercept_col,
         ConstVectorRef weights, ConstRowMatrixRef zi_x, const Vector& zi_prior_sd) {
        GlmmData data = make_glmm_data(
            grouped(x, z, y, trials, offset, group_start, family_link, weights), centred,
            categories);
        const std::vector<ExtraArrays> arrays = extra_arrays(extra);
        data.extra = extra_blocks(arrays, data.obs);
        const GlmmPriors pr =
            priors(data, beta_mean, beta_cov, cov_prior, phi_shape, phi_scale,
                   steps::dispersion_prior_from_code(dispersion_kind, dispersion_a,
                                                     dispersion_b),
                   steps::dispersion_prior_from_code(dispersion2_kind, dispersion2_a,
                                                     dispersion2_b),
                   arrays, steps::CutpointPrior{cutpoint_sd, intercept_col});
        data.zi = zi_design(data, pr, zi_x, zi_prior_sd);
        const GlmmConfig cfg = config_from(config);
        const RunControl control = make_run_control(progress);
        GlmmChainResult result;
        {
          py::gil_scoped_release nogil;
          result = run_glmm_chain(std::move(data), pr, cfg, rng::ChainKey{seed, chain}, control);
        }
        return to_dict(std::move(result));
      },
      "x"_a.noconvert(), "z"_a.noconvert(), "y"_a.noconvert(), "trials"_a.noconvert(),
      "offset"_a.noconvert(), "group_start"_a.noconvert(), "family_link"_a, "centred"_a,
      "beta_mean"_a, "beta_cov"_a, "cov_prior"_a, "phi_shape"_a, "phi_scale"_a,
      "config"_a, "seed"_a, "chain"_a, "progress"_a = py::none(), "extra"_a = py::list(),
      "dispersion_kind"_a = 0, "dispersion_a"_a = 0.01, "dispersion_b"_a = 0.01,
      "dispersion2_kind"_a = 0, "dispersion2_a"_a = 0.01, "dispersion2_b"_a = 0.01,
      "categories"_a = 0, "cutpoint_sd"_a = 0.0, "intercept_col"_a = -1,
      "weights"_a.noconvert() = Vector(), "zi_x"_a.noconvert() = RowMatrix(),
      "zi_prior_sd"_a = Vector(),
      "Run one chain of the GLMM Metropolis-within-Gibbs sampler (GIL released). "
      "dispersion_kind (the families with a dispersion phi): 0 Gamma(a, b) on phi, 1 phi fixed "
      "at a, 2 Beta(a, b) on phi / (1 + phi); dispersion2_*: the same for a second parameter "
      "phi2 (zero_inflated_negbinomial). Cumulative families: y holds category codes 0 .. "
      "categories - 1, X an intercept (column intercept_col), each cutpoint ~ N(0, "
      "cutpoint_sd^2) ordered. weights: case weights (each row's log-likelihood times its "
      "weight), or empty. zi_x (N x p_zi, centred) and zi_prior_sd: a zero-inflated family's zi "
      "formula without its intercept (the odds' prior is the intercept's), slopes ~ N(0, sd^2).");

  m.def(
      "glmm_geweke",
      [](ConstRowMatrixRef x, ConstRowMatrixRef z, ConstVectorRef y, ConstVectorRef trials,
         ConstVectorRef offset, ConstIndexVectorRef group_start, int family_link,
         const std::vector<std::pair<Index, Index>>& centred, const Vector& beta_mean, const Matrix& beta_cov,
         const py::dict& cov_prior, double phi_shape, double phi_scale,
         const py::dict& config, std::int64_t iterations, std::uint64_t seed,
         const py::list& extra, int dispersion_kind, double dispersion_a, double dispersion_b,
         int dispersion2_kind, double dispersion2_a, double dispersion2_b, int categories,
         double cutpoint_sd, Index intercept_col, ConstRowMatrixRef zi_x,
         const Vector& zi_prior_sd) {
        GlmmData data = make_glmm_data(
            grouped(x, z, y, trials, offset, group_start, family_link), centred, categories);
        const std::vector<ExtraArrays> arrays = extra_arrays(extra);
        data.extra = extra_blocks(arrays, data.obs);
        const GlmmPriors pr =
            priors(data, beta_mean, beta_cov, cov_prior, phi_shape, phi_scale,
                   steps::dispersion_prior_from_code(dispersion_kind, dispersion_a,
                                                     dispersion_b),
                   steps::dispersion_prior_from_code(dispersion2_kind, dispersion2_a,
                                                     dispersion2_b),
                   arrays, steps::CutpointPrior{cutpoint_sd, intercept_col});
        data.zi = zi_design(data, pr, zi_x, zi_prior_sd);
        const GlmmConfig cfg = config_from(config);
        py::gil_scoped_release nogil;
        return run_glmm_geweke(data, pr, cfg, iterations, rng::ChainKey{seed, 0});
      },
      "x"_a.noconvert(), "z"_a.noconvert(), "y"_a.noconvert(), "trials"_a.noconvert(),
      "offset"_a.noconvert(), "group_start"_a.noconvert(), "family_link"_a, "centred"_a,
      "beta_mean"_a, "beta_cov"_a, "cov_prior"_a, "phi_shape"_a, "phi_scale"_a,
      "config"_a, "iterations"_a, "seed"_a, "extra"_a = py::list(),
      "dispersion_kind"_a = 0, "dispersion_a"_a = 0.01, "dispersion_b"_a = 0.01,
      "dispersion2_kind"_a = 0, "dispersion2_a"_a = 0.01, "dispersion2_b"_a = 0.01,
      "categories"_a = 0, "cutpoint_sd"_a = 0.0, "intercept_col"_a = -1,
      "zi_x"_a.noconvert() = RowMatrix(), "zi_prior_sd"_a = Vector(),
      "Geweke successive-conditional simulator: rows (beta, Sigma, b_0, phi, the extra blocks' "
      "Sigma_k and b_k0, phi2, the cutpoints, the zi slopes) per iteration.");

  m.def(
      "glmm_pointwise_log_lik",
      [](ConstRowMatrixRef x, ConstRowMatrixRef z, ConstVectorRef y, ConstVectorRef trials,
         ConstVectorRef offset, ConstIndexVectorRef group_start, int family_link,
         const RowMatrix& beta, const RowMatrix& b, const Vector& phi, int threads,
         const py::list& extra, const std::vector<RowMatrix>& extra_b, const Vector& phi2,
         const RowMatrix& cutpoints) {
        const GroupedData obs = grouped(x, z, y, trials, offset, group_start, family_link);
        check_category_codes("glmm_pointwise_log_lik", obs.family_link, obs.y, cutpoints);
        const std::vector<ExtraArrays> arrays = extra_arrays(extra);
        const std::vector<ExtraBlock> blocks = extra_blocks(arrays, obs);
        py::gil_scoped_release nogil;
        return glmm_pointwise_log_lik(obs, beta, b, phi, phi2, cutpoints, threads, blocks,
                                      extra_b);
      },
      "x"_a.noconvert(), "z"_a.noconvert(), "y"_a.noconvert(), "trials"_a.noconvert(),
      "offset"_a.noconvert(), "group_start"_a.noconvert(), "family_link"_a, "beta"_a, "b"_a,
      "phi"_a, "threads"_a = 0, "extra"_a = py::list(), "extra_b"_a = std::vector<RowMatrix>(),
      "phi2"_a = Vector(), "cutpoints"_a = RowMatrix(),
      "Pointwise log-likelihood (draws x observations).");

  m.def(
      "glmm_log_lik_pass_seconds",
      [](ConstRowMatrixRef x, ConstRowMatrixRef z, ConstVectorRef y, ConstVectorRef trials,
         ConstVectorRef offset, ConstIndexVectorRef group_start, int family_link,
         const Vector& beta, const RowMatrix& b, double phi, int reps, int threads) {
        const GroupedData obs = grouped(x, z, y, trials, offset, group_start, family_link);
        py::gil_scoped_release nogil;
        return glmm_log_lik_pass_seconds(obs, beta, b, phi, reps, threads);
      },
      "x"_a.noconvert(), "z"_a.noconvert(), "y"_a.noconvert(), "trials"_a.noconvert(),
      "offset"_a.noconvert(), "group_start"_a.noconvert(), "family_link"_a, "beta"_a, "b"_a,
      "phi"_a = 1.0, "reps"_a = 5, "threads"_a = 1,
      "Seconds of the fastest of `reps` plain log-likelihood passes over all observations.");
}

}  // namespace bglmm::bindings
