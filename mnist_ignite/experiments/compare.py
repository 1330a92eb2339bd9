"""Runs side by side: read run folders (as they are written), group repeats, find the settings that differ.

A RUN_DIR is a run folder (it holds ``metrics.json``) or a folder of run folders, one level
down (``--repeat`` parents, sweep folders). A folder whose runs differ only in their seed is a
group: one line, its mean with a ± std band, one table row of mean ± std. Runs of other folders
(a sweep's trials) each get their own line. Runs still training are read as they are
(``metrics.json`` is replaced whole after each epoch); a run with no readable ``metrics.json`` yet
is skipped with a note. ``mnist-ignite compare`` is the face.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator

from mnist_ignite.config.settings import Config, flat_settings, short_value
from mnist_ignite.reporting.figures import new_figure

__all__ = [
    "Entry",
    "Run",
    "collect",
    "compare_figure",
    "differing_settings",
    "display_row",
    "label_entries",
    "load_run",
    "summarize",
    "table_csv",
    "table_markdown",
]

# settings that say where a run lives or how it started, not what it trained
IGNORED_SETTINGS = {
    "output_dir",
    "data_dir",
    "resume",
    "resume_force",
    "overwrite",
    "download",
    "log_every",
    "trust_code",
    "device",  # where it ran, not what it trained
    "num_workers",
    "eval_batch_size",
}
# settings that a folder of runs may vary and still be repeats of one configuration
REPEAT_SETTINGS = {"seed"}


@dataclass
class Run:
    """One run folder as it is now: its settings (flat) and its per-epoch rows."""

    name: str
    path: Path
    settings: dict[str, Any]
    rows: list[dict[str, Any]]
    done: bool  # final_model.pt written


@dataclass
class Entry:
    """One line of the figure and one row of the table: a run, or a group of repeats."""

    name: str
    runs: list[Run]
    group: bool = False
    label: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # those all its runs share


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    """config.json as one flat mapping, without the settings that do not change what a run trains."""
    return {k: v for k, v in flat_settings(config).items() if k not in IGNORED_SETTINGS}


def _is_run(path: Path) -> bool:
    return (path / "metrics.json").exists() or (path / "config.json").exists()


def load_run(path: Path, name: str) -> tuple[Run | None, str]:
    """The run in ``path``, or None and why it is skipped."""
    try:
        rows = json.loads((path / "metrics.json").read_text())
    except FileNotFoundError:
        return None, f"{name}: no metrics.json yet (no epoch finished)"
    except (OSError, ValueError) as err:  # half a file, from something other than an atomic writer
        return None, f"{name}: metrics.json unreadable ({type(err).__name__}); still being written?"
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) and "test_acc" in r for r in rows):
        return None, f"{name}: metrics.json holds no epoch rows"
    problem = _row_problem(rows)
    if problem:
        return None, f"{name}: metrics.json is not a run's ({problem})"
    try:
        config = json.loads((path / "config.json").read_text())
    except FileNotFoundError:
        config = {}
    except (OSError, ValueError) as err:
        return None, f"{name}: config.json unreadable ({type(err).__name__})"
    if not isinstance(config, dict):
        return None, f"{name}: config.json is not a run's settings (a JSON {type(config).__name__})"
    # a setting newer than the run's config.json: the run had what is now its default
    settings = _defaults() | _flat(config)
    return Run(name, path, settings, rows, (path / "final_model.pt").is_file()), ""


# what every epoch row must hold, as numbers, for the table and the figure
ROW_NUMBERS = ("test_acc", "train_loss", "test_loss", "train_seconds", "train_images_per_second")


def _row_problem(rows: Sequence[dict[str, Any]]) -> str:
    """What makes these epoch rows unusable ('' when nothing does)."""
    for i, row in enumerate(rows, 1):
        if not isinstance(row.get("epoch"), int) or isinstance(row.get("epoch"), bool):
            return f"row {i}: epoch {row.get('epoch')!r} is not a whole number"
        for key in ROW_NUMBERS:
            value = row.get(key)
            if key not in row:
                return f"row {i}: no {key}"
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"row {i}: {key} {value!r} is not a number"
    return ""


@functools.cache
def _defaults() -> dict[str, Any]:
    return _flat(Config().to_dict())


def _repeats(runs: Sequence[Run]) -> bool:
    """Runs of one configuration: their settings differ at most in the seed."""
    keys = set().union(*(r.settings for r in runs)) - REPEAT_SETTINGS
    return all(len({json.dumps(r.settings.get(k)) for r in runs}) == 1 for k in keys)


def collect(paths: Sequence[Path]) -> tuple[list[Entry], list[str]]:
    """Entries for ``paths`` (runs, groups of repeats, a sweep's runs) and notes on what was skipped."""
    entries: list[Entry] = []
    notes: list[str] = []
    seen: set[Path] = set()  # a run named twice (itself and inside its parent folder) is shown once
    for path in paths:
        if _is_run(path):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            run, note = load_run(path, path.name)
            entries += [Entry(run.name, [run])] if run else []
            notes += [note] if note else []
            continue
        children = sorted(p for p in path.iterdir() if p.is_dir() and _is_run(p)) if path.is_dir() else []
        if not children:
            notes.append(f"{path}: neither a run folder nor a folder of run folders")
            continue
        children = [c for c in children if c.resolve() not in seen]
        seen.update(c.resolve() for c in children)
        runs = []
        for child in children:
            run, note = load_run(child, f"{path.name}/{child.name}")
            runs += [run] if run else []
            notes += [note] if note else []
        if len(runs) > 1 and _repeats(runs):
            entries.append(Entry(path.name, runs, group=True))
        else:  # a sweep: each trial is its own run
            entries += [Entry(r.name, [r]) for r in runs]
    return entries, notes


def differing_settings(entries: Sequence[Entry]) -> list[str]:
    """The setting names whose values differ between entries; sets each ``entry.settings`` to what its runs share."""
    for entry in entries:
        shared = dict(entry.runs[0].settings)
        for run in entry.runs[1:]:
            shared = {k: v for k, v in shared.items() if run.settings.get(k) == v}
        entry.settings = shared
    keys = sorted(set().union(*(e.settings for e in entries))) if entries else []
    # the planned epochs: the table's "epochs run" and each line's length already say them
    return [k for k in keys if k != "epochs" and len({json.dumps(e.settings.get(k)) for e in entries}) > 1]


def _setting(entry: Entry, key: str) -> str:
    """An entry's value of a setting; a group's varying one (the seed) as its list of values."""
    if key in entry.settings:
        return str(entry.settings[key])
    values = {r.settings.get(key) for r in entry.runs if key in r.settings}
    return ",".join(sorted(map(str, values))) if values else DEFAULT


DEFAULT = "default"  # a model argument a run did not set: the model's own default


def short_key(key: str) -> str:
    """A setting's name as a legend shows it: ``model_args.width`` -> ``width``."""
    return key.removeprefix("model_args.")


def short_setting(value: Any) -> str:
    """A value as a legend shows it: a model file's path by its file name (``/a/b/net.py:Net`` -> ``net.py:Net``)."""
    if isinstance(value, str) and "/" in value:
        path, sep, name = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
        return f"{Path(path).name}{sep}{name}"
    return short_value(value)


def label_entries(entries: Sequence[Entry], keys: Sequence[str]) -> None:
    """Legend labels: the differing settings, short, when they tell the entries apart; else the names."""

    def value(entry: Entry, key: str) -> str | None:
        if key in entry.settings:
            return short_setting(entry.settings[key])
        varies = any(key in r.settings for r in entry.runs)  # a group's seed: its band says so
        return None if varies else DEFAULT

    by_settings = [", ".join(f"{short_key(k)}={v}" for k in keys if (v := value(e, k)) is not None) for e in entries]
    unique = bool(keys) and len(set(by_settings)) == len(entries)
    for entry, settings in zip(entries, by_settings, strict=True):
        base = settings if unique else entry.name
        entry.label = f"{base} (mean ± std of {len(entry.runs)})" if entry.group else base


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(entry: Entry, keys: Sequence[str]) -> dict[str, Any]:
    """The table row of an entry: means (and std) over its runs, and its differing settings."""
    finals = [r.rows[-1]["test_acc"] for r in entry.runs]
    bests = [max(row["test_acc"] for row in r.rows) for r in entry.runs]
    seconds = [sum(row["train_seconds"] for row in r.rows) for r in entry.runs]
    images = sum(row["train_images_per_second"] * row["train_seconds"] for r in entry.runs for row in r.rows)
    epochs = [len(r.rows) for r in entry.runs]
    planned = [r.settings.get("epochs") for r in entry.runs]
    row: dict[str, Any] = {"run": entry.name, "runs": len(entry.runs)}
    row["final_test_acc"], row["final_test_acc_std"] = _mean_std(finals)
    row["best_test_acc"], row["best_test_acc_std"] = _mean_std(bests)
    row["epochs_run"] = statistics.fmean(epochs)
    row["train_seconds"] = statistics.fmean(seconds)
    row["images_per_second"] = images / max(sum(seconds), 1e-9)
    running = [r for r, p in zip(entry.runs, planned, strict=True) if not r.done and (p is None or len(r.rows) < p)]
    row["status"] = "done" if not running else f"{len(running)} unfinished" if entry.group else "unfinished"
    row.update({k: entry.settings[k] if k in entry.settings else _setting(entry, k) for k in keys})
    return row


def _number(value: float, std: float | None = None, digits: int = 2) -> str:
    text = f"{value:.{digits}f}"
    return f"{text} ± {std:.{digits}f}" if std is not None else text


def display_row(row: dict[str, Any], group: bool, keys: Sequence[str]) -> dict[str, str]:
    shown = {
        "run": str(row["run"]),
        "runs": str(row["runs"]),
        "final test acc (%)": _number(row["final_test_acc"], row["final_test_acc_std"] if group else None),
        "best test acc (%)": _number(row["best_test_acc"], row["best_test_acc_std"] if group else None),
        "epochs run": f"{row['epochs_run']:g}",
        "train time (s)": _number(row["train_seconds"], digits=1),
        "images/s": f"{row['images_per_second']:,.0f}",
        "status": row["status"],
    }
    return shown | {k: short_setting(row[k]) if row[k] is not None else DEFAULT for k in keys}


def table_markdown(shown: Sequence[dict[str, str]]) -> str:
    """A GitHub-style table, columns padded so it reads in a terminal too."""
    if not shown:
        return ""
    columns = list(shown[0])
    width = {c: max(len(c), *(len(r[c]) for r in shown)) for c in columns}

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width[c]) for c, cell in zip(columns, cells, strict=True)) + " |"

    rows = [line(columns), line(["-" * width[c] for c in columns])]
    rows += [line([r[c] for c in columns]) for r in shown]
    return "\n".join(rows) + "\n"


