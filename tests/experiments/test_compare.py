"""Comparing run folders: what is skipped and why, repeats grouped, the settings that differ, the table and figure."""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection

from mnist_ignite.experiments.compare import (
    Entry,
    collect,
    compare_figure,
    differing_settings,
    display_row,
    label_entries,
    load_run,
    summarize,
    table_csv,
    table_markdown,
)
from mnist_ignite.testing import run_plugin


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real two-epoch run folder (config.json, metrics.json, final_model.pt), copied and edited below."""
    return run_plugin(handlers=["history"], epochs=2, output_dir=tmp_path_factory.mktemp("compare") / "run").output_dir


def variant(run: Path, dest: Path, accs: list[float] | None = None, done: bool = True, **settings: Any) -> Path:
    """A copy of ``run`` with other settings, other test accuracies (and as many epochs), or no final model yet."""
    shutil.copytree(run, dest)
    config = json.loads((dest / "config.json").read_text())
    (dest / "config.json").write_text(json.dumps(config | settings))
    if accs is not None:
        rows = json.loads((dest / "metrics.json").read_text())
        rows = [rows[min(i, len(rows) - 1)] | {"epoch": i + 1, "test_acc": acc} for i, acc in enumerate(accs)]
        (dest / "metrics.json").write_text(json.dumps(rows))
    if not done:
        (dest / "final_model.pt").unlink()
    return dest


@pytest.mark.parametrize(
    ("metrics", "why"),
    [
        (None, "x: no metrics.json yet (no epoch finished)"),
        ('[{"epoch": 1, "test_a', "x: metrics.json unreadable (JSONDecodeError); still being written?"),
        ("[]", "x: metrics.json holds no epoch rows"),
        ('{"epoch": 1, "test_acc": 9.0}', "x: metrics.json holds no epoch rows"),
        ('[{"epoch": 1}]', "x: metrics.json holds no epoch rows"),
    ],
)
def test_a_run_without_readable_epochs_is_skipped_with_why(metrics: str | None, why: str, tmp_path: Path) -> None:
    """A run still starting or mid-write is a note, never a crash."""
    if metrics is not None:
        (tmp_path / "metrics.json").write_text(metrics)
    assert load_run(tmp_path, "x") == (None, why)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda rows, config: [r.pop("train_seconds") for r in rows], "row 1: no train_seconds"),
        (lambda rows, config: rows[0].update(test_acc="high"), "row 1: test_acc 'high' is not a number"),
        (lambda rows, config: rows[1].update(epoch="two"), "row 2: epoch 'two' is not a whole number"),
    ],
)
def test_a_malformed_metrics_json_is_skipped_with_a_note(run: Path, tmp_path: Path, change: Any, why: str) -> None:
    """compare reads folders people edit by hand: a bad row is a note naming it, never a traceback."""
    bad = variant(run, tmp_path / "bad")
    rows = json.loads((bad / "metrics.json").read_text())
    change(rows, None)
    (bad / "metrics.json").write_text(json.dumps(rows))
    assert load_run(bad, "bad") == (None, f"bad: metrics.json is not a run's ({why})")
    entries, notes = collect([run, bad])
    assert [e.name for e in entries] == ["run"] and notes == [f"bad: metrics.json is not a run's ({why})"]


def test_a_config_json_that_is_not_a_runs_settings_is_skipped_with_a_note(run: Path, tmp_path: Path) -> None:
    bad = variant(run, tmp_path / "bad")
    (bad / "config.json").write_text("[1, 2, 3]")
    assert load_run(bad, "bad") == (None, "bad: config.json is not a run's settings (a JSON list)")


def test_a_run_is_read_as_it_is(run: Path, tmp_path: Path) -> None:
    """Its rows, whether it finished, and only the settings that say what it trained (not where it lives)."""
    loaded, note = load_run(run, "run")
    assert note == "" and loaded is not None and loaded.done
    assert loaded.rows == json.loads((run / "metrics.json").read_text())
    assert loaded.settings["model"] == "mnist_ignite.testing:TinyNet" and loaded.settings["epochs"] == 2
    assert not {"output_dir", "data_dir", "download"} & set(loaded.settings)
    running, _ = load_run(variant(run, tmp_path / "running", done=False), "running")
    assert running is not None and not running.done


def test_collect_groups_repeats_and_lists_a_sweeps_runs_once(run: Path, tmp_path: Path) -> None:
    for seed in (1, 2):
        variant(run, tmp_path / "repeats" / f"seed-{seed}", seed=seed)
    for lr in (0.01, 0.05):
        variant(run, tmp_path / "sweep" / f"lr{lr}", lr=lr)
    (tmp_path / "empty").mkdir()
    paths = [tmp_path / "repeats", tmp_path / "sweep" / "lr0.01", tmp_path / "sweep", tmp_path / "empty"]
    entries, notes = collect(paths)
    assert [(e.name, e.group, len(e.runs)) for e in entries] == [
        ("repeats", True, 2),  # differ in the seed only: one configuration
        ("lr0.01", False, 1),
        ("sweep/lr0.05", False, 1),  # lr0.01 was named on its own already
    ]
    assert notes == [f"{tmp_path / 'empty'}: neither a run folder nor a folder of run folders"]


def test_differing_settings_and_labels(run: Path, tmp_path: Path) -> None:
    """Only what differs labels the lines; a group's varying seed is a setting that differs, shown as its list."""
    a = variant(run, tmp_path / "a", lr=0.05)
    for seed in (1, 2):
        variant(run, tmp_path / "reps" / f"seed-{seed}", seed=seed)
    entries, _ = collect([a, tmp_path / "reps"])
    keys = differing_settings(entries)
    assert keys == ["lr", "seed"]
    assert "seed" not in entries[1].settings and entries[1].settings["lr"] == 0.01
    label_entries(entries, keys)
    assert [e.label for e in entries] == ["lr=0.05, seed=1", "lr=0.01 (mean ± std of 2)"]
    twins, _ = collect([run, variant(run, tmp_path / "twin")])
    label_entries(twins, differing_settings(twins))  # nothing differs: the names tell them apart
    assert [e.label for e in twins] == ["run", "twin"]


