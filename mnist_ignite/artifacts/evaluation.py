"""Evaluating a trained model on the MNIST test set: the numbers, the confusions, the worst images.

Runs the project's Ignite evaluator with Ignite's metrics (``Loss``, ``Accuracy``, per-class
``Precision``/``Recall``, their ``Fbeta`` F1, ``ConfusionMatrix``) and keeps every image's loss, to
show the images the model is most wrong about. ``mnist-ignite evaluate`` is its face.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.metrics import ConfusionMatrix, Fbeta, Precision, Recall

from mnist_ignite.artifacts.trained import TrainedModel
from mnist_ignite.core.data import TensorEvalLoader
from mnist_ignite.core.engines import create_evaluator
from mnist_ignite.core.files import save_json
from mnist_ignite.reporting.figures import confusion_matrix_figure, image_grid, save_figure

__all__ = ["PerImageLosses", "evaluate", "most_confused", "write_report"]

CLASSES = 10


class PerImageLosses:
    """Every test image's loss, label and probabilities, in loader order (10,000 rows are small)."""

    def __init__(self) -> None:
        self.loss: list[torch.Tensor] = []
        self.true: list[torch.Tensor] = []
        self.prob: list[torch.Tensor] = []

    def attach(self, evaluator: Engine) -> None:
        evaluator.add_event_handler(Events.ITERATION_COMPLETED, self.update)

    def update(self, engine: Engine) -> None:
        log_probs, y = engine.state.output
        log_probs = log_probs.detach().float()
        self.loss.append(-log_probs.gather(1, y.unsqueeze(1)).squeeze(1).cpu())
        self.true.append(y.cpu())
        self.prob.append(log_probs.exp().cpu())

    def top(self, n: int) -> list[dict[str, Any]]:
        """The ``n`` images with the highest loss: index, true and predicted digit, their probabilities, loss."""
        loss, true, prob = torch.cat(self.loss), torch.cat(self.true), torch.cat(self.prob)
        values, order = loss.topk(min(n, len(loss)))
        rows = []
        for i, value in zip(order.tolist(), values.tolist(), strict=True):
            t, p = int(true[i]), int(prob[i].argmax())
            rows.append(
                {
                    "index": i,
                    "true": t,
                    "pred": p,
                    "probability": float(prob[i, p]),
                    "true_probability": float(prob[i, t]),
                    "loss": value,
                }
            )
        return rows


def most_confused(matrix: torch.Tensor, n: int = 5) -> list[dict[str, int]]:
    """The ``n`` largest off-diagonal cells: (true, predicted, count), most frequent first."""
    off = matrix.clone().long()
    off.fill_diagonal_(0)
    counts, flat = off.flatten().topk(n)
    return [
        {"true": int(i) // off.shape[1], "pred": int(i) % off.shape[1], "count": int(c)}
        for c, i in zip(counts.tolist(), flat.tolist(), strict=True)
        if c > 0
    ]


def evaluate(
    trained: TrainedModel,
    images: torch.Tensor,
    targets: torch.Tensor,
    device: torch.device,
    batch_size: int = 1000,
    top: int = 16,
    dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """Evaluate ``trained`` on uint8 ``images`` (N, 28, 28) with labels ``targets``; the report as a dict.

    ``dtype``: the autocast dtype (None = fp32); the run's own makes the numbers match its last epoch's.
    """
    model = trained.model.to(device).eval()
    evaluator = create_evaluator(model, device, dtype)
    precision = Precision(average=False, device=device)
    recall = Recall(average=False, device=device)
    extra = {
        "precision": precision,
        "recall": recall,
        "f1": Fbeta(1.0, average=False, precision=precision, recall=recall),
        "confusion": ConfusionMatrix(CLASSES, device=device),
    }
    for name, metric in extra.items():
        metric.attach(evaluator, name)
    per_image = PerImageLosses()
    per_image.attach(evaluator)
    m = evaluator.run(TensorEvalLoader(images, targets, batch_size, device)).metrics

    confusion = m["confusion"].cpu().long()
    support = confusion.sum(1)
    per_class = [
        {
            "digit": d,
            "support": int(support[d]),
            "precision": float(m["precision"][d]),
            "recall": float(m["recall"][d]),
            "f1": float(m["f1"][d]),
        }
        for d in range(CLASSES)
    ]
    return {
        "model_file": str(trained.source),
        "model": trained.spec,
        "model_args": trained.model_args,
        "parameters": trained.parameters,
        "samples": len(targets),
        "test_loss": float(m["loss"]),
        "test_acc": 100.0 * float(m["accuracy"]),
        "macro": {k: float(m[k].mean()) for k in ("precision", "recall", "f1")},
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
        "most_confused": most_confused(confusion),
        "top_losses": per_image.top(top),
    }


def write_report(report: dict[str, Any], images: torch.Tensor, out: Path) -> list[Path]:
    """``evaluation.json``, ``confusion_matrix.png`` and ``top_losses.png`` in ``out``."""
    written = [save_json(out / "evaluation.json", report)]
    fig = confusion_matrix_figure(torch.tensor(report["confusion_matrix"]))
    fig.axes[0].set_title(f"Confusion matrix: {report['samples']:,} test images, {report['test_acc']:.2f}% correct")
    written.append(save_figure(fig, out / "confusion_matrix.png", dpi=100))
    rows = report["top_losses"]
    if rows:
        cols = min(4, len(rows))
        pics = torch.stack([images[r["index"]].float() / 255.0 for r in rows]).unsqueeze(1)
        titles = [
            f"#{r['index']} true {r['true']} pred {r['pred']}\np={r['probability']:.2f} loss {r['loss']:.1f}"
            for r in rows
        ]
        fig = image_grid(
            pics,
            titles,
            rows=math.ceil(len(rows) / cols),
            cols=cols,
            figsize=(cols * 2.4, math.ceil(len(rows) / cols) * 2.6),
        )
        for ax in fig.axes:
            ax.title.set_fontsize(9)
        fig.suptitle("Top losses: the test images the model is most wrong about")
        fig.tight_layout()
        written.append(save_figure(fig, out / "top_losses.png", dpi=100))
    return written
