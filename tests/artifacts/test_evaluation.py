"""Evaluating a model: Ignite's numbers checked against a plain loop, the worst images, the report's files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mnist_ignite.artifacts.evaluation import evaluate, most_confused, write_report
from mnist_ignite.artifacts.trained import LogProbs, TrainedModel
from mnist_ignite.core.data import normalize, read_test_images
from mnist_ignite.testing import TinyNet, fake_mnist

CPU = torch.device("cpu")
N = 150


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic test digits as uint8 (N, 28, 28) and their labels."""
    return read_test_images(fake_mnist(tmp_path_factory.mktemp("digits"), train=1, test=N))


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    """An untrained TinyNet: it predicts a few classes only, so precision meets classes never predicted."""
    torch.manual_seed(0)
    return TrainedModel(LogProbs(TinyNet()).eval(), Path("tiny.pt"), "mnist_ignite.testing:TinyNet", {"width": 8})


def _plain(trained: TrainedModel, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return trained.model(normalize(x.unsqueeze(1).float() / 255))


@pytest.mark.parametrize("batch_size", [1000, 64])  # one batch, and batches with a short last one
def test_numbers_match_a_plain_loop(batch_size: int, trained: TrainedModel, images: Any) -> None:
    """Every figure of the report is what a loop over the same images computes, however the images are batched."""
    x, y = images
    report = evaluate(trained, x, y, CPU, batch_size=batch_size, top=4)
    log_probs = _plain(trained, x)
    pred = log_probs.argmax(1)
    assert report["samples"] == N and report["model"] == "mnist_ignite.testing:TinyNet"
    assert report["model_args"] == {"width": 8} and report["parameters"] == trained.parameters
    assert report["test_acc"] == pytest.approx(100 * float((pred == y).float().mean()))
    assert report["test_loss"] == pytest.approx(float(F.nll_loss(log_probs, y)), rel=1e-5)
    expected = torch.zeros(10, 10, dtype=torch.long).index_put_((y, pred), torch.ones(N, dtype=torch.long), True)
    assert report["confusion_matrix"] == expected.tolist()
    for row in report["per_class"]:
        d = row["digit"]
        tp, predicted, support = int(((pred == d) & (y == d)).sum()), int((pred == d).sum()), int((y == d).sum())
        assert row["support"] == support
        assert row["recall"] == pytest.approx(tp / support) and "accuracy" not in row  # recall is the digit's accuracy
        assert row["precision"] == pytest.approx(tp / max(1, predicted))
        p, r = row["precision"], row["recall"]
        assert row["f1"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0, abs=1e-6)
    assert report["macro"]["precision"] == pytest.approx(sum(r["precision"] for r in report["per_class"]) / 10)
    assert report["most_confused"] == most_confused(expected)


@pytest.mark.parametrize("top", [0, 5, N + 10])
def test_top_losses_are_the_images_the_model_is_most_wrong_about(top: int, trained: TrainedModel, images: Any) -> None:
    """Indices into the given images, highest loss first; never more rows than images."""
    x, y = images
    rows = evaluate(trained, x, y, CPU, batch_size=64, top=top)["top_losses"]
    losses = F.nll_loss(_plain(trained, x), y, reduction="none")
    assert len(rows) == min(top, N)
    assert [r["index"] for r in rows] == losses.topk(len(rows)).indices.tolist()
    for r in rows:
        assert r["true"] == int(y[r["index"]]) and r["loss"] == pytest.approx(float(losses[r["index"]]), rel=1e-5)
        assert r["loss"] == pytest.approx(-math.log(r["true_probability"]), rel=1e-4)
        assert r["probability"] >= r["true_probability"]


def test_most_confused_skips_empty_cells() -> None:
    cm = torch.diag(torch.tensor([5] * 10))
    cm[3, 5], cm[7, 1] = 2, 4
    assert most_confused(cm) == [{"true": 7, "pred": 1, "count": 4}, {"true": 3, "pred": 5, "count": 2}]


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, [(2, 0, 9)]), (3, [(2, 0, 9), (0, 2, 6), (9, 8, 1)]), (5, [(2, 0, 9), (0, 2, 6), (9, 8, 1)])],
)
def test_most_confused_keeps_the_n_largest_errors_never_the_diagonal(n: int, expected: list[tuple]) -> None:
    """A diagonal of hundreds must not crowd out the errors; asking for more than there are gives what there is."""
    cm = torch.diag(torch.full((10,), 500))
    cm[2, 0], cm[0, 2], cm[9, 8] = 9, 6, 1
    assert [(c["true"], c["pred"], c["count"]) for c in most_confused(cm, n)] == expected


@pytest.mark.parametrize("top", [3, 0])
def test_write_report_writes_the_json_and_the_pictures(
    top: int, trained: TrainedModel, images: Any, tmp_path: Path
) -> None:
    """evaluation.json reads back as the report; no top-losses picture when no rows were asked for."""
    x, y = images
    report = evaluate(trained, x, y, CPU, top=top)
    written = write_report(report, x, tmp_path)
    names = ["evaluation.json", "confusion_matrix.png"] + (["top_losses.png"] if top else [])
    assert [p.name for p in written] == names
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # nothing else, no temp files
    assert json.loads((tmp_path / "evaluation.json").read_text()) == report
    for name in names[1:]:
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and min(image.size) > 200
