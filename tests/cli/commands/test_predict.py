"""``mnist-ignite predict``: MNIST rendered as big black-on-white PNGs, the ONNX file, outputs, bad input."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_ignite.artifacts.digits import load_digit
from mnist_ignite.artifacts.trained import load_trained
from mnist_ignite.cli import main as cli
from mnist_ignite.cli.commands import predict
from mnist_ignite.core.data import load_mnist, normalize

from conftest import run_cli


def run(command: str, *args: str) -> int:
    """``mnist-ignite COMMAND ARGS`` in this process (errors become exit codes, as in the shell)."""
    return cli([command, *args])


N = 500
FIRST = 5000  # images the training fixture's evaluation never saw


@pytest.fixture(scope="module")
def rendered(data_dir: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.Tensor, torch.Tensor]:
    """500 MNIST test digits as people write them: black ink on white paper, at 3x the size (84x84 PNGs)."""
    ds = load_mnist(data_dir, train=False, download=False)
    images, labels = ds.data[FIRST : FIRST + N], ds.targets[FIRST : FIRST + N]
    folder = tmp_path_factory.mktemp("digits")
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        paper = Image.fromarray(255 - img.numpy()).resize((84, 84), Image.Resampling.BICUBIC)
        paper.save(folder / f"{i:03d}_{int(label)}.png")
    return folder, images, labels


def _predict_json(*args: str) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run("predict", *args, "--json")
    return code, json.loads(out.getvalue())


def test_pngs_are_classified_as_well_as_the_tensors(trained_run: Path, rendered) -> None:
    folder, images, labels = rendered
    with torch.no_grad():
        logits = load_trained(trained_run).model(normalize(images.unsqueeze(1).float() / 255))
    tensor_acc = float((logits.argmax(1) == labels).float().mean())
    code, result = _predict_json(str(trained_run), str(folder))
    assert code == 0 and not result["errors"] and len(result["predictions"]) == N
    truth = {Path(p["file"]).name: int(Path(p["file"]).stem.split("_")[1]) for p in result["predictions"]}
    png_acc = np.mean([p["digit"] == truth[Path(p["file"]).name] for p in result["predictions"]])
    print(f"accuracy on {N} tensors {tensor_acc:.4f}, on the same digits as 3x black-on-white PNGs {png_acc:.4f}")
    assert tensor_acc > 0.9
    assert png_acc >= 0.98 * tensor_acc


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize(
    ("fmt", "name", "described"),
    [("onnx", "model.onnx", "ONNX Runtime"), ("torchscript", "model.torchscript.pt", "(torchscript)"),
     ("exported-program", "model.pt2", "(exported-program)")],
)  # fmt: skip
def test_an_export_gives_the_checkpoints_answers(
    fmt: str, name: str, described: str, trained_run: Path, rendered, data_dir: str, tmp_path: Path, capsys
) -> None:
    folder, _, _ = rendered
    exported = tmp_path / name
    args = [str(trained_run), "--format", fmt, "--output", str(exported), "--data-dir", data_dir]
    with contextlib.redirect_stdout(io.StringIO()):
        assert run("export", *args, "--check-samples", "100") == 0
    files = sorted(folder.iterdir())[:100]
    code_pt, from_pt = _predict_json(str(trained_run), *map(str, files), "--top", "3")
    code_onnx, from_onnx = _predict_json(str(exported), *map(str, files), "--top", "3")
    assert code_pt == code_onnx == 0 and described in from_onnx["model"]
    # evaluate needs the checkpoint (its model spec, its parameters): an export is refused in one line
    capsys.readouterr()
    assert run("evaluate", str(exported), "--data-dir", data_dir) == 1
    err = capsys.readouterr().err
    assert err.strip().endswith("(predict and serve also take exported models)") and "Warning" not in err, err
    for a, b in zip(from_pt["predictions"], from_onnx["predictions"], strict=True):
        assert a["file"] == b["file"] and [t["digit"] for t in a["top"]] == [t["digit"] for t in b["top"]]
        np.testing.assert_allclose(
            [t["probability"] for t in a["top"]], [t["probability"] for t in b["top"]], atol=1e-4
        )


def test_top_k_lines_and_saved_preprocessed_images(trained_run: Path, rendered, tmp_path: Path, capsys) -> None:
    folder, _, _ = rendered
    files = sorted(folder.iterdir())[:3]
    saved = tmp_path / "seen"
    assert run("predict", str(trained_run), *map(str, files), "--top", "3", "--save-preprocessed", str(saved)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for line, file in zip(lines, files, strict=True):
        name, *pairs = line.split()
        assert name == str(file) and len(pairs) == 6
        probs = [float(p) for p in pairs[1::2]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
        with Image.open(saved / f"{file.stem}.png") as seen:
            assert seen.size == (28, 28) and seen.mode == "L"
            pixels = torch.from_numpy(np.asarray(seen, dtype=np.float32) / 255)
        torch.testing.assert_close(pixels, load_digit(file), atol=1 / 255, rtol=0)


def test_bad_images_reported_the_good_ones_still_classified(trained_run: Path, rendered, tmp_path: Path) -> None:
    folder, _, _ = rendered
    good = sorted(folder.iterdir())[0]
    blank, text = tmp_path / "blank.png", tmp_path / "text.jpg"
    Image.new("RGB", (60, 60), "white").save(blank)
    text.write_text("not an image")
    result = run_cli("predict", str(trained_run), str(good), str(blank), str(text))
    assert result.returncode == 1
    assert result.stdout.splitlines()[0].startswith(str(good))
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and "Traceback" not in result.stderr
    assert f"{blank}: no ink found" in errors[0] and f"{text}: not a readable image" in errors[1]


def test_usage_errors(trained_run: Path, rendered, tmp_path: Path, run_main) -> None:
    folder, _, _ = rendered
    good = str(sorted(folder.iterdir())[0])
    empty = tmp_path / "empty"
    empty.mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    notes = tmp_path / "notes.pt"
    notes.write_text("hello")
    cases = [
        ([str(trained_run), str(empty)], 2, "holds no images"),
        ([str(trained_run), str(tmp_path / "missing.png")], 2, "no such file or folder"),
        ([good, str(trained_run)], 2, "is an image: the model comes first"),
        ([str(trained_run), good, "--top", "11"], 2, "--top must be between 1 and 10"),
        ([str(notes), good], 1, "is damaged or not a PyTorch file"),
        ([str(tmp_path / "missing.onnx"), good], 1, "model not found"),
        ([str(trained_run), good, "--save-preprocessed", str(blocker / "out")], 1, "cannot use"),
    ]
    broken = tmp_path / "broken.onnx"
    broken.write_text("not onnx")
    cases.append(([str(broken), good], 1, "is not a loadable ONNX model"))
    for args, code, message in cases:
        returned, out, err = run_main(predict.main, *args)
        assert returned == code, (args, err)
        assert err.count("\n") == 1 and message in err, err
        assert out == ""
