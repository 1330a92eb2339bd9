"""examples/seed_notebook.ipynb executed in a real Jupyter kernel (nbclient + ipykernel), on subsets.

What a notebook user sees: figures as images without ``%matplotlib``, one live ``metrics.png``
output updated in place, each epoch's final bar line kept, no errors and nothing on stderr.
"""

from __future__ import annotations

import base64
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

from conftest import ROOT

NOTEBOOK = ROOT / "examples" / "seed_notebook.ipynb"
EPOCHS = 2
KERNEL = "mnist-ignite-test"


def _source(cell: Any) -> str:
    return "".join(cell.source)


def _cell(nb: Any, code: str) -> Any:
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and code in _source(c)]
    return cell


def _images(cell: Any) -> list[bytes]:
    return [
        base64.b64decode(o["data"]["image/png"])
        for o in cell.outputs
        if o.output_type in ("display_data", "execute_result") and "image/png" in o.get("data", {})
    ]


def _screen_lines(cell: Any) -> list[str]:
    """The cell's stdout as a notebook shows it: a carriage return rewrites its line."""
    text = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n")]


@pytest.fixture(scope="module")
def executed(data_dir: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    work = tmp_path_factory.mktemp("notebook")
    out = work / "run"
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    params = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    overrides = {
        "EPOCHS": EPOCHS,
        "MAX_TRAIN_SAMPLES": 512,
        "MAX_TEST_SAMPLES": 256,
        "NUM_WORKERS": 0,
        "DEVICE": "cpu",
        "OUTPUT_DIR": str(out),
    }
    nb.cells.insert(params + 1, nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in overrides.items())))
    # a kernel of this interpreter, whatever kernels the user's Jupyter knows
    spec = work / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    with pytest.MonkeyPatch.context() as mp:  # the kernel inherits this environment
        mp.setenv("JUPYTER_PATH", str(work))
        mp.setenv("MNIST_IGNITE_DATA", data_dir)
        mp.setenv("OMP_NUM_THREADS", "1")
        NotebookClient(nb, timeout=600, kernel_name=KERNEL, resources={"metadata": {"path": str(work)}}).execute()
    return nb, out


def test_no_errors_no_warnings_in_any_cell(executed: tuple[Any, Path]) -> None:
    nb, _ = executed
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        kinds = [(o.output_type, o.get("name")) for o in cell.outputs]
        assert ("error", None) not in kinds, _source(cell)
        assert ("stream", "stderr") not in kinds, (_source(cell), cell.outputs)
        assert "Warning" not in str(cell.outputs), _source(cell)


@pytest.mark.parametrize("code", ["utils.plot_train_data(", "utils.plot_model_results("])
def test_seed_figures_render_as_images(executed: tuple[Any, Path], code: str) -> None:
    nb, _ = executed
    (png,) = _images(_cell(nb, code))
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 200


def test_live_metrics_png_is_one_output_updated_in_place(executed: tuple[Any, Path]) -> None:
    nb, out = executed
    cell = _cell(nb, "model.run(")
    images = _images(cell)
    assert len(images) == 1  # one output for all the epochs, not one per epoch
    assert images[0] == (out / "plots" / "metrics.png").read_bytes()  # showing the last epoch's file


def test_each_epochs_bar_line_is_kept_before_its_test_line(executed: tuple[Any, Path]) -> None:
    nb, _ = executed
    lines = [line for line in _screen_lines(_cell(nb, "model.run(")) if line.strip()]
    for epoch in range(1, EPOCHS + 1):
        (bar,) = [line for line in lines if line.startswith(f"epoch {epoch}/{EPOCHS}: 100%|")]
        # tqdm pads a final line that came out shorter than the one it overwrote: trailing blanks are screen, not text
        assert re.search(r"\[\d\d:\d\d<\d\d:\d\d, loss \d\.\d{4}, acc \d+\.\d\d%, [\d,]+ img/s\]$", bar.rstrip()), bar
        following = lines[lines.index(bar) + 1]
        assert following.startswith("Test set: Average loss:"), lines


def test_show_summary_prints_the_table_once(executed: tuple[Any, Path]) -> None:
    nb, _ = executed
    cell = _cell(nb, "model.show_summary()")
    assert [o.output_type for o in cell.outputs] == ["stream"]  # printed, not echoed again as a value
    assert cell.outputs[0].text.count("Total params: 593,200") == 1
