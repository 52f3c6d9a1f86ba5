// Bindings of the hierarchical samplers: hierarchical normal (Gibbs and exact; one sweep and the
// collapsed likelihood for tests), the linear mixed model (one chain; one sweep for Geweke
// tests), and the scale-prior step (for tests).
#include "bglmm/hierarchical_normal.hpp"
#include "bglmm/lmm_sampler.hpp"
#include "bglmm/parallel.hpp"
#include "bglmm/steps/scale_prior.hpp"
#include "pybind.hpp"

namespace bglmm::bindings {
namespace {

HierNormalPrior make_hn_prior(double mu_mean, double mu_sd, int tau_kind, double tau_a,
                              double tau_b, double sigma2_shape, double sigma2_scale) {
  HierNormalPrior prior;
  prior.mu_mean = mu_mean;
  prior.mu_sd = mu_sd;
  prior.tau = steps::make_scale_prior(tau_kind, tau_a, tau_b);
  prior.sigma2_shape = sigma2_shape;
  prior.sigma2_scale = sigma2_scale;
  return prior;
}

py::dict hn_to_dict(HierNormalResult&& r) {
  const Index kept = r.draws_done;
  py::dict out;
  out["theta"] = RowMatrix(r.theta.topRows(kept));
  out["mu"] = Vector(r.mu.head(kept));
  out["tau"] = Vector(r.tau.head(kept));
  out["sigma"] = r.sigma.size() ? Vector(r.sigma.head(kept)) : Vector();
  out["draws_done"] = r.draws_done;
  out["interrupted"] = r.interrupted;
  out["collapsed_acceptance"] = r.collapsed_accept;
  return out;
}

// Owns the vectors GroupedData maps (trials = 1) for the lifetime of a call.
struct LmmInputs {
  Vector trials;
  GroupedData data;
  LmmInputs(ConstRowMatrixRef x, ConstRowMatrixRef z, ConstVectorRef y, ConstVectorRef offset,
            ConstIndexVectorRef group_start, ConstVectorRef weights = Vector())
      : trials(Vector::Ones(y.size())),
        data(make_grouped_data(x, z, y, trials, offset, group_start,
                               FamilyLink::GaussianIdentity, weights)) {}
};

LmmPrior make_lmm_prior(const Vector& beta_mean, const Matrix& beta_cov, double a0, double b0,
                        const py::dict& cov_prior) {
  LmmPrior prior;
  prior.beta_mean = beta_mean;
  prior.beta_cov = beta_cov;
  prior.sigma2_shape = a0;
  prior.sigma2_scale = b0;
  prior.cov_prior = covariance_prior_from(cov_prior);
  return prior;
}

}  // namespace

void bind_hierarchical(py::module_& m) {
  m.def(
      "hier_normal_run",
      [](ConstVectorRef y, ConstVectorRef var_known, ConstIndexVectorRef group_start,
         double mu_mean, double mu_sd, int tau_kind, double tau_a, double tau_b,
         double sigma2_shape, double sigma2_scale, std::int64_t draws, std::int64_t warmup,
         std::int64_t thin, bool exact, int grid_points, std::uint64_t seed, std::uint64_t chain,
         const py::object& progress, bool collapsed, bool drop_jacobian) {
        const HierNormalData data = make_hier_normal_data(y, var_known, group_start);
        const HierNormalPrior prior =
            make_hn_prior(mu_mean, mu_sd, tau_kind, tau_a, tau_b, sigma2_shape, sigma2_scale);
        HierNormalConfig config;
        config.draws = draws;
        config.warmup = warmup;
        config.thin = thin;
        config.grid_points = grid_points;
        config.collapsed = collapsed;
        config.drop_jacobian = drop_jacobian;
        const RunControl control = make_run_control(progress);
        HierNormalResult result;
        {
          py::gil_scoped_release nogil;
          const rng::ChainKey key{seed, chain};
          result = exact ? run_hier_normal_exact(data, prior, config, key)
                         : run_hier_normal_gibbs(data, prior, config, key, control);
        }
        return hn_to_dict(std::move(result));
      },
      "y"_a.noconvert(), "var_known"_a.noconvert(), "group_start"_a.noconvert(), "mu_mean"_a,
      "mu_sd"_a, "tau_kind"_a, "tau_a"_a, "tau_b"_a, "sigma2_shape"_a, "sigma2_scale"_a,
      "draws"_a, "warmup"_a, "thin"_a, "exact"_a, "grid_points"_a, "seed"_a, "chain"_a,
      "progress"_a = py::none(), "collapsed"_a = true, "drop_jacobian"_a = false,
      "One chain of the hierarchical normal model (Gibbs or exact grid sampler). collapsed: the "
      "Gibbs sweep starts with the collapsed move of (tau, sigma); drop_jacobian: TESTING ONLY, "
      "a deliberately wrong collapsed move.");

  m.def(
      "hier_normal_sweep",
      [](ConstVectorRef y, ConstVectorRef var_known, ConstIndexVectorRef group_start,
         double mu_mean, double mu_sd, int tau_kind, double tau_a, double tau_b,
         double sigma2_shape, double sigma2_scale, double mu, double tau, const Vector& theta,
         double sigma, std::uint64_t seed, std::uint64_t chain, std::uint64_t iteration,
         bool collapsed, bool scale_gibbs, bool drop_jacobian, double rw_scale,
         const Vector& ind_mean, const Matrix& ind_chol, double ind_df) {
        const HierNormalData data = make_hier_normal_data(y, var_known, group_start);
        const HierNormalPrior prior =
            make_hn_prior(mu_mean, mu_sd, tau_kind, tau_a, tau_b, sigma2_shape, sigma2_scale);
        check_hier_normal_prior(data, prior);
        check_size_match("hier_normal_sweep", "theta", theta.size(), "groups", data.groups());
        if (!(tau > 0.0) || !(sigma > 0.0))
          throw std::invalid_argument("hier_normal_sweep: tau and sigma must be > 0");
        if (iteration < 1) throw std::invalid_argument("hier_normal_sweep: iteration must be >= 1");
        steps::AdaptiveProposal proposal = hier_normal_initial_proposal(data);
        if (rw_scale > 0.0) proposal.log_scale = std::log(rw_scale);
        if (ind_mean.size() > 0) {
          check_size_match("hier_normal_sweep", "ind_mean", ind_mean.size(), "the move's dimension",
                           proposal.dim);
          check_size_match("hier_normal_sweep", "ind_chol", ind_chol.rows(), "the move's dimension",
                           proposal.dim);
          check_size_match("hier_normal_sweep", "ind_chol", ind_chol.cols(), "the move's dimension",
                           proposal.dim);
          proposal.ind_mean = ind_mean;
          proposal.ind_chol = ind_chol.triangularView<Eigen::Lower>();
          proposal.ind_df = ind_df;
          proposal.ind_ready = true;
        }
        HierNormalState state{theta, mu, tau * tau, data.known_variance ? 1.0 : sigma * sigma};
        HierNormalSweepArgs args;
        args.iteration = iteration;
        args.collapsed = collapsed;
        args.scale_gibbs = scale_gibbs;
        args.drop_jacobian = drop_jacobian;
        hier_normal_sweep(data, prior, state, proposal, rng::ChainKey{seed, chain}, args);
        return py::make_tuple(state.mu, std::sqrt(state.tau2), state.theta,
                              data.known_variance ? sigma : std::sqrt(state.sigma2),
                              proposal.accepts);
      },
      "y"_a.noconvert(), "var_known"_a.noconvert(), "group_start"_a.noconvert(), "mu_mean"_a,
      "mu_sd"_a, "tau_kind"_a, "tau_a"_a, "tau_b"_a, "sigma2_shape"_a, "sigma2_scale"_a, "mu"_a,
      "tau"_a, "theta"_a, "sigma"_a, "seed"_a, "chain"_a, "iteration"_a, "collapsed"_a = true,
      "scale_gibbs"_a = true, "drop_jacobian"_a = false, "rw_scale"_a = 0.0,
      "ind_mean"_a = Vector(), "ind_chol"_a = Matrix(), "ind_df"_a = 5.0,
      "One Gibbs sweep from a given state (mu, tau, theta, sigma), proposals not adapted (for "
      "Geweke tests): the collapsed move's random walk has its starting covariance times "
      "rw_scale^2 (rw_scale <= 0: the default 2.38^2 / dim), and the independence t_ind_df("
      "ind_mean, ind_chol ind_chol') is tried first when ind_mean is given. scale_gibbs=False "
      "skips the Gibbs steps of tau^2 and sigma^2 (the collapsed move and the (mu, theta) block "
      "alone). Returns (mu, tau, theta, sigma, accepted collapsed proposals).");

  m.def(
      "hier_normal_collapsed_log_lik",
      [](ConstVectorRef y, ConstVectorRef var_known, ConstIndexVectorRef group_start,
         double mu_mean, double mu_sd, const Vector& tau, const Vector& sigma) {
        const HierNormalData data = make_hier_normal_data(y, var_known, group_start);
        const HierNormalPrior prior = make_hn_prior(mu_mean, mu_sd, 0, 1, 1, 1, 1);
        check_size_match("hier_normal_collapsed_log_lik", "sigma", sigma.size(), "tau", tau.size());
        Vector out(tau.size());
        for (Index i = 0; i < tau.size(); ++i)
          out[i] = hier_normal_collapsed_log_lik(data, prior, tau[i] * tau[i], sigma[i] * sigma[i]);
        return out;
      },
      "y"_a.noconvert(), "var_known"_a.noconvert(), "group_start"_a.noconvert(), "mu_mean"_a,
      "mu_sd"_a, "tau"_a, "sigma"_a,
      "log p(y | tau, sigma) with mu and theta integrated out, up to a constant (sigma ignored "
      "with known variances).");

  m.def(
      "hier_normal_log_marginal_tau",
      [](ConstVectorRef y, ConstVectorRef var_known, ConstIndexVectorRef group_start,
         double mu_mean, double mu_sd, int tau_kind, double tau_a, double tau_b,
         const Vector& tau) {
        const HierNormalData data = make_hier_normal_data(y, var_known, group_start);
        const HierNormalPrior prior = make_hn_prior(mu_mean, mu_sd, tau_kind, tau_a, tau_b, 1, 1);
        Vector out(tau.size());
        for (Index i = 0; i < tau.size(); ++i)
          out[i] = hier_normal_log_marginal_tau(data, prior, tau[i]);
        return out;
      },
      "y"_a.noconvert(), "var_known"_a.noconvert(), "group_start"_a.noconvert(), "mu_mean"_a,
      "mu_sd"_a, "tau_kind"_a, "tau_a"_a, "tau_b"_a, "tau"_a,
      "log p(tau | y) up to a constant (known variances).");

  m.def(
      "scale_step_chain",
      [](int kind, double a, double b, double ss, double count, double start, std::int64_t n,
         std::uint64_t seed) {
        const steps::ScalePrior prior = steps::make_scale_prior(kind, a, b);
        Vector out(n);
        double v = start;
        for (Index i = 0; i < n; ++i) {
          rng::Rng rng(rng::ChainKey{seed, 0}, static_cast<std::uint64_t>(i), 0,
                       rng::Stream::Test);
          v = steps::draw_variance(prior, ss, count, v, rng);
          out[i] = v;
        }
        return out;
      },
      "kind"_a, "a"_a, "b"_a, "ss"_a, "count"_a, "start"_a, "n"_a, "seed"_a = 1,
      "n successive variance draws of the scale step at fixed ss (for tests).");

  m.def(
      "lmm_run",
      [](ConstRowMatrixRef x, ConstRowMatrixRef z, ConstVectorRef y, ConstVectorRef offset,
         ConstIndexVectorRef group_start, const Vector& beta_mean, const Matrix& beta_cov,
         double a0, double b0, const py::dict& cov_prior, std::int64_t draws, std::int64_t warmup,
         std::int64_t thin, int threads, bool keep_effects, std::uint64_t seed,
         std::uint64_t chain, const py::object& progress, bool collapsed,
         ConstVectorRef weights) {
        const LmmInputs inputs(x, z, y, offset, group_start, weights);
        const LmmPrior prior = make_lmm_prior(beta_mean, beta_cov, a0, b0, cov_prior);
        LmmConfig config;
        config.collapsed = collapsed;
        config.draws = draws;
        config.warmup = warmup;
        config.thin = thin;
        config.threads = threads;
        config.keep_effects = keep_effects;
        const RunControl control = make_run_control(progress);
        LmmResult r;
        {
          py::gil_scoped_release nogil;
          const LmmModel model = make_lmm_model(inputs.data, threads);
          r = run_lmm_chain(model, prior, config, rng::ChainKey{seed, chain}, control);
        }
        const Index kept = r.draws_done;
        py::dict out;
        out["beta"] = RowMatrix(r.beta.topRows(kept));
        out["cov"] = RowMatrix(r.cov.topRows(kept));
        out["sigma"] = Vector(r.sigma.head(kept));
        out["b"] = keep_effects ? RowMatrix(r.b.topRows(kept)) : RowMatrix();
        out["b_mean"] = r.b_mean;
        out["b_sd"] = r.b_sd;
        out["draws_done"] = r.draws_done;
        out["interrupted"] = r.interrupted;
        out["residual_fallbacks"] = r.residual_fallbacks;
        out["collapsed_acceptance"] = r.collapsed_accept;
        return out;
      },
      "x"_a.noconvert(), "z"_a.noconvert(), "y"_a.noconvert(), "offset"_a.noconvert(),
      "group_start"_a.noconvert(), "beta_mean"_a, "beta_cov"_a, "sigma2_shape"_a,
      "sigma2_scale"_a, "cov_prior"_a, "draws"_a, "warmup"_a, "thin"_a, "threads"_a,
      "keep_effects"_a, "seed"_a, "chain"_a, "progress"_a = py::none(), "collapsed"_a = true,
      "weights"_a.noconvert() = Vector(),
      "One chain of the linear mixed model Gibbs sampler (GIL released while sampling); "
      "weights: case weights (each row's log-likelihood times its weight), or empty.");

  m.def(
      "lmm_sweep",
      [](ConstRowMatrixRef x, ConstRowMatrixRef z, ConstVectorRef y, ConstVectorRef offset,
         ConstIndexVectorRef group_start, const Vector& beta_mean, const Matrix& beta_cov,
         double a0, double b0, const py::dict& cov_prior, const Vector& beta, const RowMatrix& b,
         const Matrix& cov, double sigma2, std::uint64_t seed, std::uint64_t chain,
         std::uint64_t iteration, int threads, bool collapsed) {
        const LmmInputs inputs(x, z, y, offset, group_start);
        const LmmPrior prior = make_lmm_prior(beta_mean, beta_cov, a0, b0, cov_prior);
        const LmmModel model = make_lmm_model(inputs.data, threads);
        check_lmm_prior(model, prior);
        check_size_match("lmm_sweep", "beta", beta.size(), "columns of X", model.p);
        check_size_match("lmm_sweep", "rows of b", b.rows(), "groups", model.m);
        check_size_match("lmm_sweep", "columns of b", b.cols(), "columns of Z", model.q);
        check_size_match("lmm_sweep", "Sigma", cov.rows(), "columns of Z", model.q);
        LmmState state{beta, b, cov, sigma2};
        LmmWorkspace ws(model, prior);
        LmmSweepArgs args;
        args.iteration = iteration;
        args.threads = resolve_threads(threads);
        args.collapsed = collapsed;
        lmm_sweep(model, prior, state, ws, rng::ChainKey{seed, chain}, args);
        return py::make_tuple(state.beta, state.b, state.cov, state.sigma2);
      },
      "x"_a.noconvert(), "z"_a.noconvert(), "y"_a.noconvert(), "offset"_a.noconvert(),
      "group_start"_a.noconvert(), "beta_mean"_a, "beta_cov"_a, "sigma2_shape"_a,
      "sigma2_scale"_a, "cov_prior"_a, "beta"_a, "b"_a, "cov"_a, "sigma2"_a, "seed"_a, "chain"_a,
      "iteration"_a, "threads"_a = 1, "collapsed"_a = true,
      "One sweep from a given state, proposals not adapted (for Geweke tests).");
}

}  // namespace bglmm::bindings
