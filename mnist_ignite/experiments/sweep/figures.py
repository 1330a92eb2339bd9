"""A sweep's figures, drawn for reading rather than with Optuna's matplotlib defaults.

Optuna's plots name the axes in its own words ("Objective Value"), put fractional trial ticks
(0.25, 0.50) under a few trials, and colour the parallel-coordinate lines with a map whose worst
end is white on a grey background (that trial vanishes). These draw the same three views with the
sweep's objective in the user's words, integer trial ticks, and every trial in a colour that
stands out from the white background. Each returns a ``Figure`` (object API, no pyplot state).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.trial import FrozenTrial, TrialState

from mnist_ignite.config.settings import short_value
from mnist_ignite.experiments.sweep.space import Param, SweepSpec
from mnist_ignite.reporting.figures import new_figure

__all__ = ["TRIAL_COLORS", "history_figure", "importance_figure", "objective_label", "parallel_figure"]

# viridis from purple to green, without its pale end: every trial's line keeps 2.5:1 contrast on white
TRIAL_COLORS = ListedColormap(colormaps["viridis"]([i / 255 * 0.65 for i in range(256)]), name="trials")


def objective_label(spec: SweepSpec) -> str:
    """The sweep's objective as an axis names it."""
    if spec.objective == "time":
        return f"seconds to {short_value(spec.target)}% test accuracy"
    return f"{spec.objective} test accuracy (%)"


def _finite(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)]


def history_figure(trials: Sequence[FrozenTrial], spec: SweepSpec) -> Figure:
    """Each trial's value by trial number, the best so far as a step line; pruned trials hollow, at their last epoch."""
    fig = new_figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    done = _finite(trials)
    minimize = spec.direction == "minimize"
    ax.plot([t.number for t in done], [t.value for t in done], "o", color="tab:blue", label="trial")
    if spec.objective != "time":  # a pruned trial's last report is on the objective's scale
        pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
        values = [t.intermediate_values[max(t.intermediate_values)] for t in pruned]
        ax.plot([t.number for t in pruned], values, "o", mfc="none", color="tab:gray", label="pruned (last epoch)")
    best, steps = None, []
    for t in done:
        best = t.value if best is None else (min if minimize else max)(best, t.value)
        steps.append(best)
    if done:
        ax.step([t.number for t in done], steps, where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective_label(spec))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.grid(alpha=0.3)
    numbers = [t.number for t in trials]
    if len(set(numbers)) <= 1:  # autoscaling around one trial would put fractional ticks under it
        ax.set_xlim(min(numbers, default=0) - 1, max(numbers, default=0) + 1)
    ax.legend(loc="best")
    counts = {s: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    ax.set_title(
        f"{spec.name}: {counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed"
    )
    return fig


def _position(param: Param, value: Any) -> float:
    """Where a parameter's value sits on its axis, 0 (low or first choice) to 1."""
    if param.kind == "categorical":
        choices = list(param.choices)
        return choices.index(value) / max(len(choices) - 1, 1) if value in choices else 0.5
    low, high = float(param.low), float(param.high)
    if param.log:
        low, high, value = math.log(low), math.log(high), math.log(float(value))
    return 0.5 if high == low else (float(value) - low) / (high - low)


def _axis_ticks(param: Param) -> list[tuple[float, str]]:
    if param.kind == "categorical":
        return [(_position(param, c), short_value(c)) for c in param.choices]
    return [(0.0, short_value(param.low)), (1.0, short_value(param.high))]


def parallel_figure(trials: Sequence[FrozenTrial], spec: SweepSpec) -> Figure:
    """One vertical axis per parameter and one for the objective; each completed trial a line coloured by its value."""
    done = _finite(trials)
    params = [p for p in spec.params if any(p.name in t.params for t in done)]
    fig = new_figure(figsize=(max(6.0, 2.2 * (len(params) + 1)), 5.5), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    values = [t.value for t in done]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high == low:
        low, high = low - 0.5, high + 0.5
    norm = Normalize(low, high)
    # better trials drawn last, on top of the worse ones
    order = sorted(done, key=lambda t: t.value, reverse=spec.direction == "minimize")
    for t in order:
        ys = [_position(p, t.params[p.name]) if p.name in t.params else math.nan for p in params]
        ys.append(norm(t.value))
        ax.plot(range(len(ys)), ys, "-o", color=TRIAL_COLORS(norm(t.value)), linewidth=1.5, markersize=4)
    names = [p.name for p in params] + [objective_label(spec)]
    for i, param in enumerate(params):
        ax.axvline(i, color="0.6", linewidth=1, zorder=0)
        for y, text in _axis_ticks(param):
            ax.annotate(text, (i, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize="small")
    ax.axvline(len(params), color="0.6", linewidth=1, zorder=0)
    ax.set_xticks(range(len(names)), names)
    ax.set_xlim(-0.3, len(names) - 0.4)
    ax.set_ylim(-0.05, 1.05)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    colorbar = fig.colorbar(ScalarMappable(norm=norm, cmap=TRIAL_COLORS), ax=ax)
    colorbar.set_label(objective_label(spec))
    ax.set_title(f"{spec.name}: {len(done)} completed trials, each a line (its parameters, then its value)")
    return fig


def importance_figure(importances: Mapping[str, float], spec: SweepSpec) -> Figure:
    """How much each parameter moves the objective (Optuna's PED-ANOVA importances), largest on top."""
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig = new_figure(figsize=(9, 1.5 + 0.5 * len(items)), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    bars = ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.2f}" for _, v in items], padding=3)
    ax.set_xlabel(f"importance for {objective_label(spec)} (shares sum to 1)")
    ax.set_xlim(0, max([v for _, v in items], default=1.0) * 1.15 or 1.0)
    ax.set_title(f"{spec.name}: which parameters matter")
    ax.grid(axis="x", alpha=0.3)
    return fig
