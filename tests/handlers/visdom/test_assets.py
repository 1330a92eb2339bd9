"""The visdom front-end installer, into a scratch copy of the visdom package folder (never the installed one)."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from mnist_ignite.cli import main
from mnist_ignite.errors import AssetsError
from mnist_ignite.handlers.visdom.assets import (
    ASSETS,
    MARKER,
    default_cache,
    install_assets,
    missing_assets,
    visdom_dir,
)

pytest.importorskip("visdom", reason="pip install 'mnist-ignite[visdom]'")


@pytest.fixture
def bare_visdom(tmp_path: Path) -> Path:
    """A visdom package folder as pip leaves it: VERSION and visdom's own pages, none of the CDN files."""
    pkg = tmp_path / "visdom"
    (pkg / "static").mkdir(parents=True)
    shutil.copy(visdom_dir() / "VERSION", pkg / "VERSION")
    shutil.copy(visdom_dir() / "static" / "index.html", pkg / "static" / "index.html")
    return pkg


def test_installs_what_visdom_would_download_and_is_idempotent(bare_visdom: Path) -> None:
    """From npm's registry the first time on a machine, from the tarball cache after that (the default cache)."""
    assert set(missing_assets(bare_visdom)) == {*ASSETS, MARKER}
    messages: list[str] = []
    install_assets(bare_visdom, say=messages.append)
    assert missing_assets(bare_visdom) == []
    static = bare_visdom / "static"
    assert all((static / name).stat().st_size > 500 for name in ASSETS)  # none empty or truncated
    banners = {  # the versions visdom's build.py asks for
        "js/jquery.min.js": "jQuery v3.1.1",
        "js/plotly-plotly.min.js": "plotly.js v2.11.1",
        "js/react-react.min.js": "React v16.2.0",
        "css/bootstrap.min.css": "Bootstrap v3.3.7",
    }
    for name, banner in banners.items():
        assert banner in (static / name).read_text()[:200], name
    version = (bare_visdom / "VERSION").read_text().strip()
    assert (bare_visdom / "static" / MARKER).read_text() == version  # what visdom compares to skip downloads
    assert install_assets(bare_visdom, say=messages.append) == 0
    assert messages[-1].endswith(f"{len(ASSETS)} files in place (all there already)")


def test_without_npm_nor_reachable_cdns_says_what_to_do(
    bare_visdom: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No npm on PATH, an empty tarball cache, and every HTTP(S) request refused (a proxy on a closed local port)."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(AssetsError) as err:
        install_assets(bare_visdom, cache=tmp_path / "cache", say=lambda _: None)
    message = str(err.value)
    assert message.startswith("could not install visdom's front-end: npm is not installed, and visdom's download")
    assert "files missing" in message and "apt-get install npm" in message and "\n" not in message
    assert not (bare_visdom / "static" / MARKER).exists()  # visdom's server still knows it lacks them


def test_the_command_installs_and_reports_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """`mnist-ignite visdom --install-assets` on the installed visdom: already done by the README's test command."""
    assert main(["visdom", "--install-assets"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].endswith("(all there already)")


@pytest.mark.integration  # starts a process
def test_a_damaged_cached_tarball_is_fetched_again(bare_visdom: Path, tmp_path: Path) -> None:
    install_assets(bare_visdom, say=lambda _: None)  # fills the default cache if this machine has none yet
    cache = shutil.copytree(default_cache(), tmp_path / "cache")
    (cache / "jquery-3.1.1.tgz").write_bytes(b"not a tarball")
    (bare_visdom / "static" / "js" / "jquery.min.js").unlink()
    assert install_assets(bare_visdom, cache=cache, say=lambda _: None) == 1
    assert missing_assets(bare_visdom) == []
    assert tarfile.is_tarfile(cache / "jquery-3.1.1.tgz")
