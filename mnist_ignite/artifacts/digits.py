"""Any picture of a handwritten digit, made into an MNIST image the way MNIST itself was made.

LeCun et al. fit each NIST digit into a 20x20 box keeping its aspect ratio (anti-aliased), then
placed it in a 28x28 field so that its centre of mass sits at the centre: white ink on black.
:func:`to_mnist` does the same to a PNG/JPEG of any size and polarity: grayscale, invert when the
background is light, stretch background..ink to 0..1, crop to the ink's bounding box, fit 20x20,
place by centre of mass. A model trained on MNIST then sees what it was trained on.

:func:`load_digit` reads a file or an open binary stream (what ``mnist-ignite serve`` receives),
with PIL limited to the raster formats of :data:`PIL_FORMATS`: a file named ``.png`` that is an
EPS would otherwise be handed to Ghostscript. ``max_pixels`` refuses a decompression bomb from its
header, before a single pixel is decoded.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_ignite.errors import BlankDigitError, DigitImageError, ImageTooLargeError
from mnist_ignite.log import warn

__all__ = ["IMAGE_SUFFIXES", "PIL_FORMATS", "DigitImageError", "find_images", "load_digit", "shrunk", "to_mnist"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# the formats PIL may read them as (a camera's MPO comes through JPEG); never EPS, PDF or other plugins
PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
BOX = 20  # MNIST's digit box
FIELD = 28  # MNIST's image size
MIN_CONTRAST = 32 / 255  # ink must differ from the background by this much, else the image is blank
MAX_SIDE = 1024  # larger pictures are shrunk to this before anything else
INK = 0.1  # after stretching, pixels above this count as ink for the bounding box (paper noise stays out)


def shrunk(image: Image.Image) -> Image.Image:
    """``image`` at most :data:`MAX_SIDE` on its longer side (a phone photo: the digit ends up 20 pixels tall anyway).

    An integer ``reduce`` first (box filter, no full-size copy), then a box thumbnail for the rest.
    """
    factor = max(image.size) // MAX_SIDE
    if factor >= 2:
        image = image.reduce(factor)
    if max(image.size) > MAX_SIDE:
        image = image.copy()
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BOX)
    return image


def _gray(image: Image.Image) -> np.ndarray:
    """Grayscale in [0, 1]; transparent pixels take the colour that contrasts with the opaque ink."""
    image = ImageOps.exif_transpose(shrunk(image))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as PIL's "L"
        alpha = rgba[..., 3]
        if alpha.min() < 1.0:
            opaque = alpha > 0.5
            ink_is_dark = not opaque.any() or float(gray[opaque].mean()) < 0.5
            background = 1.0 if ink_is_dark else 0.0
            return gray * alpha + background * (1.0 - alpha)
        return gray
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def to_mnist(image: Image.Image) -> torch.Tensor:
    """The MNIST version of ``image``: (28, 28) float in [0, 1], white ink on black.

    Raises:
        BlankDigitError: no ink (a blank or uniform image).
    """
    gray = _gray(image)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    if background > 0.5:  # light paper: ink is dark
        gray, background = 1.0 - gray, 1.0 - background
    peak = float(gray.max())
    if peak - background < MIN_CONTRAST:
        raise BlankDigitError("no ink found (the image is blank or of one colour)")
    ink = np.clip((gray - background) / (peak - background), 0.0, 1.0)
    rows, cols = np.nonzero(ink > INK)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = ink.shape
    scale = BOX / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    digit = torch.from_numpy(np.ascontiguousarray(ink))[None, None]
    antialias = scale < 1  # anti-aliased shrinking, as MNIST's normalization; plain bilinear growing
    digit = F.interpolate(digit, size=size, mode="bilinear", align_corners=False, antialias=antialias)[0, 0]
    digit = digit.clamp_(0.0, 1.0)
    # integer shift that puts the centre of mass at pixel (14, 14), MNIST's own placement
    mass = digit.sum()
    ys = torch.arange(size[0], dtype=digit.dtype)
    xs = torch.arange(size[1], dtype=digit.dtype)
    cy = float((digit.sum(1) * ys).sum() / mass)
    cx = float((digit.sum(0) * xs).sum() / mass)
    top = min(max(round(FIELD / 2 - cy), 0), FIELD - size[0])
    left = min(max(round(FIELD / 2 - cx), 0), FIELD - size[1])
    out = torch.zeros(FIELD, FIELD)
    out[top : top + size[0], left : left + size[1]] = digit
    return out


def load_digit(source: str | os.PathLike | IO[bytes], max_pixels: int | None = None) -> torch.Tensor:
    """:func:`to_mnist` of the image file (or open binary stream) ``source``.

    Args:
        source: a path, or a binary stream positioned at the image's first byte.
        max_pixels: refuse images larger than this (width x height, read from the header before decoding);
            None leaves PIL's own decompression-bomb limit.

    Raises:
        DigitImageError: not an image, unreadable, or blank (:class:`BlankDigitError`), or larger than
            ``max_pixels`` (:class:`ImageTooLargeError`).
    """
    if isinstance(source, (str, os.PathLike)):
        try:
            info = os.stat(source)
        except OSError as err:
            raise DigitImageError(f"cannot read it ({err.strerror or err})") from None
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the read for ever, a device never end
            raise DigitImageError("not a regular file (a FIFO, socket or device): refusing to read it")
    try:
        with warnings.catch_warnings(record=True) as opening:  # PIL's own warnings, worded as one line each below
            warnings.simplefilter("always")
            image = Image.open(source, formats=PIL_FORMATS)
        with image:
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageTooLargeError(
                    f"the image is {width}x{height} pixels, more than the {max_pixels:,} taken: refused before decoding"
                )
            with warnings.catch_warnings(record=True) as loading:
                warnings.simplefilter("always")
                if image.format == "JPEG":  # decoded at 1/2, 1/4 or 1/8 scale: a big photo never whole in memory
                    image.draft(image.mode, (MAX_SIDE, MAX_SIDE))
                image.load()
            name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the uploaded image"
            for message in dict.fromkeys(_one_line(w, width, height) for w in [*opening, *loading]):
                warn(f"{name}: {message}")
            return to_mnist(image)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        if isinstance(err, DigitImageError):
            raise
        if isinstance(err, Image.DecompressionBombError):
            raise ImageTooLargeError(f"the image is too large to decode: {err}") from None
        if isinstance(err, UnidentifiedImageError):  # its own text names a stream by its repr
            reason = f"not a {', '.join(PIL_FORMATS[:-1])} or {PIL_FORMATS[-1]} picture"
        else:
            reason = " ".join(str(err).split()) or type(err).__name__
        raise DigitImageError(f"not a readable image ({reason})") from None


def _one_line(said: warnings.WarningMessage, width: int, height: int) -> str:
    """A warning PIL gave while reading, as one line without PIL's source location."""
    if issubclass(said.category, Image.DecompressionBombWarning):
        limit = f" ({Image.MAX_IMAGE_PIXELS:,} pixels)" if Image.MAX_IMAGE_PIXELS else ""
        return f"{width}x{height} pixels, over PIL's decompression-bomb warning size{limit}: decoded anyway"
    return " ".join(str(said.message).split())


def find_images(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Image files named, or found (sorted, not recursive) in the folders named.

    Raises:
        FileNotFoundError: a path does not exist.
        DigitImageError: a folder holds no image files.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DigitImageError(f"{p} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
    return files
