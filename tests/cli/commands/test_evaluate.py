"""``mnist-ignite evaluate``: numbers checked against a plain loop, files, every model file kind, bad input."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mnist_ignite.artifacts.trained import load_trained
from mnist_ignite.cli import main as cli
from mnist_ignite.core.data import load_mnist, normalize

from conftest import run_cli


def main(argv: list[str]) -> int:
    """``mnist-ignite evaluate ARGV`` in this process, its errors mapped to exit codes by the dispatcher."""
    return cli(["evaluate", *argv])


N = 1000


@pytest.fixture(scope="module")
def evaluated(trained_run: Path, data_dir: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, str]:
    out = tmp_path_factory.mktemp("evaluation")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(
            [
                str(trained_run),
                "--data-dir",
                data_dir,
                "--device",
                "cpu",
                "--max-samples",
                str(N),
                "--output-dir",
                str(out),
                "--top",
                "12",
            ]
        )
    assert code == 0
    return json.loads((out / "evaluation.json").read_text()), out, printed.getvalue()


def test_numbers_match_a_plain_loop_over_the_test_images(evaluated, trained_run: Path, data_dir: str) -> None:
    report, _, _ = evaluated
    ds = load_mnist(data_dir, train=False, download=False)
    x, y = normalize(ds.data[:N].unsqueeze(1).float() / 255), ds.targets[:N]
    with torch.no_grad():
        log_probs = load_trained(trained_run).model(x)
    pred = log_probs.argmax(1)
    assert report["samples"] == N and report["model"] == "seed" and report["parameters"] == 593_200
    assert report["test_acc"] == pytest.approx(100 * int((pred == y).sum()) / N, abs=1e-9)
    assert report["test_loss"] == pytest.approx(float(F.nll_loss(log_probs, y)), rel=1e-5)
    assert report["test_acc"] > 90  # the fixture's model really learned
    cm = torch.tensor(report["confusion_matrix"])
    expected = torch.zeros(10, 10, dtype=torch.long)
    expected.index_put_((y, pred), torch.ones(N, dtype=torch.long), accumulate=True)
    assert torch.equal(cm, expected)
    for row in report["per_class"]:
        d = row["digit"]
        tp = int(((pred == d) & (y == d)).sum())
        assert row["support"] == int((y == d).sum())
        assert row["recall"] == pytest.approx(tp / row["support"])
        assert row["recall"] == pytest.approx(tp / row["support"])
        assert row["precision"] == pytest.approx(tp / max(1, int((pred == d).sum())))
        p, r = row["precision"], row["recall"]
        assert row["f1"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0, abs=1e-6)
    assert report["macro"]["f1"] == pytest.approx(sum(r["f1"] for r in report["per_class"]) / 10)


def test_most_confused_and_top_losses(evaluated) -> None:
    report, _, _ = evaluated
    pairs = report["most_confused"]
    cm = report["confusion_matrix"]
    assert pairs and all(p["true"] != p["pred"] and cm[p["true"]][p["pred"]] == p["count"] for p in pairs)
    assert [p["count"] for p in pairs] == sorted((p["count"] for p in pairs), reverse=True)
    off = [cm[i][j] for i in range(10) for j in range(10) if i != j]
    assert pairs[0]["count"] == max(off)
    top = report["top_losses"]
    assert len(top) == 12
    losses = [t["loss"] for t in top]
    assert losses == sorted(losses, reverse=True)
    for t in top:
        assert t["loss"] == pytest.approx(-math.log(t["true_probability"]), rel=1e-4)
        assert t["probability"] >= t["true_probability"]
    assert top[0]["pred"] != top[0]["true"]  # a ~97% model gets some of 1,000 wrong


def test_files_and_printed_report(evaluated) -> None:
    report, out, printed = evaluated
    assert sorted(p.name for p in out.iterdir()) == ["confusion_matrix.png", "evaluation.json", "top_losses.png"]
    for name in ("confusion_matrix.png", "top_losses.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and min(image.size) > 400
    assert f"accuracy {report['test_acc']:.2f}%" in printed
    assert "most confused (true->predicted):" in printed and "macro" in printed


@pytest.mark.parametrize("kind", ["checkpoints/last_checkpoint_*.pt", "checkpoints/best_model_*.pt", "final_model.pt"])
def test_every_model_file_kind(kind: str, trained_run: Path, data_dir: str, tmp_path: Path, capsys) -> None:
    (file,) = sorted(trained_run.glob(kind))[-1:]
    args = [str(file), "--data-dir", data_dir, "--device", "cpu", "--max-samples", "200", "--output-dir", str(tmp_path)]
    assert main(args) == 0
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["model_file"] == str(file) and report["samples"] == 200
    assert str(file) in capsys.readouterr().out


def test_the_run_s_own_precision_unless_precision_says_otherwise(
    trained_run: Path, data_dir: str, tmp_path: Path, capsys
) -> None:
    """A bf16 run is evaluated in bf16 (the numbers its epochs reported); --precision fp32 evaluates in fp32."""
    import shutil

    run = tmp_path / "bf16-run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("evaluation"))
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(config | {"precision": "bf16"}))
    reports = {}
    for given in ([], ["--precision", "fp32"]):
        out = tmp_path / (given[-1] if given else "own")
        assert main([str(run), "--data-dir", data_dir, "--device", "cpu", "--max-samples", "300", "--output-dir",
                     str(out), *given]) == 0  # fmt: skip
        reports[out.name] = json.loads((out / "evaluation.json").read_text())
    assert reports["own"]["precision"] == "bf16" and reports["fp32"]["precision"] == "fp32"
    assert ", bf16)" in capsys.readouterr().out
    ds = load_mnist(data_dir, train=False, download=False)
    x, y = normalize(ds.data[:300].unsqueeze(1).float() / 255), ds.targets[:300]
    model = load_trained(run).model
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x).float(), y).item()
    assert math.isclose(reports["own"]["test_loss"], loss, rel_tol=1e-3)


def test_default_output_folder_is_inside_the_run(trained_run: Path, data_dir: str, capsys) -> None:
    assert main([str(trained_run), "--data-dir", data_dir, "--device", "cpu", "--max-samples", "100"]) == 0
    assert (trained_run / "evaluation" / "final_model" / "evaluation.json").is_file()


def test_bad_input_one_line_no_traceback(trained_run: Path, data_dir: str, tmp_path: Path, run_main) -> None:
    notes = tmp_path / "notes.pt"
    notes.write_text("hello")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        ([str(notes)], 1, "is damaged or not a PyTorch file"),
        ([str(tmp_path / "nothing")], 1, "no such file or folder"),
        ([str(trained_run), "--output-dir", str(blocker / "sub")], 1, "cannot use"),
        ([str(trained_run), "--top", "-1"], 2, "--top must be >= 0"),
    ]
    common = ("--data-dir", data_dir, "--device", "cpu", "--max-samples", "50")
    result = run_cli("evaluate", *cases[0][0], *common)  # once through the real entry point
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and cases[0][2] in result.stderr, result.stderr
    for args, code, message in cases:
        returned, _, err = run_main(main, *args, *common)
        assert returned == code, (args, err)
        assert err.count("\n") == 1 and message in err, err
    assert blocker.read_text() == "x"


def test_a_users_logits_model_is_rebuilt_from_the_run(custom_run: Path, data_dir: str, tmp_path: Path) -> None:
    trained = load_trained(custom_run, trust=True)
    assert trained.spec.endswith("tiny.py:Tiny") and trained.model_args == {"width": 6}
    args = [str(custom_run), "--data-dir", data_dir, "--device", "cpu", "--max-samples", "300", "--trust-code"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*args, "--output-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["model_args"] == {"width": 6} and report["parameters"] == trained.parameters
    ds = load_mnist(data_dir, train=False, download=False)
    x, y = normalize(ds.data[:300].unsqueeze(1).float() / 255), ds.targets[:300]
    with torch.no_grad():
        logits = trained.model.model(x)  # the bare model: logits; the loss must be cross-entropy on them
    assert report["test_loss"] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
