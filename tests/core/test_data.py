from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from mnist_ignite.core.data import (
    MAX_ANGLE,
    MNIST_MEAN,
    MNIST_STD,
    TensorTrainLoader,
    augment,
    check_mnist_files,
    epoch_params,
    get_train_transforms,
    load_mnist,
    read_mnist,
)
from mnist_ignite.errors import DataError

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def copy_raw(data_dir: str, tmp_path: Path) -> Path:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        shutil.copyfile(Path(data_dir) / "MNIST" / "raw" / name, raw / name)
    return raw


def test_missing_files_name_the_folder_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing: .*train-images-idx3-ubyte.*Put the four MNIST idx files"):
        check_mnist_files(tmp_path, train=True)
    with pytest.raises(DataError, match=r"missing: .*t10k-images-idx3-ubyte.*Put the four MNIST idx files"):
        read_mnist(tmp_path, train=False, download=False)


@pytest.mark.parametrize("train", [True, False])
def test_idx_files_read_straight_into_tensors_equal_torchvisions_dataset(data_dir: str, train: bool) -> None:
    ours, theirs = read_mnist(data_dir, train, download=False), load_mnist(data_dir, train, download=False)
    assert len(ours) == len(theirs) == (60000 if train else 10000)
    assert ours.data.dtype == theirs.data.dtype == torch.uint8 and ours.data.shape == theirs.data.shape
    assert ours.targets.dtype == theirs.targets.dtype == torch.int64
    assert torch.equal(ours.data, theirs.data) and torch.equal(ours.targets, theirs.targets)


def test_the_tensor_pipeline_never_imports_torchvision(data_dir: str) -> None:
    code = (
        "import sys, torch; from mnist_ignite.core.data import read_mnist, TensorTrainLoader; "
        f"d = read_mnist({data_dir!r}, True, download=False); "
        "next(iter(TensorTrainLoader(d.data[:64], d.targets[:64], 32, 0, torch.device('cpu')))); "
        "print('torchvision' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:100], "truncated"),
        (lambda b: b[:-1000], "truncated or padded"),
        (lambda b: b"\x00\x00\x08\x01" + b[4:], "magic number 2049, expected 2051"),
        (lambda b: b[:8] + (32).to_bytes(4, "big") + b[12:], r"wrong item shape.*\(32, 28\)"),
    ],
)
@pytest.mark.parametrize("reader", [load_mnist, read_mnist])
def test_corrupt_image_file_is_reported(data_dir: str, tmp_path: Path, damage, message: str, reader) -> None:
    raw = copy_raw(data_dir, tmp_path)
    path = raw / "t10k-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=message):
        reader(tmp_path, train=False, download=False)


def test_labels_that_disagree_with_the_images_are_reported(data_dir: str, tmp_path: Path) -> None:
    raw = copy_raw(data_dir, tmp_path)
    path = raw / "t10k-labels-idx1-ubyte"
    labels = path.read_bytes()
    path.write_bytes(labels[:4] + (100).to_bytes(4, "big") + labels[8:108])  # a valid file of 100 labels
    with pytest.raises(DataError, match=r"disagree: .* 10000 images, .* 100 labels"):
        read_mnist(tmp_path, train=False, download=False)


@pytest.mark.parametrize("reader", [load_mnist, read_mnist])
def test_no_network_and_no_files_gives_one_clear_error(tmp_path: Path, reader) -> None:
    with pytest.raises(DataError, match="download failed"):
        reader(tmp_path / "data", train=False, download=True)
    assert not (tmp_path / "data").exists()  # no empty MNIST/raw tree left behind


def test_epoch_params_are_a_pure_function_of_seed_and_epoch() -> None:
    a, b, c = epoch_params(3, 1, 1000), epoch_params(3, 1, 1000), epoch_params(3, 2, 1000)
    assert torch.equal(a.order, b.order) and torch.equal(a.angles, b.angles)
    assert not torch.equal(a.order, c.order)
    assert sorted(a.order.tolist()) == list(range(1000))


def test_augment_rotation_matches_torchvision(data_dir: str) -> None:
    images = load_mnist(data_dir, train=False, download=False).data[:32].unsqueeze(1).float() / 255
    angles = torch.linspace(-15, 15, 32)
    ours = augment(images, angles, torch.zeros(32, dtype=torch.bool))
    ref = torch.stack([TF.rotate(img, float(a), fill=0) for img, a in zip(images, angles, strict=True)])
    mismatch = (ours - ref).abs().gt(1e-3).float().mean().item()
    assert mismatch < 0.01  # nearest sampling: a few boundary pixels may round the other way


def test_augment_zoom_matches_center_crop_and_resize(data_dir: str) -> None:
    u8 = load_mnist(data_dir, train=False, download=False).data[:16]
    ours = augment(u8.unsqueeze(1).float() / 255, torch.zeros(16), torch.ones(16, dtype=torch.bool))
    ref = torch.stack([TF.to_tensor(TF.resize(TF.center_crop(Image.fromarray(x.numpy()), 22), [28, 28])) for x in u8])
    assert (ours - ref).abs().mean().item() < 0.01


