"""The seed's Net, and ``Model``: the seed notebook's API as a thin facade over the Ignite engines.

Notebook flow (unchanged from the seed but for the imports)::

    from mnist_ignite import utils
    from mnist_ignite.model import Model

    train_loader, test_loader = utils.get_train_and_test_mnist_dataloader(batch_size=64)
    model = Model(train_loader, test_loader, lr=0.01, momentum=0.9)
    model.show_summary()
    model.run(num_epochs=20)
    utils.plot_model_results(model.results)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Model", "Net", "summary"]


class Net(nn.Module):
    """ERA Session 5's CNN: four 3x3 convs, two max-pools, two linear layers (593,200 parameters).

    Shapes: 28 -> 26 -> 24 -> 12 -> 10 -> 8 -> 4, then 256*4*4 = 4096 -> 50 -> 10 log-probabilities.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3)
        self.conv4 = nn.Conv2d(128, 256, kernel_size=3)
        self.fc1 = nn.Linear(4096, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the seed writes F.relu(x, 2): the 2 is `inplace`, not a threshold
        x = F.relu(self.conv1(x), inplace=True)
        x = F.relu(F.max_pool2d(self.conv2(x), 2), inplace=True)
        x = F.relu(self.conv3(x), inplace=True)
        x = F.relu(F.max_pool2d(self.conv4(x), 2), inplace=True)
        x = x.reshape(-1, 4096)
        x = F.relu(self.fc1(x), inplace=True)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def summary(model: nn.Module, input_size: Sequence[int] = (1, 28, 28)) -> str:
    """A torchsummary-style table (layer, output shape, parameters) from forward hooks; no extra deps."""
    rows: list[tuple[str, str, int]] = []
    counts: dict[str, int] = {}

    def hook(module: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        kind = type(module).__name__
        counts[kind] = counts.get(kind, 0) + 1
        params = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append((f"{kind}-{counts[kind]}", str([-1, *out.shape[1:]]), params))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    device = next(model.parameters()).device
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(2, *input_size, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    line = "-" * 64
    out = [line, f"{'Layer (type)':>20}  {'Output Shape':>25}  {'Param #':>13}", "=" * 64]
    out += [f"{name:>20}  {shape:>25}  {n:>13,}" for name, shape, n in rows]
    out += ["=" * 64, f"Total params: {total:,}", f"Trainable params: {trainable:,}", line]
    return "\n".join(out)


class Model:
    """The seed's ``Model``: SGD + StepLR(15, 0.1) on the Net, one epoch per ``train()``/``test()``.

    It runs on the project's Ignite trainer and evaluator with the same plugins as the CLI
    (``lr_schedule`` and ``progress`` by default), over any loaders the caller builds.

    Args:
        train_loader: iterable of ``(images, labels)`` batches with ``len()``.
        test_loader: the same for evaluation.
        lr: SGD learning rate (``learning_rate=`` is accepted too, as in the seed).
        momentum: SGD momentum.
        device: ``auto`` (cuda, mps, cpu) or a device name.
        handlers: plugin names or specs to attach (see ``mnist-ignite --list-handlers``).
        output_dir: where file-writing plugins put their files.
    """

    def __init__(
        self,
        train_loader: Iterable,
        test_loader: Iterable,
        lr: float = 0.01,
        momentum: float = 0.9,
        *,
        learning_rate: float | None = None,
        device: str = "auto",
        handlers: Sequence[str] = ("lr_schedule", "progress"),
        output_dir: str | Path = ".",
    ) -> None:
        from mnist_ignite.config import Config
        from mnist_ignite.engine import create_evaluator, create_trainer, select_device
        from mnist_ignite.plugins import RunContext, build_plugin, guarded_attach, load_plugin_class

        self.train_loader = train_loader
        self.test_loader = test_loader
        self.lr = lr if learning_rate is None else learning_rate
        self.momentum = momentum
        self.device = select_device(device)
        self.model = Net().to(self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.lr, momentum=momentum)
        self.trainer = create_trainer(self.model, self.optimizer, self.device)
        self.evaluator = create_evaluator(self.model, self.device)
        self.results: dict[str, list[float]] = {"train_losses": [], "train_acc": [], "test_losses": [], "test_acc": []}
        self.config = Config(lr=self.lr, momentum=momentum, device=device, handlers=list(handlers))
        self.ctx = RunContext(
            trainer=self.trainer,
            evaluator=self.evaluator,
            model=self.model,
            optimizer=self.optimizer,
            config=self.config,
            output_dir=Path(output_dir),
            device=self.device,
            train_data=train_loader,
            eval_data=test_loader,
            epoch_length=len(train_loader),  # type: ignore[arg-type]
        )
        for spec in handlers:
            plugin = build_plugin(spec, load_plugin_class(spec), {})
            with guarded_attach(plugin.name, self.trainer, self.evaluator):
                plugin.attach(self.ctx)
            self.ctx.plugins.append(plugin)

    @staticmethod
    def check_cuda_availability() -> bool:
        """Print and return whether CUDA is available (the seed's helper)."""
        available = torch.cuda.is_available()
        print("CUDA Available?", available)
        return available

    def show_summary(self, input_size: Sequence[int] = (1, 28, 28)) -> str:
        """Print the layer table and return it."""
        text = summary(self.model, input_size)
        print(text)
        return text

    def train(self) -> tuple[float, float]:
        """Train one epoch; append and return (running loss, running accuracy %)."""
        state = self.trainer.run(self.train_loader, max_epochs=self.trainer.state.epoch + 1)
        loss, acc = float(state.metrics["train_loss"]), 100.0 * float(state.metrics["train_acc"])
        self.results["train_losses"].append(loss)
        self.results["train_acc"].append(acc)
        return loss, acc

    def test(self) -> tuple[float, float]:
        """Evaluate without gradients; append and return (mean loss, accuracy %)."""
        metrics = self.evaluator.run(self.test_loader).metrics
        loss, acc = float(metrics["loss"]), 100.0 * float(metrics["accuracy"])
        self.results["test_losses"].append(loss)
        self.results["test_acc"].append(acc)
        print(f"Test set: Average loss: {loss:.4f}, Accuracy: {acc:.2f}%")
        return loss, acc

    def run(self, num_epochs: int = 20) -> dict[str, list[float]]:
        """The seed's loop: train and test each epoch (the LR schedule steps on trainer events)."""
        for epoch in range(1, num_epochs + 1):
            print(f"Epoch {epoch}")
            self.train()
            self.test()
        return self.results
