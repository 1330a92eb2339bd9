from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Subset

from mnist_ignite import utils
from mnist_ignite.model import Model, Net, summary


def test_net_has_the_seed_parameter_count() -> None:
    assert sum(p.numel() for p in Net().parameters()) == 593_200


def test_net_shapes_follow_the_seed() -> None:
    net = Net()
    shapes = {}
    for name in ("conv1", "conv2", "conv3", "conv4", "fc1", "fc2"):
        getattr(net, name).register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape)))
    out = net(torch.randn(3, 1, 28, 28))
    assert shapes == {
        "conv1": (3, 32, 26, 26),
        "conv2": (3, 64, 24, 24),
        "conv3": (3, 128, 10, 10),
        "conv4": (3, 256, 8, 8),
        "fc1": (3, 50),
        "fc2": (3, 10),
    }
    assert out.shape == (3, 10)
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(3))  # log-probabilities


def test_summary_lists_layers_shapes_and_total() -> None:
    text = summary(Net())
    assert "Conv2d-1" in text and "[-1, 32, 26, 26]" in text and "Linear-2" in text
    assert "Total params: 593,200" in text


@pytest.fixture(scope="module")
def loaders(data_dir: str) -> tuple[DataLoader, DataLoader]:
    train, test = utils.get_train_and_test_mnist_data(data_dir)
    torch.manual_seed(0)
    return (
        DataLoader(Subset(train, range(640)), batch_size=64, shuffle=True),
        DataLoader(Subset(test, range(200)), batch_size=100),
    )


def test_seed_notebook_flow(loaders: tuple[DataLoader, DataLoader], capsys: pytest.CaptureFixture[str]) -> None:
    train_loader, test_loader = loaders
    assert isinstance(Model.check_cuda_availability(), bool)
    model = Model(train_loader, test_loader, lr=0.01, momentum=0.9, device="cpu")
    model.show_summary()
    results = model.run(num_epochs=2)
    assert results is model.results
    assert set(results) == {"train_losses", "train_acc", "test_losses", "test_acc"}
    assert all(len(v) == 2 for v in results.values())
    assert all(0 <= a <= 100 for a in results["train_acc"] + results["test_acc"])
    assert model.trainer.state.epoch == 2 and model.trainer.state.iteration == 20
    loss, acc = model.train()  # one more epoch continues, it does not restart
    assert loss == model.results["train_losses"][-1] and acc == model.results["train_acc"][-1]
    assert model.trainer.state.epoch == 3 and len(model.results["train_losses"]) == 3
    out = capsys.readouterr().out
    assert "Total params: 593,200" in out and "Test set: Average loss" in out


def test_model_accepts_learning_rate_alias(loaders: tuple[DataLoader, DataLoader]) -> None:
    model = Model(*loaders, learning_rate=0.05, device="cpu", handlers=())
    assert model.optimizer.param_groups[0]["lr"] == 0.05


def test_model_steps_lr_per_epoch_like_the_seed(loaders: tuple[DataLoader, DataLoader]) -> None:
    train_loader, test_loader = loaders
    tiny = DataLoader(Subset(train_loader.dataset, range(64)), batch_size=64)
    model = Model(tiny, test_loader, device="cpu", handlers=("lr_schedule",))
    lrs = []
    for _ in range(17):
        model.train()
        lrs.append(model.optimizer.param_groups[0]["lr"])
    assert lrs[:15] == [0.01] * 15
    assert lrs[15:] == pytest.approx([0.001, 0.001])