def test_images_in_one_batch_get_different_transforms(data_dir: str) -> None:
    ds = load_mnist(data_dir, train=False, download=False)
    same = ds.data[:1].repeat(64, 1, 1)
    loader = TensorTrainLoader(same, ds.targets[:64], batch_size=64, seed=0, device=torch.device("cpu"))
    x, _ = next(iter(loader))
    distinct = {tuple(img.flatten().tolist()) for img in x}
    # one transform per image: with nearest sampling, angles a hair apart can still give equal pixels
    assert len(distinct) >= 40
    assert len(set(epoch_params(0, 1, 64).angles.tolist())) == 64


def test_augmentation_matches_the_torchvision_pipeline_statistically(data_dir: str) -> None:
    n = 3000
    ds = load_mnist(data_dir, train=True, download=False)
    p = epoch_params(0, 1, n)
    assert abs(p.zoom.float().mean().item() - 0.1) < 0.02
    assert p.angles.abs().max().item() <= MAX_ANGLE
    assert abs(p.angles.std().item() - 30 / 12**0.5) < 0.5  # uniform(-15, 15): std 8.66
    ours = augment(ds.data[:n].unsqueeze(1).float() / 255, p.angles, p.zoom)
    ours = (ours - MNIST_MEAN) / MNIST_STD
    torch.manual_seed(0)
    tf = get_train_transforms()
    ref = torch.stack([tf(Image.fromarray(x.numpy())) for x in ds.data[:n]])
    assert abs(ours.mean().item() - ref.mean().item()) < 0.01
    assert abs(ours.std().item() - ref.std().item()) < 0.01


def test_loader_resumes_mid_epoch_with_the_same_batches() -> None:
    images = torch.randint(0, 255, (300, 28, 28), dtype=torch.uint8)
    loader = TensorTrainLoader(images, torch.arange(300) % 10, batch_size=64, seed=5, device=torch.device("cpu"))
    full = [b for _ in range(2) for b in loader.batches_from(_ * len(loader))]
    tail = list(loader.batches_from(len(loader) + 2))
    for (xa, ya), (xb, yb) in zip(full[len(loader) + 2 :], tail, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert len(full[-1][1]) == 300 - 4 * 64  # the last partial batch is kept, like the seed's loader


def test_loader_shards_cover_the_epoch_once() -> None:
    images = torch.zeros(100, 28, 28, dtype=torch.uint8)
    targets = torch.arange(100)
    seen = []
    for rank in range(2):
        loader = TensorTrainLoader(images, targets, 10, seed=1, device=torch.device("cpu"), shard=(rank, 2))
        seen += [int(v) for _, y in loader for v in y]
    assert sorted(seen) == list(range(100))


def test_augmenting_a_chunk_of_batches_gives_the_same_batches() -> None:
    images = torch.randint(0, 255, (300, 28, 28), dtype=torch.uint8)
    args = (images, torch.arange(300) % 10, 64, 5, torch.device("cpu"))
    one = list(TensorTrainLoader(*args, chunk_batches=1).batches_from(1))
    whole = list(TensorTrainLoader(*args, chunk_batches=5).batches_from(1))
    assert len(one) == len(whole) == 4
    for (xa, ya), (xb, yb) in zip(one, whole, strict=True):
        torch.testing.assert_close(xa, xb, rtol=0, atol=1e-6)
        assert torch.equal(ya, yb)


@pytest.mark.parametrize("split", ["training", "test"])
def test_an_idx_file_counting_no_images_is_one_line_for_every_reader(split: str, tmp_path: Path) -> None:
    """train, evaluate, export and lr-find all read through check_mnist_files: none divides by zero."""
    import os

    from mnist_ignite.core.data import check_mnist_files, read_mnist, read_test_images
    from mnist_ignite.testing import fake_mnist

    data = fake_mnist(tmp_path, train=0 if split == "training" else 16, test=0 if split == "test" else 16)
    train = split == "training"
    name = "train-images-idx3-ubyte" if train else "t10k-images-idx3-ubyte"
    with pytest.raises(DataError, match=rf"the MNIST {split} set under .* holds no images \({name} counts 0\)"):
        check_mnist_files(data, train)
    with pytest.raises(DataError, match="holds no images"):
        read_test_images(data) if not train else read_mnist(data, True)
    fifo = tmp_path / "fifo" / "MNIST" / "raw"
    fifo.mkdir(parents=True)
    for file in (data / "MNIST" / "raw").iterdir():
        shutil.copy(file, fifo / file.name)
    (fifo / name).unlink()
    os.mkfifo(fifo / name)
    with pytest.raises(DataError, match=r"is not a regular file \(a folder, FIFO or device\)"):
        check_mnist_files(tmp_path / "fifo", train)
