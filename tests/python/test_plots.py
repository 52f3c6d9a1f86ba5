"""plot_trace, plot_forest and plot_ppc render to non-empty PNG files (Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import bglmm  # noqa: E402


@pytest.fixture(scope="module")
def fit():
    return bglmm.fit("weight ~ center(day) + (1 + center(day) | rat)", bglmm.datasets.load("rats"),
                     seed=3, chains=2, draws=100, warmup=100, threads=1, progress=False,
                     check=False)


def _save(axes, path):
    fig = np.ravel(axes)[0].figure
    fig.savefig(path)
    plt.close(fig)
    return path.stat().st_size


def test_plot_trace(fit, tmp_path):
    axes = fit.plot_trace()
    # one row per summary variable (compact): beta, 2 SDs, the correlation, sigma
    assert np.shape(axes) == (5, 2)
    assert _save(axes, tmp_path / "trace.png") > 1000


def test_plot_forest(fit, tmp_path):
    assert _save(fit.plot_forest(), tmp_path / "forest.png") > 1000
    assert _save(fit.plot_forest([next(k for k in fit.posterior if k.startswith("b_"))]), tmp_path / "forest_b.png") > 1000
    with pytest.raises(ValueError, match="unknown variable"):
        fit.plot_forest(["nope"])


def test_plot_ppc(fit, tmp_path):
    assert _save(fit.plot_ppc(num_pp_samples=20), tmp_path / "ppc.png") > 1000


def test_plot_ppc_counts(tmp_path):
    f = bglmm.fit("fledged ~ age", bglmm.datasets.load("sparrows"), "poisson", seed=1,
                  chains=1, draws=100, warmup=100, progress=False, check=False)
    assert _save(f.plot_ppc(num_pp_samples=10), tmp_path / "ppc_counts.png") > 1000
