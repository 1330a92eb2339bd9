"""MNIST data: the seed's transforms and loaders, and the device-resident fast path.

Two pipelines feed the same engines:

* ``torchvision``: the seed's PIL transforms in DataLoader workers (fidelity, the seed API).
* ``tensor``: MNIST read straight from the idx files (``read_mnist``, no torchvision) and kept
  on the training device as uint8; each batch is gathered with a device permutation and
  augmented in one batched ``grid_sample`` with the seed's distribution. No per-sample
  Python, no host round trip.

torchvision is imported only by the functions that need it (its import costs more than a
second): the tensor pipeline never loads it.

All randomness of the tensor pipeline is a pure function of ``(seed, epoch)``, so a run
resumed at any iteration sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from mnist_ignite.config.settings import default_data_dir
from mnist_ignite.errors import DataError

if TYPE_CHECKING:
    from torchvision import datasets, transforms

__all__ = [
    "MNIST_MEAN",
    "MNIST_STD",
    "DataError",
    "EpochParams",
    "MnistTensors",
    "ResumableBatches",
    "TensorEvalLoader",
    "TensorTrainLoader",
    "augment",
    "check_mnist_files",
    "default_data_dir",
    "denormalize",
    "epoch_params",
    "get_test_transforms",
    "get_train_transforms",
    "load_mnist",
    "make_torchvision_loader",
    "normalize",
    "preview",
    "read_mnist",
    "read_test_images",
]

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
ZOOM_P = 0.1  # the seed's RandomApply([CenterCrop(22)], p=0.1)
ZOOM_SCALE = 22 / 28  # centre crop 22 resized back to 28: sampling grid shrinks by 22/28
MAX_ANGLE = 15.0  # the seed's RandomRotation((-15, 15))

_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_FIX = "Put the four MNIST idx files (train/t10k images and labels) under {raw}, or pass --data-dir."


def get_train_transforms() -> transforms.Compose:
    """The seed's training transforms (PIL)."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.RandomApply([transforms.CenterCrop(22)], p=ZOOM_P),
            transforms.Resize((28, 28)),
            transforms.RandomRotation((-MAX_ANGLE, MAX_ANGLE), fill=0),
            transforms.ToTensor(),
            transforms.Normalize((MNIST_MEAN,), (MNIST_STD,)),
        ]
    )


def get_test_transforms() -> transforms.Compose:
    """The seed's test transforms (PIL)."""
    from torchvision import transforms

    return transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])


def _check_idx(path: Path, magic: int, dims: tuple[int, ...]) -> int:
    """Validate one idx file's header and size; return its item count."""
    raw = path.parent
    if path.exists() and not path.is_file():
        raise DataError(f"MNIST file {path} is not a regular file (a folder, FIFO or device): refusing to read it")
    if not path.is_file():
        raise DataError(f"MNIST file missing: {path}. " + _FIX.format(raw=raw))
    with path.open("rb") as f:
        header = f.read(4 + 4 * (1 + len(dims)))
    if len(header) < 4 + 4 * (1 + len(dims)):
        raise DataError(f"MNIST file truncated (no complete header): {path}. " + _FIX.format(raw=raw))
    values = [int.from_bytes(header[i : i + 4], "big") for i in range(0, len(header), 4)]
    if values[0] != magic:
        raise DataError(
            f"MNIST file corrupt: {path} has magic number {values[0]}, expected {magic}. " + _FIX.format(raw=raw)
        )
    count, shape = values[1], tuple(values[2:])
    if shape != dims:
        raise DataError(
            f"MNIST file has the wrong item shape: {path} holds {shape}, expected {dims}. " + _FIX.format(raw=raw)
        )
    expected = len(header) + count * math.prod(dims)
    size = path.stat().st_size
    if size != expected:
        raise DataError(
            f"MNIST file truncated or padded: {path} is {size} bytes, its header implies {expected}. "
            + _FIX.format(raw=raw)
        )
    return count


def check_mnist_files(root: str | os.PathLike, train: bool) -> None:
    """Check that the split's idx files exist, have sane headers, and agree on their count."""
    raw = Path(root) / "MNIST" / "raw"
    images, labels = (raw / name for name in _FILES[train])
    n_images = _check_idx(images, 2051, (28, 28))
    n_labels = _check_idx(labels, 2049, ())
    if n_images != n_labels:
        raise DataError(f"MNIST files disagree: {images} has {n_images} images, {labels} has {n_labels} labels.")
    if n_images == 0:  # every command that reads it (train, evaluate, export, lr-find) would divide by it
        split = "training" if train else "test"
        raise DataError(f"the MNIST {split} set under {root} holds no images ({images.name} counts 0)")


