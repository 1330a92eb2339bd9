from __future__ import annotations

from matplotlib.figure import Figure
from torchvision import transforms

from mnist_ignite import utils


def test_train_transforms_are_the_seeds() -> None:
    t = utils.get_train_transforms().transforms
    assert [type(x) for x in t] == [
        transforms.RandomApply,
        transforms.Resize,
        transforms.RandomRotation,
        transforms.ToTensor,
        transforms.Normalize,
    ]
    assert t[0].p == 0.1 and isinstance(t[0].transforms[0], transforms.CenterCrop)
    assert list(t[0].transforms[0].size) == [22, 22] and list(t[1].size) == [28, 28]
    assert list(t[2].degrees) == [-15.0, 15.0] and t[2].fill == 0
    assert t[4].mean == (0.1307,) and t[4].std == (0.3081,)


def test_test_transforms_are_the_seeds() -> None:
    t = utils.get_test_transforms().transforms
    assert [type(x) for x in t] == [transforms.ToTensor, transforms.Normalize]


def test_dataloaders_give_normalized_batches(data_dir: str) -> None:
    train_loader, test_loader = utils.get_train_and_test_mnist_dataloader(
        batch_size=64, data_dir=data_dir, num_workers=0
    )
    x, y = next(iter(test_loader))
    assert x.shape == (64, 1, 28, 28) and y.shape == (64,)
    assert abs(x.mean().item()) < 0.3 and len(train_loader.dataset) == 60_000


def test_plot_train_data_is_a_3x4_labelled_grid(data_dir: str) -> None:
    train_loader, _ = utils.get_train_and_test_mnist_dataloader(batch_size=16, data_dir=data_dir, num_workers=0)
    fig = utils.plot_train_data(train_loader)
    assert isinstance(fig, Figure) and len(fig.axes) == 12
    assert all(ax.get_title().isdigit() for ax in fig.axes)


def test_plot_model_results_has_the_seed_titles() -> None:
    results = {
        "train_losses": [1.0, 0.5],
        "train_acc": [80.0, 90.0],
        "test_losses": [0.4, 0.2],
        "test_acc": [92.0, 95.0],
    }
    fig = utils.plot_model_results(results)
    assert isinstance(fig, Figure)
    assert tuple(fig.get_size_inches()) == (15.0, 10.0)
    assert [ax.get_title() for ax in fig.axes] == ["Training Loss", "Test Loss", "Training Accuracy", "Test Accuracy"]
    assert list(fig.axes[3].lines[0].get_ydata()) == [92.0, 95.0]


def test_dataloaders_take_the_first_n_images_of_each_split(data_dir: str) -> None:
    full_train, full_test = utils.get_train_and_test_mnist_dataloader(batch_size=50, data_dir=data_dir, num_workers=0)
    train_loader, test_loader = utils.get_train_and_test_mnist_dataloader(
        batch_size=50, data_dir=data_dir, num_workers=0, max_train_samples=300, max_test_samples=120
    )
    assert (len(train_loader.dataset), len(test_loader.dataset)) == (300, 120)
    assert (len(train_loader), len(test_loader)) == (6, 3)
    _, first = next(iter(test_loader))
    _, reference = next(iter(full_test))
    assert first.tolist() == reference.tolist()  # the same images as the full split's first ones
    everything, _ = utils.get_train_and_test_mnist_dataloader(data_dir=data_dir, max_train_samples=10**6)
    assert len(everything.dataset) == len(full_train.dataset) == 60_000
