"""docs/handlers.md, run: every file it shows is written, every command it shows runs and prints
what the page says it prints, its Python blocks run, and its own test file passes."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_ignite.cli import main
from mnist_ignite.discovery.handlers import ENTRY_POINT_GROUP
from mnist_ignite.testing import fake_mnist

from conftest import ROOT

PAGE = ROOT / "docs" / "handlers.md"
BLOCK = re.compile(r"(?:<!-- file: (?P<file>\S+) -->\n)?```(?P<lang>\w+)\n(?P<body>.*?)```", re.S)


def blocks(text: str) -> list[tuple[str | None, str, str]]:
    """(file name or None, language, body) of each fenced code block, in page order."""
    return [(m["file"], m["lang"], m["body"]) for m in BLOCK.finditer(text)]


def commands(body: str) -> list[tuple[str, int, list[str]]]:
    """Each ``$ command  # exits N`` of a console block, with the lines the page shows it printing."""
    found: list[tuple[str, int, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            command, _, comment = line[2:].partition("  # ")
            code = int(comment.split()[-1]) if comment.startswith("exits") else 0
            found.append((command, code, []))
        elif line.strip() and found:
            found[-1][2].append(line)
    return found


def test_the_block_reader_finds_files_commands_and_expected_output() -> None:
    text = "<!-- file: a.py -->\n```python\nx = 1\n```\n```console\n$ mnist-ignite --x  # exits 2\nsaid\n$ b\n```\n"
    assert blocks(text) == [
        ("a.py", "python", "x = 1\n"),
        (None, "console", "$ mnist-ignite --x  # exits 2\nsaid\n$ b\n"),
    ]
    assert commands(blocks(text)[1][2]) == [("mnist-ignite --x", 2, ["said"]), ("b", 0, [])]


@pytest.mark.integration  # runs the page's commands, a DataLoader's workers and pytest in a process
def test_every_block_of_the_handlers_tutorial_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    data = fake_mnist(tmp_path / "data", train=640, test=256)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("MNIST_IGNITE_DATA", str(data))  # the page's commands read data from the default folder
    monkeypatch.syspath_prepend(str(work))  # its Python blocks import the files it wrote, as a user's folder would
    ran = 0
    for file, lang, body in blocks(PAGE.read_text()):
        if file is not None:
            (work / file).write_text(body)
            if file == "setup.cfg":  # the entry point: the group the project reads
                cfg = configparser.ConfigParser()
                cfg.read_string(body)
                assert ENTRY_POINT_GROUP in cfg["options.entry_points"]
        elif lang == "python":
            exec(compile(body, f"{PAGE.name} block", "exec"), {"__name__": "__tutorial__"})
            ran += 1
        elif lang == "console":
            for command, code, shown in commands(body):
                argv = shlex.split(command)
                capfd.readouterr()
                if argv[0] == "mnist-ignite":
                    rc = main(argv[1:])
                else:
                    assert argv[:3] == ["python", "-m", "pytest"], command
                    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(work), str(ROOT)])}
                    rc = subprocess.run([sys.executable, *argv[1:], "-p", "no:cacheprovider"], env=env).returncode
                out = capfd.readouterr()
                printed = out.out + out.err
                assert rc == code, f"{command}: exit {rc}\n{printed}"
                for line in shown:
                    assert line.strip() in printed, f"{command}: the page shows {line!r}; it printed:\n{printed}"
                ran += 1
    assert ran >= 14
    assert sorted(p.name for p in (work / "runs" / "png" / "epoch_png").iterdir()) == ["epoch_1.png", "epoch_2.png"]
    assert list((work / "runs" / "ignite" / "ignite_best").glob("*.pt"))  # Ignite's ModelCheckpoint wrote its file