def test_summarize_means_over_a_group_and_who_is_unfinished(run: Path, tmp_path: Path) -> None:
    variant(run, tmp_path / "reps" / "seed-1", [50.0, 60.0], seed=1)
    variant(run, tmp_path / "reps" / "seed-2", [70.0], done=False, seed=2)  # 1 of 2 epochs so far
    (entry,), _ = collect([tmp_path / "reps"])
    row = summarize(entry, [*differing_settings([entry]), "seed"])
    rows = [r.rows for r in entry.runs]
    assert row["run"] == "reps" and row["runs"] == 2 and row["seed"] == "1,2"
    assert (row["final_test_acc"], row["final_test_acc_std"]) == (65.0, pytest.approx(statistics.stdev([60, 70])))
    assert (row["best_test_acc"], row["epochs_run"]) == (65.0, 1.5)
    seconds = [sum(r["train_seconds"] for r in rs) for rs in rows]
    images = sum(r["train_images_per_second"] * r["train_seconds"] for rs in rows for r in rs)
    assert row["train_seconds"] == pytest.approx(statistics.fmean(seconds))
    assert row["images_per_second"] == pytest.approx(images / sum(seconds))
    assert row["status"] == "1 unfinished"
    assert summarize(Entry("one", entry.runs[:1]), [])["status"] == "done"
    assert summarize(Entry("two", entry.runs[1:]), [])["status"] == "unfinished"
    every_epoch, _ = load_run(variant(run, tmp_path / "all-epochs", done=False), "all-epochs")
    assert every_epoch is not None and summarize(Entry("all", [every_epoch]), [])["status"] == "done"  # no model file


def test_float_settings_are_shortened_in_the_table_not_in_the_csv() -> None:
    row = {"run": "a", "runs": 1, "final_test_acc": 90.0, "best_test_acc": 91.0, "epochs_run": 2.0,
           "train_seconds": 3.0, "images_per_second": 100.0, "status": "done", "lr": 0.006824078427098834}  # fmt: skip
    assert display_row(row, False, ["lr"])["lr"] == "0.006824"
    assert row["lr"] == 0.006824078427098834


