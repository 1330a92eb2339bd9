"""Repeats: the same settings with several seeds, each an ordinary run in OUTPUT/seed-S, summarized as mean ± std.

One seed's accuracy is an anecdote: this turns "99.4%" into "99.41 ± 0.03% over 3 seeds". Each
run is a normal run folder (``evaluate``, ``compare`` and ``--resume auto`` work on it);
OUTPUT/summary.json and the printed table hold the per-seed numbers and their statistics.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mnist_ignite.config.settings import Config, _seed_list
from mnist_ignite.core.files import save_json
from mnist_ignite.core.resolve import resolve_output_dir, validate
from mnist_ignite.core.rundir import RunDir
from mnist_ignite.log import write_line
from mnist_ignite.plugins.api import Output

if TYPE_CHECKING:
    from mnist_ignite.core.launch import Outcome

__all__ = ["OUTPUTS", "SUMMARY", "run_repeats", "seeds_of", "summarize_seeds"]

SUMMARY = "summary.json"
# what a repeat writes into its parent folder (each seed-S folder is a run of its own)
OUTPUTS = (Output(SUMMARY, "mean, std, min and max over the seeds"),)


def seeds_of(config: Config) -> list[int]:
    """``--seeds 1,2,3`` as given, or ``--repeat N`` as ``--seed``, ``--seed + 1``, ..."""
    if config.seeds:
        return _seed_list(config.seeds) or []
    return [config.seed + i for i in range(config.repeat or 1)]


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def summarize_seeds(per_seed: list[dict[str, Any]], target: float | None) -> dict[str, Any]:
    """Statistics over the seeds' results.json rows."""
    summary: dict[str, Any] = {"seeds": [r["seed"] for r in per_seed], "runs": per_seed}
    for key in ("final_test_acc", "best_test_acc", "total_seconds"):
        summary[key] = _stats([r[key] for r in per_seed if r.get(key) is not None])
    if target is not None:
        reached = [r["target_reached_seconds"] for r in per_seed if r.get("target_reached_epoch") is not None]
        summary["target"] = {
            "target_acc": target,
            "reached": len(reached),
            "of": len(per_seed),
            "median_seconds": statistics.median(reached) if reached else None,
        }
    return summary


def _table(summary: dict[str, Any]) -> str:
    lines = [f"{'seed':>6}  {'final %':>8}  {'best %':>8}  {'epochs':>6}  {'seconds':>8}  folder"]
    for r in summary["runs"]:
        lines.append(
            f"{r['seed']:>6}  {r['final_test_acc']:8.2f}  {r['best_test_acc']:8.2f}  {r['epochs']:>6}  "
            f"{r['total_seconds']:8.1f}  {r['folder']}"
        )
    for key, label in (("final_test_acc", "final"), ("best_test_acc", "best")):
        s = summary[key]
        if s["mean"] is not None:
            lines.append(
                f"{label} test accuracy: {s['mean']:.2f} ± {s['std']:.2f}% (min {s['min']:.2f}, max {s['max']:.2f}) "
                f"over {len(summary['runs'])} seed(s)"
            )
    if "target" in summary:
        t = summary["target"]
        median = f", median {t['median_seconds']:.1f} s" if t["median_seconds"] is not None else ""
        lines.append(f"target {t['target_acc']:g}%: reached by {t['reached']} of {t['of']} seed(s){median}")
    return "\n".join(lines)


def run_repeats(
    config: Config, plugins: Sequence[Any], run_one: Callable[[Config, Sequence[Any]], Outcome]
) -> dict[str, Any]:
    """Train ``config`` once per seed with ``run_one``, each in OUTPUT/seed-S; OUTPUT/summary.json and a table.

    Returns the summary; ``summary["last_rows"]`` holds the last seed's epoch rows (not written to the file).
    """
    validate(config)
    parent = RunDir(resolve_output_dir(config), resume=bool(config.resume), overwrite=config.overwrite, outputs=OUTPUTS)
    folder = parent.claim()
    per_seed: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    try:
        for seed in seeds_of(config):
            child = dataclasses.replace(
                config, seed=seed, repeat=None, seeds=None, output_dir=str(folder / f"seed-{seed}")
            )
            write_line(f"== seed {seed}: {child.output_dir}")
            outcome = run_one(child, plugins)
            rows = outcome.rows
            per_seed.append({"seed": seed, "folder": child.output_dir, **(outcome.results or {})})
            summary = summarize_seeds(per_seed, config.target_acc)
            save_json(folder / SUMMARY, summary)  # after every seed: a stopped repeat keeps what it has
    finally:
        parent.release(started=bool(per_seed))
    write_line(_table(summary))
    return {**summary, "last_rows": rows}
