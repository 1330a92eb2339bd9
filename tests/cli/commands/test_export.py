"""``mnist-ignite export``: each format loads back on its own and matches the model at any batch size;
the parity check really fails on a different model; nothing is left behind on failure."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch

from mnist_ignite.artifacts.export import check_parity, export_model
from mnist_ignite.artifacts.formats import load_exported
from mnist_ignite.artifacts.trained import load_trained
from mnist_ignite.cli import main as cli

from conftest import run_cli


def main(argv: list[str]) -> int:
    """``mnist-ignite export ARGV`` in this process, its errors mapped to exit codes by the dispatcher."""
    return cli(["export", *argv])


FORMATS = [
    ("onnx", ["--dynamo"], "model.onnx"),
    ("onnx", ["--no-dynamo", "--opset", "17"], "model.onnx"),
    ("torchscript", [], "model.torchscript.pt"),
    ("exported-program", [], "model.pt2"),
]


def _load_independently(fmt: str, path: Path):
    """The file as a user without this project would load it."""
    if fmt == "onnx":
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])
    if fmt == "torchscript":
        return torch.jit.load(path)
    return torch.export.load(path).module()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize(("fmt", "flags", "name"), FORMATS, ids=["onnx-dynamo", "onnx-legacy", "torchscript", "ep"])
def test_export_loads_back_and_matches(fmt, flags, name, trained_run: Path, data_dir: str, tmp_path: Path, capsys):
    out = tmp_path / name
    assert main([str(trained_run), "--format", fmt, *flags, "--output", str(out), "--data-dir", data_dir]) == 0
    printed = capsys.readouterr().out
    assert "parity: max |difference|" in printed and "1,000/1,000 predictions identical" in printed
    assert [p.name for p in tmp_path.iterdir()] == [name]  # one file, no external data, no temp debris
    model = load_trained(trained_run).model
    exported = _load_independently(fmt, out)
    for batch in (1, 7, 64):  # the batch axis is dynamic
        x = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            torch.testing.assert_close(exported(x), model(x), atol=1e-4, rtol=0)
    if fmt == "onnx":
        graph = onnx.load(str(out))
        assert isinstance(ort.InferenceSession(str(out)).get_inputs()[0].shape[0], str)
        if "--opset" in flags:
            assert {o.domain: o.version for o in graph.opset_import}[""] == 17


def test_default_output_sits_beside_the_model(trained_run: Path, data_dir: str, capsys) -> None:
    assert main([str(trained_run), "--format", "torchscript", "--data-dir", data_dir, "--check-samples", "50"]) == 0
    assert (trained_run / "final_model.torchscript.pt").is_file()


def test_parity_check_catches_a_different_model(trained_run: Path, data_dir: str, tmp_path: Path) -> None:
    model = load_trained(trained_run).model
    path = tmp_path / "m.onnx"
    export_model(model, "onnx", path)
    exported = load_exported("onnx", path)
    x = torch.randn(100, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    same = check_parity(model, exported, x)
    assert same.ok(1e-4) and same.batch_sizes == (99, 1) and same.samples == 100
    with torch.no_grad():
        model.model.fc2.bias[3] += 5.0  # a different model: class 3 favoured
    other = check_parity(model, exported, x)
    assert not other.ok(1e-4) and other.max_abs_diff > 1 and other.mismatches > 0


def test_failed_parity_leaves_nothing_and_shows_the_numbers(trained_run: Path, data_dir: str, tmp_path: Path) -> None:
    # ONNX Runtime's kernels round differently from PyTorch's: a zero tolerance cannot be met
    out = tmp_path / "model.onnx"
    result = run_cli("export", str(trained_run), "--output", str(out), "--data-dir", data_dir, "--tolerance", "0")
    assert result.returncode == 1, result.stderr
    assert "parity check failed, nothing written: max |difference|" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_input(trained_run: Path, data_dir: str, tmp_path: Path, run_main) -> None:
    notes = tmp_path / "notes.pt"
    notes.write_text("hello")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    checkpoint = min((trained_run / "checkpoints").glob("*.pt"))
    cases = [
        ([str(notes)], 1, "is damaged or not a PyTorch file"),
        ([str(trained_run), "--output", str(blocker / "m.onnx")], 1, "cannot use"),
        ([str(trained_run), "--format", "torchscript", "--opset", "17"], 2, "apply to --format onnx only"),
        ([str(trained_run), "--format", "tflite"], 2, "invalid choice"),
        ([str(trained_run), "--opset", "99"], 2, "--opset must be between 7 and"),
        # the dynamo exporter cannot go down to opset 9: it used to log a traceback and write opset 18
        ([str(trained_run), "--opset", "9", "--output", str(tmp_path / "m.onnx")], 1,
         "could not convert this model to opset 9 (it wrote 18); nothing written"),
        # the model itself, or another checkpoint, is never replaced by an export
        ([str(trained_run), "--output", str(trained_run / "final_model.pt")], 2, "is the model being exported"),
        ([str(trained_run), "--format", "torchscript", "--output", str(checkpoint)], 2, "inside a run's checkpoints/"),
    ]  # fmt: skip
    model_bytes = (trained_run / "final_model.pt").read_bytes()
    for args, code, message in cases:
        returned, out, err = run_main(main, *args, "--data-dir", data_dir, "--check-samples", "50")
        assert returned == code, (args, err)
        assert message in err and out == "" and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "notes.pt"]
    assert (trained_run / "final_model.pt").read_bytes() == model_bytes


@pytest.mark.parametrize("fmt", ["onnx", "exported-program"])
def test_a_users_logits_model_exports_log_probabilities(fmt, custom_run: Path, data_dir: str, tmp_path: Path, capsys):
    out = tmp_path / ("tiny.onnx" if fmt == "onnx" else "tiny.pt2")
    assert main([str(custom_run), "--format", fmt, "--output", str(out), "--data-dir", data_dir, "--trust-code"]) == 0
    assert "1,000/1,000 predictions identical" in capsys.readouterr().out
    x = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    log_probs = _load_independently(fmt, out)(x)
    torch.testing.assert_close(log_probs.exp().sum(1), torch.ones(5))
    with torch.no_grad():
        torch.testing.assert_close(log_probs, load_trained(custom_run, trust=True).model(x), atol=1e-4, rtol=0)


def test_output_refuses_to_replace_anything_but_an_earlier_export_of_its_format(tmp_path: Path) -> None:
    """Run files, checkpoints, the model itself, a text file named .onnx: never replaced; an ONNX model only with
    --overwrite."""
    from onnx import TensorProto, helper

    from mnist_ignite.cli.commands.export import check_output
    from mnist_ignite.errors import ConfigError

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    source = run / "final_model.pt"
    for name in ("final_model.pt", "metrics.json", "config.json", "checkpoints/last_checkpoint_8.pt"):
        (run / name).write_text("{}")
    (run / "notes.onnx").write_text("my notes, not a model")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph), run / "earlier.onnx")
    refusals = {
        "checkpoints/new.onnx": "is inside a run's checkpoints/ folder",
        "final_model.pt": "is the model being exported",
        "metrics.json": "exists and is not a onnx export: refusing to replace it",
        "config.json": "exists and is not a onnx export: refusing to replace it",
        "notes.onnx": "exists and is not a onnx export: refusing to replace it",
        "earlier.onnx": r"exists \(an earlier onnx export\): --overwrite replaces it",
    }
    for name, why in refusals.items():
        with pytest.raises(ConfigError, match=why):
            check_output(run / name, source, "onnx", overwrite=False)
    with pytest.raises(ConfigError, match="refusing to replace it"):
        check_output(run / "notes.onnx", source, "onnx", overwrite=True)  # --overwrite is for exports only
    check_output(run / "earlier.onnx", source, "onnx", overwrite=True)
    check_output(run / "new.onnx", source, "onnx", overwrite=False)