def _download_if_missing(root: str | os.PathLike, train: bool, download: bool) -> None:
    """Fetch the split with torchvision when its files are absent and ``download`` allows it."""
    raw = Path(root) / "MNIST" / "raw"
    if not download or all((raw / name).is_file() for name in _FILES[train]):
        return
    from torchvision import datasets

    made = [p for p in (Path(root), raw.parent, raw) if not p.exists()]
    try:
        datasets.MNIST(str(root), train=train, download=True)
    except Exception as err:  # network errors come in many types; the fix is the same
        for folder in reversed(made):  # leave no empty MNIST/raw tree behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        reason = " ".join(str(err).split())
        raise DataError(
            f"MNIST not found under {raw} and the download failed ({type(err).__name__}: {reason}). "
            + _FIX.format(raw=raw)
        ) from None


def load_mnist(
    root: str | os.PathLike, train: bool, transform: object | None = None, download: bool = True
) -> datasets.MNIST:
    """torchvision's MNIST from ``root``, downloading only when files are absent, with clear errors."""
    from torchvision import datasets

    _download_if_missing(root, train, download)
    check_mnist_files(root, train)
    return datasets.MNIST(str(root), train=train, download=False, transform=transform)


@dataclass(frozen=True)
class MnistTensors:
    """One MNIST split as tensors: ``data`` uint8 (N, 28, 28), ``targets`` int64 (N,).

    The same two attributes (and values) as torchvision's ``MNIST``, without its import.
    """

    data: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return len(self.targets)


def _read_idx(path: Path, header: int) -> torch.Tensor:
    """The payload of a checked idx file as a flat uint8 tensor (one read, no copy after it)."""
    size = path.stat().st_size
    return torch.from_file(str(path), shared=False, size=size, dtype=torch.uint8)[header:]


def read_mnist(root: str | os.PathLike, train: bool, download: bool = True) -> MnistTensors:
    """The split's idx files read straight into tensors, after the same checks as ``load_mnist``."""
    _download_if_missing(root, train, download)
    check_mnist_files(root, train)
    raw = Path(root) / "MNIST" / "raw"
    images, labels = (raw / name for name in _FILES[train])
    data = _read_idx(images, 16).view(-1, 28, 28)
    return MnistTensors(data, _read_idx(labels, 8).long())


