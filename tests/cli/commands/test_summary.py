"""``mnist-ignite summary``: the table of the seed Net or any --model, bad models in one line, no data read."""

from __future__ import annotations

import pytest

from mnist_ignite.cli import main as cli

from conftest import ROOT, run_cli


def main(argv: list[str]) -> int:
    """``mnist-ignite summary ARGV`` in this process, its errors mapped to exit codes by the dispatcher."""
    return cli(["summary", *argv])


SMALLNET = f"{ROOT / 'examples' / 'custom_model.py'}:SmallNet"


def test_seed_net_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("seed (Net)\n")
    assert "max_pool2d (F)" in out and "Total params: 593,200" in out
    assert "Receptive field of the last conv/pool layer (max_pool2d): 16 px" in out
    assert out.rstrip().endswith(
        "Output: log-probabilities (trained with cross-entropy on them, i.e. the seed's nll_loss)"
    )


def test_a_model_file_with_constructor_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", SMALLNET, "--model-arg", "width=8", "--model-arg", "dropout=0.1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{SMALLNET} (SmallNet, width=8, dropout=0.1)"
    assert "pool (AdaptiveAvgPool2d)" in out and "[-1, 8, 24, 24]" in out  # width 8: the wide layers
    assert "Output: logits" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "sed"], "unknown model 'sed' (did you mean seed?)"),
        (["--model-arg", "width=8"], "model 'seed' has no parameter width (its parameters: none)"),
        (["--model", SMALLNET, "--model-arg", "width=0"], "could not be built: ValueError: width must be >= 2"),
        (["--model-arg", "oops"], "--model-arg wants key=value"),
    ],
)
def test_bad_models_are_one_line_and_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mnist-ignite: error: ") and message in err


@pytest.mark.integration  # starts a process
def test_the_cli_dispatches_summary_without_reading_data(tmp_path) -> None:
    result = run_cli("summary", "--model", SMALLNET, env={"MNIST_IGNITE_DATA": str(tmp_path / "none")})
    assert result.returncode == 0, result.stderr
    assert "Total params: 9,762" in result.stdout
    assert not (tmp_path / "none").exists()
