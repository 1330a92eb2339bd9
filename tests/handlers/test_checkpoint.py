from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from mnist_ignite.cli import main
from mnist_ignite.core.files import load_tensors
from mnist_ignite.errors import CheckpointLoadError

from conftest import metrics, run_cli, small_args

COMPARED = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr")


def same_rows(a: Path, b: Path) -> None:
    ra, rb = metrics(a), metrics(b)
    assert [r["epoch"] for r in rb] == [r["epoch"] for r in ra]
    for x, y in zip(ra, rb, strict=True):
        assert {k: x[k] for k in COMPARED} == {k: y[k] for k in COMPARED}


def same_weights(a: Path, b: Path) -> None:
    wa, wb = (torch.load(p / "final_model.pt", weights_only=True) for p in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def straight(data_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted 4-epoch run with --seed 7."""
    out = tmp_path_factory.mktemp("straight")
    assert main(small_args(data_dir, out, "--epochs", "4", "--seed", "7", train=320)) == 0
    return out


def test_resume_at_an_epoch_boundary_equals_an_uninterrupted_run(
    straight: Path, data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "resumed"
    assert main(small_args(data_dir, out, "--epochs", "2", "--seed", "7", train=320)) == 0
    capsys.readouterr()
    assert main(small_args(data_dir, out, "--epochs", "4", "--seed", "7", "--resume", "auto", train=320)) == 0
    same_rows(straight, out)
    same_weights(straight, out)
    # the footer tells this process's time from the whole run's
    results = json.loads((out / "results.json").read_text())
    assert results["resumed_at_epoch"] == 2 and results["epochs"] == 4
    assert results["train_seconds"] == pytest.approx(sum(r["train_seconds"] for r in metrics(out)), abs=0.01)
    time_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("  time: "))
    assert "for epochs 3-4 (resumed after epoch 2); " in time_line and time_line.endswith("over all 4 epochs")
    # nothing left to do: said so, and the run's numbers are unchanged
    assert main(small_args(data_dir, out, "--epochs", "4", "--seed", "7", "--resume", "auto", train=320)) == 0
    assert "(nothing left to train)" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["best_test_acc"] == results["best_test_acc"]


def test_resume_from_a_mid_epoch_checkpoint_is_exact(straight: Path, data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "mid"
    # a 1-epoch run with checkpoints every 3 iterations; resume from iteration 3 of epoch 1
    assert (
        main(
            small_args(
                data_dir,
                out,
                "--epochs",
                "1",
                "--seed",
                "7",
                "--checkpoint-every-iters",
                "3",
                "--keep-last",
                "5",
                train=320,
            )
        )
        == 0
    )
    path = out / "checkpoints" / "last_checkpoint_3.pt"
    assert path.is_file()
    fresh = tmp_path / "fresh"
    assert main(small_args(data_dir, fresh, "--epochs", "4", "--seed", "7", "--resume", str(path), train=320)) == 0
    same_rows(straight, fresh)
    same_weights(straight, fresh)


def test_keeps_the_last_two_and_the_best(straight: Path) -> None:
    files = sorted(p.name for p in (straight / "checkpoints").iterdir())
    assert [f for f in files if f.startswith("last_")] == ["last_checkpoint_15.pt", "last_checkpoint_20.pt"]
    best = [f for f in files if f.startswith("best_")]
    rows = metrics(straight)
    top = max(rows, key=lambda r: (r["test_acc"], -r["epoch"]))  # ties keep the first
    assert best == [f"best_model_{top['epoch']}_test_acc={top['test_acc']:.4f}.pt"]
    model = load_tensors(straight / "checkpoints" / best[0])
    assert "conv1.weight" in model


def test_resume_auto_without_checkpoints_starts_fresh(
    data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new"
    assert main(small_args(data_dir, out, "--epochs", "1", "--resume", "auto", train=128, eval_=64)) == 0
    assert "no checkpoint" in capsys.readouterr().out
    assert len(metrics(out)) == 1


def test_damaged_checkpoint_is_one_clear_error(straight: Path, data_dir: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes((straight / "checkpoints" / "last_checkpoint_20.pt").read_bytes()[:5000])
    result = run_cli(*small_args(data_dir, tmp_path / "out", "--epochs", "5", "--resume", str(bad), train=320))
    assert result.returncode == 1
    assert "is damaged or not a PyTorch file" in result.stderr and "Traceback" not in result.stderr


def test_checkpoint_of_another_model_is_refused(
    data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.pt"
    torch.save({"model": torch.nn.Linear(3, 2).state_dict()}, other)
    assert main(small_args(data_dir, tmp_path / "out", "--epochs", "1", "--resume", str(other), train=128)) == 1
    assert "not an mnist-ignite checkpoint" in capsys.readouterr().err
    ckpt = tmp_path / "meta.pt"
    torch.save(
        {
            "meta": {"format": "mnist-ignite/1", "model": "Net", "parameters": 593200},
            "trainer": {"epoch_length": 2},
            "model": torch.nn.Linear(3, 2).state_dict(),
        },
        ckpt,
    )
    assert main(small_args(data_dir, tmp_path / "out2", "--epochs", "1", "--resume", str(ckpt), train=128)) == 1


class Payload:
    def __reduce__(self):  # what a malicious checkpoint does: run code when unpickled
        return (Path.touch, (Path(MARKER),))


MARKER = ""


def test_malicious_pickle_is_refused_and_its_payload_never_runs(data_dir: str, tmp_path: Path) -> None:
    global MARKER
    MARKER = str(tmp_path / "pwned")
    evil = tmp_path / "evil.pt"
    torch.save({"meta": {"format": "mnist-ignite/1"}, "model": Payload()}, evil)
    with pytest.raises(CheckpointLoadError, match="refused to load"):
        load_tensors(evil)
    result = run_cli(*small_args(data_dir, tmp_path / "out", "--epochs", "1", "--resume", str(evil), train=128))
    assert result.returncode == 1 and "refused to load" in result.stderr
    assert not Path(MARKER).exists()
    with pytest.raises(pickle.UnpicklingError):  # sanity: the file really is a pickle bomb
        torch.load(evil, weights_only=True)


def test_an_epoch_end_checkpoint_holds_that_epochs_row(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "edge"
    # 5 iterations per epoch and a save every 5: the epoch-end file must be written after the evaluation
    assert main(small_args(data_dir, out, "--epochs", "1", "--checkpoint-every-iters", "5", train=320)) == 0
    state = load_tensors(out / "checkpoints" / "last_checkpoint_5.pt")
    assert [r["epoch"] for r in state["history"]["rows"]] == [1]


# --- in-process, on the synthetic MNIST (unit lane) ---------------------------------------------


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "final_model.pt", weights_only=True)


def test_a_resumed_tiny_run_is_bitwise_the_uninterrupted_one(tmp_path: Path) -> None:
    from mnist_ignite.testing import run_plugin

    common = {"handlers": ["checkpoint"], "train": 256, "seed": 5, "options": {"checkpoint_every_iters": 3}}
    run_plugin(epochs=3, output_dir=tmp_path / "straight", **common)
    run_plugin(epochs=1, output_dir=tmp_path / "split", **common)
    resumed = run_plugin(epochs=3, output_dir=tmp_path / "split", resume="auto", **common)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["epoch"] for r in resumed.rows] == [1, 2, 3]


def test_the_last_checkpoint_knows_the_best_model_of_its_own_epoch(tmp_path: Path) -> None:
    from mnist_ignite.testing import run_plugin

    run = run_plugin(epochs=2, handlers=["checkpoint"], output_dir=tmp_path / "b", lr=0.05)
    last = sorted((tmp_path / "b" / "checkpoints").glob("last_*.pt"), key=lambda p: int(p.stem.split("_")[-1]))[-1]
    saved = load_tensors(last)["plugins"]["checkpoint"]["best"]["_saved"]  # Ignite Checkpoint's own state
    best_epoch = max(run.rows, key=lambda r: (r["test_acc"], -r["epoch"]))["epoch"]
    assert [name.split("_")[2] for _, name in saved] == [str(best_epoch)]


def test_resume_auto_of_a_finished_run_without_checkpoints_is_refused(tmp_path: Path) -> None:
    import shutil

    from mnist_ignite.errors import RunDirError
    from mnist_ignite.testing import run_plugin

    out = tmp_path / "done"
    run_plugin(handlers=["checkpoint"], output_dir=out)
    shutil.rmtree(out / "checkpoints")
    with pytest.raises(RunDirError, match=r"holds a run .* but no checkpoint .* --overwrite replaces that run"):
        run_plugin(handlers=["checkpoint"], output_dir=out, resume="auto", epochs=2)
    assert (out / "final_model.pt").is_file()  # nothing was replaced
