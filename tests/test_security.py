"""No file runs code: hostile checkpoints, run folders and exports are refused before anything is imported.

Each case builds the hostile file the way an attacker would and asserts that the command refuses in
one line and that the payload's marker file never appears (the payload is a real ``touch``).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from mnist_ignite.cli import main
from mnist_ignite.core.checkpoint import FORMAT
from mnist_ignite.core.files import save_torch
from mnist_ignite.testing import TinyNet, run_plugin

HOSTILE_SPEC = "subprocess:getoutput"


def _digit(path: Path) -> Path:
    image = Image.new("L", (28, 28))
    image.paste(255, (12, 4, 16, 24))  # a "1"
    image.save(path)
    return path


def _run(tmp_path: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().err


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "the hostile file ran its payload"


@pytest.fixture()
def hostile_checkpoint(tmp_path: Path, marker: Path) -> Path:
    """Loads fine with weights_only=True; its meta names a function to call with a shell command."""
    path = tmp_path / "evil.pt"
    meta = {"format": FORMAT, "model": "Net", "spec": HOSTILE_SPEC, "model_args": {"cmd": f"touch {marker}"}}
    save_torch(path, {"meta": meta, "model": TinyNet().state_dict()})
    return path


@pytest.mark.parametrize("command", ["evaluate", "predict", "export", "serve"])
def test_a_checkpoint_naming_code_is_refused(
    command: str, hostile_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = {"predict": [str(_digit(tmp_path / "one.png"))], "serve": ["--port", "0"]}.get(command, [])
    code, err = _run(tmp_path, command, str(hostile_checkpoint), *extra, capsys=capsys)
    assert code == 2
    assert f"asks to import {HOSTILE_SPEC!r}" in err and "--trust-code" in err and err.count("\n") == 1


@pytest.fixture()
def hostile_run(tmp_path: Path, marker: Path) -> Path:
    """A real run folder whose config.json was edited to name a function to call."""
    out = tmp_path / "run"
    run_plugin(handlers=["checkpoint"], output_dir=out)
    config = json.loads((out / "config.json").read_text())
    config.update(model=HOSTILE_SPEC, model_args={"cmd": f"touch {marker}"})
    (out / "config.json").write_text(json.dumps(config))
    (out / "final_model.pt").unlink()  # evaluate then reads the checkpoint, whose meta names TinyNet
    for checkpoint in (out / "checkpoints").glob("*.pt"):
        checkpoint.unlink()
    save_torch(out / "final_model.pt", TinyNet().state_dict())  # a bare state_dict: the spec comes from config.json
    return out


@pytest.mark.parametrize("command", ["evaluate", "serve"])
def test_a_run_folder_naming_code_is_refused(
    command: str, hostile_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(hostile_run, command, str(hostile_run), capsys=capsys)
    assert code == 2 and f"config.json asks to import {HOSTILE_SPEC!r}" in err


def test_a_run_folder_naming_code_is_refused_by_resume(hostile_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(
        hostile_run, "--output-dir", str(hostile_run), "--resume", "auto", "--device", "cpu", capsys=capsys
    )
    assert code == 2 and f"config.json asks to import {HOSTILE_SPEC!r}" in err and "--model" in err


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("name", ["model.pt2", "innocent.bin"])
def test_an_exported_program_with_a_pickled_payload_is_refused(
    name: str, tmp_path: Path, marker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """torch.export.load unpickles sample inputs (and pickled weights) with weights_only=False."""
    batch = torch.export.Dim("batch")  # as mnist-ignite export writes it: any batch size
    program = torch.export.export(TinyNet().eval(), (torch.zeros(2, 1, 28, 28),), dynamic_shapes=({0: batch},))
    good = tmp_path / "good.pt2"
    torch.export.save(program, good)
    payload = io.BytesIO()
    torch.save({"inputs": _Payload(marker)}, payload)
    hostile = tmp_path / name  # recognised by its content, whatever its name
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(hostile, "w") as dst:
        for item in src.infolist():
            data = payload.getvalue() if item.filename.endswith("sample_inputs/model.pt") else src.read(item)
            dst.writestr(item, data)
    code, err = _run(tmp_path, "predict", str(hostile), str(_digit(tmp_path / "one.png")), capsys=capsys)
    assert code == 1
    assert "holds objects that only a full unpickle could rebuild" in err and "posix.system" in err
    code, err = _run(tmp_path, "serve", str(hostile), "--port", "0", capsys=capsys)
    assert code == 1 and "holds objects that only a full unpickle could rebuild" in err
    code, _ = _run(tmp_path, "predict", str(good), str(_digit(tmp_path / "two.png")), capsys=capsys)
    assert code == 0  # the same archive, untouched, loads


def test_an_exported_program_with_an_opaque_constant_is_refused(
    tmp_path: Path, marker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """torch rebuilds a constant named ``opaque_obj_*`` with a plain ``pickle.loads``, whatever its config says
    (``use_pickle: false``, tensor metadata and all): such a constant is refused before torch opens the file."""
    import pickle

    batch = torch.export.Dim("batch")
    program = torch.export.export(TinyNet().eval(), (torch.zeros(2, 1, 28, 28),), dynamic_shapes=({0: batch},))
    good = tmp_path / "good.pt2"
    torch.export.save(program, good)
    payload = pickle.dumps(_Payload(marker))
    meta = {"dtype": 1, "sizes": [{"as_int": len(payload)}], "requires_grad": False, "device": {"type": "cpu"},
            "strides": [{"as_int": 1}], "storage_offset": {"as_int": 0}, "layout": 1}  # fmt: skip
    config = {"config": {"opaque": {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": False,
                                    "tensor_meta": meta}}}  # fmt: skip
    for name, prefix in (("model.pt2", "model"), ("weights.bin", "zz")):  # by content, under any prefix
        hostile = tmp_path / name
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(hostile, "w") as dst:
            for item in src.infolist():
                data = src.read(item)
                if item.filename.endswith("_constants_config.json"):
                    data = json.dumps(config).encode()
                dst.writestr(item.filename.replace("model/", f"{prefix}/", 1), data)
            dst.writestr(f"{prefix}/data/constants/opaque_obj_0", payload)
        for command in (
            ["predict", str(hostile), str(_digit(tmp_path / "one.png"))],
            ["serve", str(hostile), "--port", "0"],
        ):
            code, err = _run(tmp_path, *command, capsys=capsys)
            assert code == 1, err
            assert "data/constants/opaque_obj_0 is a Python object, not a tensor" in err and err.count("\n") == 1
            assert not marker.exists()


def test_trust_code_lets_a_users_own_model_file_back_in(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine.py").write_text("from mnist_ignite.testing import TinyNet as Mine\n")
    out = tmp_path / "run"
    run_plugin(handlers=["checkpoint"], output_dir=out, model=f"{tmp_path / 'mine.py'}:Mine")
    image = str(_digit(tmp_path / "one.png"))
    assert _run(tmp_path, "predict", str(out), image, capsys=capsys)[0] == 2
    assert _run(tmp_path, "predict", str(out), image, "--trust-code", capsys=capsys)[0] == 0
