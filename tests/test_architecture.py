"""The house's rules hold: layers import downward only, the core knows no handler, tests mirror the tree."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE, HANDLERS, TESTS = ROOT / "mnist_ignite", ROOT / "handlers", ROOT / "tests"


@pytest.mark.integration  # starts a process
def test_the_import_contracts_are_kept() -> None:
    """lint-imports as CI runs it, from the repository root (in this process ``tests/handlers`` would shadow
    ``handlers``, and import-linter's logging set-up would switch off every logger)."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return names


def test_only_the_command_line_imports_a_handler_by_its_installed_name() -> None:
    """The contracts see handlers/ as `handlers`; the installed name `mnist_ignite.handlers` is checked here."""
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in PACKAGE.rglob("*.py")
        if "cli" not in path.relative_to(PACKAGE).parts
        for name in _imports(path)
        if name.startswith("mnist_ignite.handlers")
    ]
    assert offenders == []


def _test_file(module: Path) -> Path:
    base = PACKAGE if module.is_relative_to(PACKAGE) else ROOT
    rel = module.relative_to(base)
    return TESTS / rel.parent / f"test_{rel.stem}.py"


def test_every_module_has_a_test_file_mirroring_its_path() -> None:
    modules = [p for root in (PACKAGE, HANDLERS) for p in root.rglob("*.py") if p.name != "__init__.py"]
    missing = sorted(str(_test_file(m).relative_to(ROOT)) for m in modules if not _test_file(m).is_file())
    assert missing == [], f"modules without a test file: {missing}"
