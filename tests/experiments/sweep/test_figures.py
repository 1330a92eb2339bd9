"""The sweep's figures, rendered: the objective in the user's words, integer trial ticks, every trial visible."""

from __future__ import annotations

import matplotlib
import optuna
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from mnist_ignite.experiments.sweep.figures import (
    history_figure,
    importance_figure,
    objective_label,
    parallel_figure,
)
from mnist_ignite.experiments.sweep.space import Param, SweepSpec

PARAMS = [Param("lr", "float", 1e-3, 1e-1, log=True), Param("optimizer", "categorical", choices=("sgd", "adam"))]
DISTRIBUTIONS = {"lr": FloatDistribution(1e-3, 1e-1, log=True), "optimizer": CategoricalDistribution(("sgd", "adam"))}


def spec(objective: str = "best") -> SweepSpec:
    return SweepSpec("sweep.toml", "lr-search", "sweeps/lr", objective=objective, target=98.0, params=PARAMS)


def trials() -> list[optuna.trial.FrozenTrial]:
    made = [
        create_trial(value=v, params={"lr": lr, "optimizer": o}, distributions=DISTRIBUTIONS)
        for v, lr, o in ((91.0, 0.01, "sgd"), (97.5, 0.05, "adam"), (11.35, 0.1, "sgd"))  # the last diverged
    ]
    made.append(
        create_trial(
            state=TrialState.PRUNED,
            params={"lr": 0.002, "optimizer": "sgd"},
            distributions=DISTRIBUTIONS,
            intermediate_values={1: 40.0, 2: 52.0},
        )
    )
    for number, trial in enumerate(made):
        trial.number = number
    return made


def drawn(fig: matplotlib.figure.Figure) -> matplotlib.figure.Figure:
    FigureCanvasAgg(fig).draw()
    return fig


def luminance(color: object) -> float:
    """WCAG relative luminance."""
    channels = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(color)]
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def contrast(a: object, b: object) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize(
    ("objective", "label"),
    [
        ("best", "best test accuracy (%)"),
        ("final", "final test accuracy (%)"),
        ("time", "seconds to 98% test accuracy"),
    ],
)
def test_the_objective_is_named_in_the_users_words(objective: str, label: str) -> None:
    assert objective_label(spec(objective)) == label


def test_the_history_has_integer_trial_ticks_the_best_so_far_and_the_pruned_trial() -> None:
    fig = drawn(history_figure(trials(), spec()))
    (ax,) = fig.axes
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert ax.get_xlabel() == "trial" and ax.get_ylabel() == "best test accuracy (%)"
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["best so far"].get_ydata()) == [91.0, 97.5, 97.5]
    assert list(lines["pruned (last epoch)"].get_ydata()) == [52.0]
    assert "3 complete, 1 pruned, 0 failed" in ax.get_title()


def test_one_trial_still_gets_integer_ticks() -> None:
    (ax,) = drawn(history_figure(trials()[:1], spec())).axes
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_every_trial_of_the_parallel_plot_stands_out_from_the_background() -> None:
    fig = drawn(parallel_figure(trials(), spec()))
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 3]  # lr, optimizer, the objective
    assert len(lines) == 3  # the completed trials; the worst (diverged) one included
    for line in lines:
        assert contrast(line.get_color(), ax.get_facecolor()) >= 2.5
        assert contrast(line.get_color(), fig.get_facecolor()) >= 2.5
    assert [t.get_text() for t in ax.get_xticklabels()] == ["lr", "optimizer", "best test accuracy (%)"]
    assert fig.axes[1].get_ylabel() == "best test accuracy (%)"  # the colour bar
    texts = {t.get_text() for t in ax.texts}
    assert {"0.001", "0.1", "sgd", "adam"} <= texts


def test_importances_are_labelled_largest_on_top() -> None:
    (ax,) = drawn(importance_figure({"lr": 0.8, "optimizer": 0.2}, spec())).axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["optimizer", "lr"]
    assert ax.get_xlabel().startswith("importance for best test accuracy (%)")
