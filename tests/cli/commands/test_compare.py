"""``mnist-ignite compare`` on real runs: three learning rates, a group of repeats, runs still writing."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import matplotlib.image
import pytest
from matplotlib.collections import PolyCollection

from mnist_ignite.cli import main as cli
from mnist_ignite.experiments.compare import collect, compare_figure, differing_settings, label_entries

from conftest import metrics, run_cli, small_args


def main(argv: list[str]) -> int:
    """``mnist-ignite compare ARGV`` in this process, its errors mapped to exit codes by the dispatcher."""
    return cli(["compare", *argv])


LRS = ("0.005", "0.01", "0.05")


def train(data_dir: str, out: Path, *extra: str) -> Path:
    """A small CPU run with the default handlers on (plots included)."""
    args = [a for a in small_args(data_dir, out, "--epochs", "2", *extra) if a != "--no-plots"]
    result = run_cli(*args, env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, data_dir: str) -> dict[str, Path]:
    """Three runs that differ in --lr, and ``--repeat 2`` at lr 0.01 (OUTPUT/seed-1, OUTPUT/seed-2, summary.json)."""
    root = tmp_path_factory.mktemp("compare")
    found = {lr: train(data_dir, root / f"lr{lr}", "--lr", lr) for lr in LRS}
    found["repeats"] = train(data_dir, root / "repeats", "--lr", "0.01", "--repeat", "2")
    return found


def seed_runs(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if p.is_dir())


def test_figure_overlays_each_runs_curves(runs: dict[str, Path]) -> None:
    entries, notes = collect([runs[lr] for lr in LRS])
    assert notes == []
    keys = differing_settings(entries)
    assert keys == ["lr"]  # nothing else differs: not the seed, not the output folder
    label_entries(entries, keys)
    fig = compare_figure(entries)
    accuracy, train_loss, test_loss = fig.axes[:3]
    assert [ax.get_title() for ax in (accuracy, train_loss, test_loss)] == [
        "Test accuracy (%)",
        "Training loss",
        "Test loss",
    ]
    for ax, key in [(accuracy, "test_acc"), (train_loss, "train_loss"), (test_loss, "test_loss")]:
        lines = ax.get_lines()
        assert len(lines) == 3
        for line, lr in zip(lines, LRS, strict=True):
            rows = metrics(runs[lr])
            assert list(line.get_xdata()) == [1, 2]
            assert list(line.get_ydata()) == pytest.approx([r[key] for r in rows])
    (legend,) = accuracy.figure.legends  # one legend, below the panels
    assert [t.get_text() for t in legend.get_texts()] == [f"lr={float(lr)}" for lr in LRS]


def test_table_printed_and_written_with_only_the_differing_settings(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp"
    assert main([str(runs[lr]) for lr in LRS] + ["--output", str(out)]) == 0
    printed = capsys.readouterr().out
    markdown = (out / "compare.md").read_text()
    assert markdown in printed
    header, rule, *body = markdown.splitlines()
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[:8] == [
        "run",
        "runs",
        "final test acc (%)",
        "best test acc (%)",
        "epochs run",
        "train time (s)",
        "images/s",
        "status",
    ]
    assert columns[8:] == ["lr"]  # the only setting that differs
    assert set(rule) <= {"|", "-", " "} and len(body) == 3
    with open(out / "compare.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["run"] for r in table] == [f"lr{lr}" for lr in LRS]
    for row, lr in zip(table, LRS, strict=True):
        rows = metrics(runs[lr])
        assert float(row["final_test_acc"]) == pytest.approx(rows[-1]["test_acc"], abs=1e-5)
        assert float(row["best_test_acc"]) == pytest.approx(max(r["test_acc"] for r in rows), abs=1e-5)
        assert float(row["train_seconds"]) == pytest.approx(sum(r["train_seconds"] for r in rows), abs=1e-4)
        assert float(row["images_per_second"]) > 0
        assert row["epochs_run"] == "2.0" and row["status"] == "done" and float(row["lr"]) == float(lr)
        cells = next(line for line in body if line.startswith(f"| lr{lr} "))
        assert f"{rows[-1]['test_acc']:.2f}" in cells
    image = matplotlib.image.imread(out / "compare.png")
    assert image.shape[0] > 300 and image.shape[1] > 1000


def test_a_folder_of_repeats_is_a_mean_and_std_band(runs: dict[str, Path], tmp_path: Path) -> None:
    entries, _ = collect([runs["0.05"], runs["repeats"]])
    assert [e.group for e in entries] == [False, True]
    assert len(entries[1].runs) == 2
    keys = differing_settings(entries)
    assert keys == ["lr", "seed"]
    out = tmp_path / "cmp"
    assert main([str(runs["0.05"]), str(runs["repeats"]), "--output", str(out)]) == 0
    with open(out / "compare.csv", newline="") as f:
        group = list(csv.DictReader(f))[1]
    finals = [metrics(p)[-1]["test_acc"] for p in seed_runs(runs["repeats"])]
    mean = sum(finals) / 2
    std = abs(finals[0] - finals[1]) / 2**0.5
    assert group["run"] == "repeats" and group["runs"] == "2" and group["seed"] == "1,2"
    assert float(group["final_test_acc"]) == pytest.approx(mean, abs=1e-5)
    assert float(group["final_test_acc_std"]) == pytest.approx(std, abs=1e-5)
    assert f"{mean:.2f} ± {std:.2f}" in (out / "compare.md").read_text()
    label_entries(entries, keys)
    accuracy = compare_figure(entries).axes[0]
    bands = [c for c in accuracy.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1  # the group's ± std band, no band for a single run
    assert list(accuracy.get_lines()[1].get_ydata()) == pytest.approx(
        [sum(metrics(p)[i]["test_acc"] for p in seed_runs(runs["repeats"])) / 2 for i in range(2)]
    )


def test_a_sweep_folder_lists_each_run(runs: dict[str, Path]) -> None:
    sweep = runs["0.01"].parent  # lr0.005, lr0.01, lr0.05 differ in lr: each run on its own
    entries, _ = collect([sweep])
    names = sorted(e.name for e in entries)
    assert names == sorted(f"{sweep.name}/lr{lr}" for lr in LRS)
    assert not any(e.group for e in entries)
    again, _ = collect([runs["0.01"], sweep])  # a run named on its own and inside its folder: listed once
    assert len(again) == len(LRS)


def test_runs_still_writing_are_read_as_they_are(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running = tmp_path / "running"
    shutil.copytree(runs["0.05"], running)
    (running / "final_model.pt").unlink()  # a run between epochs: one row so far, no final model
    (running / "metrics.json").write_text(json.dumps(metrics(runs["0.05"])[:1]))
    half = tmp_path / "half"
    shutil.copytree(runs["0.01"], half)
    text = (half / "metrics.json").read_text()
    (half / "metrics.json").write_text(text[: len(text) // 2])  # what a non-atomic writer leaves mid-write
    starting = tmp_path / "starting"
    starting.mkdir()
    shutil.copy(runs["0.01"] / "config.json", starting / "config.json")  # no epoch yet
    out = tmp_path / "cmp"
    assert main([str(running), str(half), str(starting), str(runs["0.005"]), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "note: skipped half: metrics.json unreadable" in printed
    assert "note: skipped starting: no metrics.json yet" in printed
    with open(out / "compare.csv", newline="") as f:
        table = {r["run"]: r for r in csv.DictReader(f)}
    assert set(table) == {"running", "lr0.005"}
    assert table["running"]["status"] == "unfinished" and table["running"]["epochs_run"] == "1.0"


def test_an_unwritable_output_fails_before_the_table(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:

    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([str(runs[LRS[0]]), "--output", str(blocker)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip().endswith("as the output folder: it is a file")


def test_bad_paths_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"mnist-ignite: error: compare: not found: {tmp_path / 'nope'}"
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mnist-ignite: error: compare: no run with finished epochs to compare"]


def test_the_cli_dispatches_compare(runs: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli("compare", str(runs["0.01"]), str(runs["0.05"]), "--output", str(tmp_path / "cmp"))
    assert result.returncode == 0, result.stderr
    assert "| lr0.01 " in result.stdout and (tmp_path / "cmp" / "compare.png").is_file()


def test_a_setting_newer_than_a_runs_config_counts_as_its_default(runs: dict[str, Path], tmp_path: Path) -> None:
    older = tmp_path / "older"
    shutil.copytree(runs["0.01"], older)
    config = json.loads((older / "config.json").read_text())
    del config["momentum"]  # a config.json written before --momentum existed; the run had the default
    (older / "config.json").write_text(json.dumps(config))
    entries, _ = collect([older, runs["0.05"]])
    assert differing_settings(entries) == ["lr"]