def read_test_images(root: str | os.PathLike, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` MNIST test images as uint8 (N, 28, 28) and their labels (to judge a trained model)."""
    split = read_mnist(root, train=False)
    n = len(split) if limit is None else min(limit, len(split))
    return split.data[:n], split.targets[:n]


def _first(dataset: Dataset, n: int | None) -> Dataset:
    return dataset if n is None or n >= len(dataset) else Subset(dataset, range(n))  # type: ignore[arg-type]


def make_torchvision_loader(
    dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int, seed: int, limit: int | None = None
) -> DataLoader:
    """The seed's DataLoader over the first ``limit`` samples; shuffling seeded for repeatable runs."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        _first(dataset, limit),
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        generator=generator,
        persistent_workers=num_workers > 0,
    )


@dataclass(frozen=True)
class EpochParams:
    """One epoch's randomness: sample order, rotation angle and zoom flag per position."""

    order: torch.Tensor
    angles: torch.Tensor
    zoom: torch.Tensor


def _mix(*values: int) -> int:
    """A 63-bit seed from a few ints (splitmix-style), so nearby epochs get unrelated streams."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2))) & 0xFFFFFFFFFFFFFFFF
        h = (h * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return h >> 1


def epoch_params(seed: int, epoch: int, n: int, device: torch.device | str = "cpu") -> EpochParams:
    """Order and augmentation of epoch ``epoch`` (1-based), drawn on the CPU so every device agrees."""
    g = torch.Generator().manual_seed(_mix(seed, epoch))
    order = torch.randperm(n, generator=g)
    angles = (torch.rand(n, generator=g) * 2 - 1) * MAX_ANGLE
    zoom = torch.rand(n, generator=g) < ZOOM_P
    return EpochParams(order.to(device), angles.to(device), zoom.to(device))


def augment(images: torch.Tensor, angles: torch.Tensor, zoom: torch.Tensor) -> torch.Tensor:
    """The seed's train augmentation on a float batch (N,1,28,28) in [0,1], one transform per image.

    Zoomed images are resampled bilinearly (CenterCrop(22) + Resize(28) in PIL), then every
    image is rotated by its angle with nearest sampling and zero fill (RandomRotation's default).
    """
    n = images.shape[0]
    eye = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
    scale = torch.where(zoom, ZOOM_SCALE, 1.0).to(images.dtype)
    eye[:, 0, 0] = scale
    eye[:, 1, 1] = scale
    grid = F.affine_grid(eye, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    rad = torch.deg2rad(angles.to(images.dtype))
    cos, sin = torch.cos(rad), torch.sin(rad)
    rot = torch.zeros_like(eye)
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = cos, -sin, sin, cos
    grid = F.affine_grid(rot, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _to_unit(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1], what ToTensor gives."""
    return images_u8.unsqueeze(1).float() / 255.0


def normalize(images: torch.Tensor) -> torch.Tensor:
    """The seed's Normalize((0.1307,), (0.3081,))."""
    return (images - MNIST_MEAN) / MNIST_STD


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Back to [0, 1] pixel values, for showing images."""
    return images * MNIST_STD + MNIST_MEAN


def preview(train_data: Iterable[tuple[torch.Tensor, torch.Tensor]], n: int = 12) -> tuple[torch.Tensor, list[str]]:
    """The first ``n`` training images of a loader, on the CPU in [0, 1], with their labels as titles."""
    x, y = next(iter(train_data))
    return denormalize(x[:n].detach().float().cpu()), [str(int(v)) for v in y[:n]]


class TensorTrainLoader:
    """Training batches from device-resident uint8 MNIST; resumable at any iteration.

    ``batches_from(iteration)`` yields the rest of the epoch that holds global iteration
    ``iteration`` (0-based count of finished iterations), exactly as an uninterrupted run would.
    """

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int,
        seed: int,
        device: torch.device,
        shard: tuple[int, int] = (0, 1),
        chunk_batches: int | None = None,
        augment: bool = True,
    ) -> None:
        self.augment = augment  # off for --overfit-batches: the same images every epoch
        self.images = images.to(device)
        self.targets = targets.to(device)
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.rank, self.world = shard
        self.per_rank = math.ceil(len(self.images) / self.world)
        # batches augmented per call: the whole epoch at once on a GPU (a handful of kernels per
        # epoch instead of per step), one batch at a time on a CPU (cache-friendly, low memory)
        self.chunk_batches = chunk_batches or (1 if device.type == "cpu" else len(self))

    def __len__(self) -> int:
        return math.ceil(self.per_rank / self.batch_size)

    def batches_from(self, iteration: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, start = divmod(iteration, len(self))
        p = epoch_params(self.seed, epoch + 1, len(self.images), self.device)
        # every rank draws the same epoch order and takes its own strided shard of it
        order = p.order[self.rank :: self.world]
        angles, zoom = p.angles[self.rank :: self.world], p.zoom[self.rank :: self.world]
        b = self.batch_size
        for first in range(start, len(self), self.chunk_batches):
            last = min(first + self.chunk_batches, len(self))
            sl = slice(first * b, last * b)
            idx = order[sl]
            x = _to_unit(self.images[idx])
            if self.augment:
                x = augment(x, angles[sl], zoom[sl])
            x, y = normalize(x), self.targets[idx]
            for i in range(last - first):
                yield x[i * b : (i + 1) * b], y[i * b : (i + 1) * b]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches_from(0)


class ResumableBatches:
    """The batches that follow ``trainer.state.iteration``, for the trainer to run over.

    Ignite calls ``iter()`` at the start of each epoch and once when a run resumes; asking the
    loader for the batches from the current iteration makes a mid-epoch resume exact (and gives
    each new epoch its own order and augmentation when an lr search runs for several epochs).
    """

    def __init__(self, loader: TensorTrainLoader, trainer: Any) -> None:
        self.loader, self.trainer = loader, trainer

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.loader.batches_from(self.trainer.state.iteration)


class TensorEvalLoader:
    """Test batches, normalized once and kept on the device."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, batch_size: int, device: torch.device) -> None:
        self.images = normalize(_to_unit(images.to(device)))
        self.targets = targets.to(device)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(len(self)):
            sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
            yield self.images[sl], self.targets[sl]