def table_csv(rows: Sequence[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()})
    return buf.getvalue().encode()


PANELS = (("test_acc", "Test accuracy (%)"), ("train_loss", "Training loss"), ("test_loss", "Test loss"))


def compare_figure(entries: Sequence[Entry]) -> Figure:
    """Test accuracy, training loss and test loss per epoch; a group is its mean with a ± std band.

    The legend sits below the panels, outside every axes, so it never hides a line's last point.
    """
    widest = max((len(e.label) for e in entries), default=0)
    columns = max(1, min(LEGEND_COLUMNS, len(entries), LEGEND_CHARACTERS // max(widest + 6, 1)))
    rows = -(-len(entries) // columns) if entries else 0
    fig = new_figure(figsize=(16, 4.8 + 0.3 * rows), layout="constrained")
    axes = fig.subplots(1, len(PANELS))
    many_epochs = max((len(r.rows) for e in entries for r in e.runs), default=0) >= 30
    for i, entry in enumerate(entries):
        color = f"C{i % 10}"
        for ax, (key, _) in zip(axes, PANELS, strict=True):
            by_epoch: dict[int, list[float]] = {}
            for run in entry.runs:
                for row in run.rows:
                    by_epoch.setdefault(int(row["epoch"]), []).append(float(row[key]))
            epochs = sorted(by_epoch)
            stats = [_mean_std(by_epoch[e]) for e in epochs]
            means = [m for m, _ in stats]
            ax.plot(epochs, means, color=color, marker=None if many_epochs else "o", label=entry.label)
            if entry.group:
                ax.fill_between(
                    epochs, [m - s for m, s in stats], [m + s for m, s in stats], color=color, alpha=0.2, linewidth=0
                )
    for ax, (key, title) in zip(axes, PANELS, strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        low, high = ax.get_ylim()
        if key.endswith("loss") and low > 0 and high / low > 10:  # losses falling by decades
            ax.set_yscale("log")
            ax.yaxis.set_minor_locator(LogLocator(subs=(2, 3, 5)))
            for axis_format in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
                axis_format(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.2, not 2 x 10^-1
    if entries:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=columns)
    return fig


LEGEND_COLUMNS = 3
LEGEND_CHARACTERS = 180  # about what one legend row holds across the 16-inch figure, in small print
