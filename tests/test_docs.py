"""README.md and docs/*.md stay true: every relative link resolves (files and #anchors), and every flag in
their command blocks exists for its command (read from that command's own --help, in-process)."""

from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path

import pytest

from mnist_ignite.cli import main
from mnist_ignite.cli.commands import COMMANDS
from mnist_ignite.discovery.handlers import BUILTINS

from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"```[\w-]*\n(.*?)```", re.S)
FLAG = re.compile(r"--[a-z][a-z0-9-]*")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def broken_links(page: Path) -> list[str]:
    """The relative links of ``page`` whose file or #anchor is not there."""
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in anchors(file)):
            broken.append(target)
    return broken


def commands(text: str) -> list[tuple[str, list[str]]]:
    """(subcommand or "", flags) of each mnist-ignite command line in the code blocks of ``text``."""
    found = []
    for block in FENCE.findall(text):
        for line in block.splitlines():
            line = line.removeprefix("$ ").split("  # ")[0].strip()
            if not re.match(r"(\.venv/bin/)?mnist-ignite( |$)", line):
                continue
            try:
                words = shlex.split(line)[1:]
            except ValueError:
                continue
            command = words[0] if words and words[0] in COMMANDS else ""
            found.append((command, [FLAG.match(w).group(0) for w in words if FLAG.match(w)]))
    return found


@functools.cache
def known_flags(command: str) -> frozenset[str]:
    """Every flag ``mnist-ignite [command] --help`` shows (training: with each built-in handler enabled too)."""
    import contextlib
    import io

    helps = [[command, "--help"]] if command else [["--help"], *(["--handler", name, "--help"] for name in BUILTINS)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for argv in helps:
            assert main(argv) == 0, argv
    flags = frozenset(FLAG.findall(out.getvalue())) | {"--help", "--debug"}
    return flags | known_flags("") if command == "lr-find" else flags  # lr-find takes every training option


def unknown_flags(page: Path) -> list[str]:
    text = page.read_text()
    own = {f"--{name}" for name in re.findall(r'Option\("([a-z0-9-]+)"', text)}  # options of the page's own handlers
    return [
        f"mnist-ignite {command} {flag}".replace("  ", " ")
        for command, flags in commands(text)
        for flag in flags
        if flag not in known_flags(command) and flag not in own
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_flag_in_a_command_block_exists(page: Path) -> None:
    assert unknown_flags(page) == []


def test_the_checks_catch_a_broken_link_a_missing_anchor_and_an_unknown_flag(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n## A `code` heading: here\n\n[ok](#a-code-heading-here) [gone](nowhere.md) [no anchor](#nope)\n"
        "[web](https://example.com)\n\n```bash\nmnist-ignite --epochs 2 --epocs 3\n"
        "mnist-ignite evaluate RUN --bogus\n```\n"
    )
    assert broken_links(page) == ["nowhere.md", "#nope"]
    assert unknown_flags(page) == ["mnist-ignite --epocs", "mnist-ignite evaluate --bogus"]
