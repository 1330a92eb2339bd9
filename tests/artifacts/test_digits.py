"""MNIST-style preprocessing of arbitrary digit pictures: polarity, size, alpha, placement, bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_ignite.artifacts.digits import MAX_SIDE, find_images, load_digit, shrunk, to_mnist
from mnist_ignite.core.data import load_mnist
from mnist_ignite.errors import DigitImageError


@pytest.fixture(scope="module")
def mnist_test(data_dir: str) -> tuple[torch.Tensor, torch.Tensor]:
    ds = load_mnist(data_dir, train=False, download=False)
    return ds.data[:50], ds.targets[:50]


def _paper(digit: np.ndarray, scale: int = 3) -> Image.Image:
    """A digit as someone would draw it: black ink on white paper, larger than MNIST."""
    h, w = digit.shape
    return Image.fromarray(255 - digit).resize((w * scale, h * scale), Image.Resampling.BICUBIC)


def test_mnist_digit_drawn_on_paper_comes_back_close_to_the_original(mnist_test) -> None:
    images, _ = mnist_test
    diffs = []
    for img in images:
        back = to_mnist(_paper(img.numpy()))
        diffs.append(float((back - img.float() / 255).abs().mean()))
    assert np.mean(diffs) < 0.05, np.mean(diffs)


def test_polarity_and_size_do_not_matter(mnist_test) -> None:
    img = mnist_test[0][3].numpy()
    white_on_black = Image.fromarray(img).resize((84, 84), Image.Resampling.BICUBIC)
    black_on_white = Image.fromarray(255 - np.asarray(white_on_black))
    a, b = to_mnist(white_on_black), to_mnist(black_on_white)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    small = to_mnist(Image.fromarray(255 - img))
    assert float((small - a).abs().mean()) < 0.05


def test_mnist_geometry_box_20_centre_of_mass_14() -> None:
    canvas = np.full((300, 200), 230, np.uint8)  # gray paper, a tall stroke off-centre
    canvas[40:200, 20:60] = 30
    out = to_mnist(Image.fromarray(canvas))
    rows, cols = torch.nonzero(out > 0.5, as_tuple=True)
    assert int(rows.max() - rows.min() + 1) == 20  # the long side fills the 20-pixel box
    assert 4 <= int(cols.max() - cols.min() + 1) <= 6  # aspect ratio kept: 40/160 * 20 = 5
    ys = torch.arange(28.0)
    cy = float((out.sum(1) * ys).sum() / out.sum())
    cx = float((out.sum(0) * ys).sum() / out.sum())
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert out.min() == 0 and out.max() == pytest.approx(1.0, abs=1e-4)


def test_transparent_background_with_dark_ink(mnist_test) -> None:
    img = mnist_test[0][0].numpy()
    rgba = np.zeros((28, 28, 4), np.uint8)  # black ink, alpha = the ink
    rgba[..., 3] = img
    out = to_mnist(Image.fromarray(rgba, mode="RGBA"))
    reference = to_mnist(Image.fromarray(255 - img))
    torch.testing.assert_close(out, reference, atol=2e-2, rtol=0)


def test_exif_rotated_photo_and_large_picture(mnist_test, tmp_path: Path) -> None:
    upright = _paper(mnist_test[0][5].numpy(), scale=60)  # 1680x1680: shrunk before processing
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # how a sideways camera stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "photo.png"
    stored.save(path, exif=exif)
    # shrunk before it is turned upright (no full-size copy): the same digit to rounding
    torch.testing.assert_close(load_digit(path), to_mnist(upright), atol=1e-3, rtol=0)
    sideways = to_mnist(stored)
    assert float((sideways - to_mnist(upright)).abs().mean()) > 0.05  # the orientation mattered


@pytest.mark.parametrize("colour", [0, 255, 128])
def test_blank_image_is_refused(colour: int) -> None:
    with pytest.raises(DigitImageError, match="no ink"):
        to_mnist(Image.new("L", (40, 30), colour))


def test_not_an_image_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "digit.png"
    bad.write_text("not a picture")
    with pytest.raises(DigitImageError, match="not a readable image"):
        load_digit(bad)
    truncated = tmp_path / "cut.png"
    Image.new("L", (64, 64), 255).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:40])
    with pytest.raises(DigitImageError, match="not a readable image"):
        load_digit(truncated)


def test_find_images(tmp_path: Path) -> None:
    (tmp_path / "b.PNG").write_bytes(b"")
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in find_images([tmp_path])] == ["a.jpg", "b.PNG"]
    with pytest.raises(DigitImageError, match="holds no images"):
        find_images([tmp_path / "sub"])
    with pytest.raises(FileNotFoundError, match="no such file"):
        find_images([tmp_path / "missing.png"])


def test_a_fifo_or_a_device_is_refused_without_reading(tmp_path: Path) -> None:
    """A FIFO would block predict for ever, /dev/zero never ends: refused from the file's type."""
    fifo = tmp_path / "digit.png"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(DigitImageError, match=r"not a regular file \(a FIFO, socket or device\)"):
            load_digit(path)
    with pytest.raises(DigitImageError, match="cannot read it"):
        load_digit(tmp_path / "missing.png")


def test_a_big_jpeg_is_decoded_at_a_fraction_of_its_size(
    mnist_test, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JPEG's draft mode decodes a 4096-pixel photo at 1/4 scale: never the whole picture in memory."""
    import mnist_ignite.artifacts.digits as digits

    path = tmp_path / "photo.jpg"
    picture = Image.fromarray(255 - mnist_test[0][7].numpy()).resize((4096, 4096), Image.Resampling.BICUBIC)
    picture.save(path, quality=90)
    seen: list[tuple[int, int]] = []
    original = digits.to_mnist
    monkeypatch.setattr(digits, "to_mnist", lambda image: seen.append(image.size) or original(image))
    digit = load_digit(path)
    assert seen == [(1024, 1024)]
    assert float((digit - original(picture)).abs().mean()) < 0.01  # what the whole picture gives


def test_a_big_png_is_reduced_before_the_rest(mnist_test) -> None:
    image = Image.fromarray(255 - mnist_test[0][3].numpy()).resize((5000, 3000))
    small = shrunk(image)
    assert small.size == (MAX_SIDE, 614)  # reduce(4) to 1250x750, then a box thumbnail


def test_pil_s_warnings_are_one_line_naming_the_file(
    mnist_test, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(255 - mnist_test[0][1].numpy()).resize((40, 40)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,600 pixels: over it, under twice it (PIL's error)
    load_digit(path)
    err = capsys.readouterr().err
    assert err == (
        f"mnist-ignite: warning: {path}: 40x40 pixels, over PIL's decompression-bomb warning size (1,000 pixels): "
        "decoded anyway\n"
    )