def test_tables_are_padded_markdown_and_csv_of_the_numbers() -> None:
    rows = [
        {"run": "a", "runs": 1, "final_test_acc": 98.123456789, "final_test_acc_std": 0.0, "best_test_acc": 98.5,
         "best_test_acc_std": 0.0, "epochs_run": 2.0, "train_seconds": 3.25, "images_per_second": 12345.6,
         "status": "done"},
        {"run": "a-longer-name", "runs": 3, "final_test_acc": 97.0, "final_test_acc_std": 0.25, "best_test_acc": 97.5,
         "best_test_acc_std": 0.125, "epochs_run": 1.5, "train_seconds": 10.0, "images_per_second": 99.0,
         "status": "1 unfinished"},
    ]  # fmt: skip
    shown = [display_row(rows[0], False, []), display_row(rows[1], True, [])]
    assert shown[0]["final test acc (%)"] == "98.12" and shown[1]["final test acc (%)"] == "97.00 ± 0.25"
    assert shown[0]["images/s"] == "12,346" and shown[1]["epochs run"] == "1.5"
    header, rule, *body = table_markdown(shown).splitlines()
    assert len({len(line) for line in (header, rule, *body)}) == 1  # every column padded to one width
    assert set(rule) <= {"|", "-", " "} and body[1].startswith("| a-longer-name | 3    | 97.00 ± 0.25 ")
    assert table_markdown([]) == ""
    table = list(csv.DictReader(io.StringIO(table_csv(rows).decode())))
    assert table[0]["final_test_acc"] == "98.123457" and table[1]["status"] == "1 unfinished"


def test_the_figure_draws_a_line_per_entry_and_a_band_per_group(run: Path, tmp_path: Path) -> None:
    single = variant(run, tmp_path / "single", [40.0, 50.0], lr=0.05)
    variant(run, tmp_path / "reps" / "seed-1", [60.0, 80.0], seed=1)
    variant(run, tmp_path / "reps" / "seed-2", [70.0, 90.0], seed=2)
    entries, _ = collect([single, tmp_path / "reps"])
    label_entries(entries, differing_settings(entries))
    accuracy, train_loss, test_loss = compare_figure(entries).axes
    assert [ax.get_title() for ax in (accuracy, train_loss, test_loss)] == [
        "Test accuracy (%)",
        "Training loss",
        "Test loss",
    ]
    assert [list(line.get_ydata()) for line in accuracy.get_lines()] == [[40.0, 50.0], [65.0, 85.0]]
    assert list(accuracy.get_lines()[0].get_xdata()) == [1, 2]
    for ax in (accuracy, train_loss, test_loss):
        assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 1  # the group's ± std band
    fig = accuracy.figure
    FigureCanvasAgg(fig).draw()
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [e.label for e in entries]
    box = legend.get_window_extent()
    for ax in (accuracy, train_loss, test_loss):
        assert not box.overlaps(ax.get_window_extent())  # below the panels: it hides no point
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks)  # whole epochs, never 1.5


def test_long_labels_stay_inside_the_figure(run: Path, tmp_path: Path) -> None:
    """Four runs that differ in four settings each: the legend takes fewer columns and is never cut off."""
    paths = [
        variant(
            run,
            tmp_path / f"r{i}",
            lr=0.01 * (i + 1),
            momentum=0.5 + i / 10,
            max_train_samples=512 * (i + 1),
            model_args={"width": 8 * (i + 1)},
            device="cpu",
            epochs=2 + i,
        )
        for i in range(4)
    ]
    entries, _ = collect(paths)
    keys = differing_settings(entries)
    assert "device" not in keys and "epochs" not in keys  # where it ran; its length is in the table already
    label_entries(entries, keys)
    fig = compare_figure(entries)
    FigureCanvasAgg(fig).draw()
    (legend,) = fig.legends
    box, page = legend.get_window_extent(), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0, (box, page)


def test_labels_are_short_a_model_file_by_its_name_and_a_missing_model_argument_as_default(
    run: Path, tmp_path: Path
) -> None:
    a = variant(run, tmp_path / "a", model=f"{tmp_path}/models/mynet.py:TinyNet", model_args={"width": 12})
    b = variant(run, tmp_path / "b", model=f"{tmp_path}/models/mynet.py:TinyNet", model_args={})
    entries, _ = collect([a, b])
    keys = differing_settings(entries)
    label_entries(entries, keys)
    assert [e.label for e in entries] == ["width=12", "width=default"]
    rows = [display_row(summarize(e, keys), e.group, keys) for e in entries]
    assert [r["model_args.width"] for r in rows] == ["12", "default"]
    c = variant(run, tmp_path / "c", model="/somewhere/else/mynet.py:TinyNet")
    entries, _ = collect([a, c])
    label_entries(entries, differing_settings(entries))
    assert entries[1].label.startswith("model=mynet.py:TinyNet")
