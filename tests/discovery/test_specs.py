"""Finding code by a spec: a registered name, ``module:Attr`` or ``file.py:Attr``; every failure one line naming it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_ignite.discovery.specs import check_name, registered, resolve
from mnist_ignite.errors import SpecError
from mnist_ignite.testing import TinyNet

KNOWN = {"tiny": "mnist_ignite.testing:TinyNet", "seed": "mnist_ignite.models.net:Net"}


@pytest.fixture()
def widgets(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "widgets.py"
    path.write_text("class Widget:\n    pass\n")
    (tmp_path / "broken.py").write_text("1 / 0\n")
    yield path
    for name in ("mnist_ignite_test_kind_widgets", "mnist_ignite_test_kind_broken"):
        sys.modules.pop(name, None)


def test_entry_points_are_registered_beside_the_builtins_and_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "thirdparty-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mnist_ignite.test_group]\nseed = theirs:Net\nextra = theirs:Extra\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = registered(KNOWN, "mnist_ignite.test_group")
    assert found == {"tiny": KNOWN["tiny"], "seed": "theirs:Net", "extra": "theirs:Extra"}
    assert registered(KNOWN, "mnist_ignite.no_such_group") == KNOWN


@pytest.mark.parametrize("spec", ["tiny", "pkg.mod:Attr", "any/file.py:Attr"])
def test_a_known_name_or_any_spec_with_a_colon_passes_the_name_check(spec: str) -> None:
    check_name(spec, KNOWN, "model")  # refused only at import time, if at all


def test_an_unknown_name_says_what_is_available_and_the_closest() -> None:
    with pytest.raises(SpecError) as refused:
        check_name("tinny", KNOWN, "model")
    assert str(refused.value) == (
        "unknown model 'tinny' (did you mean tiny?); available: seed, tiny (or module:Attr, file.py:Attr)"
    )
    with pytest.raises(SpecError, match=r"unknown model 'xyz'; available"):
        check_name("xyz", KNOWN, "model")


def test_a_name_a_module_spec_and_a_file_spec_resolve_to_the_object(widgets: Path) -> None:
    assert resolve("tiny", KNOWN, "model") is TinyNet
    assert resolve("mnist_ignite.testing:TinyNet", KNOWN, "model") is TinyNet
    widget = resolve(f"{widgets}:Widget", KNOWN, "test kind")
    assert widget.__name__ == "Widget"
    assert sys.modules["mnist_ignite_test_kind_widgets"].Widget is widget  # its own module name, per kind


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{dir}/missing.py:Thing", "test kind '{dir}/missing.py:Thing': file not found: {dir}/missing.py"),
        ("{dir}/broken.py:Thing", "cannot import {dir}/broken.py: ZeroDivisionError: division by zero"),
        ("{dir}/widgets.py:Gadget", "test kind '{dir}/widgets.py:Gadget': {dir}/widgets.py has no attribute 'Gadget'"),
        ("no_such_pkg_xyz.mod:Thing", "cannot import no_such_pkg_xyz.mod: ModuleNotFoundError: No module named"),
        ("mnist_ignite.testing:Nope", "mnist_ignite.testing has no attribute 'Nope'"),
    ],
)
def test_a_spec_that_cannot_be_found_imported_or_read_is_one_spec_error(widgets: Path, spec: str, message: str) -> None:
    spec, message = spec.format(dir=widgets.parent), message.format(dir=widgets.parent)
    with pytest.raises(SpecError) as refused:
        resolve(spec, KNOWN, "test kind")
    assert message in str(refused.value) and "\n" not in str(refused.value)
    error = refused.value
    assert error.exit_code == 2 and (error.__suppress_context__ or error.__context__ is None)  # no chained traceback
