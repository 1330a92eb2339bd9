"""Visdom's web front-end (JS, CSS, fonts), installed so that its server starts offline.

``python -m visdom.server`` fetches these files from CDNs (unpkg, cdn.plot.ly, d3js.org, cdnjs) at
every start until ``static/version.built`` names the installed version; offline or behind a
firewall it then fails. ``mnist-ignite visdom --install-assets`` puts the same files in place:

1. from the npm registry with ``npm pack`` when npm is installed (tarballs cached in
   ``$XDG_CACHE_HOME/mnist-ignite/visdom-npm``, so a second install needs no network);
2. otherwise, or when that fails, by visdom's own downloader (needs the CDNs above).

Idempotent: files are written only when missing or different, and the marker last.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import socket
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

from mnist_ignite.errors import AssetsError

__all__ = ["ASSETS", "AssetsError", "default_cache", "install_assets", "missing_assets", "visdom_dir"]

_MJ = "js/mathjax/2.7.5"
# file under visdom/static -> (npm package@version, path inside its tarball); the names on the
# left are those visdom/server/build.py downloads (visdom 0.2.x)
ASSETS: dict[str, tuple[str, str]] = {
    "js/jquery.min.js": ("jquery@3.1.1", "dist/jquery.min.js"),
    "js/bootstrap.min.js": ("bootstrap@3.3.7", "dist/js/bootstrap.min.js"),
    "js/react-react.min.js": ("react@16.2.0", "umd/react.production.min.js"),
    "js/react-dom.min.js": ("react-dom@16.2.0", "umd/react-dom.production.min.js"),
    "js/react-modal.min.js": ("react-modal@3.1.10", "dist/react-modal.min.js"),
    "js/plotly-plotly.min.js": ("plotly.js-dist-min@2.11.1", "plotly.min.js"),
    "js/sjcl.js": ("sjcl@1.0.7", "sjcl.js"),
    "js/layout-bin-packer.js.map": ("layout-bin-packer@1.4.0", "dist/layout-bin-packer.js.map"),
    "js/layout_bin_packer.js": ("layout-bin-packer@1.4.0", "dist/layout-bin-packer.js"),
    "js/d3.v3.min.js": ("d3@3.5.17", "d3.min.js"),
    "js/d3-selection-multi.v1.js": ("d3-selection-multi@1.0.1", "build/d3-selection-multi.js"),
    "js/saveSvgAsPng.js": ("save-svg-as-png@1.4.17", "lib/saveSvgAsPng.js"),
    "css/react-resizable-styles.css": ("react-resizable@1.4.6", "css/styles.css"),
    "css/react-grid-layout-styles.css": ("react-grid-layout@0.16.3", "css/styles.css"),
    "css/bootstrap.min.css": ("bootstrap@3.3.7", "dist/css/bootstrap.min.css"),
    "fonts/classnames": ("classnames@2.2.5", "index.js"),
    "fonts/glyphicons-halflings-regular.eot": ("bootstrap@3.3.7", "dist/fonts/glyphicons-halflings-regular.eot"),
    "fonts/glyphicons-halflings-regular.woff2": ("bootstrap@3.3.7", "dist/fonts/glyphicons-halflings-regular.woff2"),
    "fonts/glyphicons-halflings-regular.woff": ("bootstrap@3.3.7", "dist/fonts/glyphicons-halflings-regular.woff"),
    "fonts/glyphicons-halflings-regular.ttf": ("bootstrap@3.3.7", "dist/fonts/glyphicons-halflings-regular.ttf"),
    # visdom saves the svg under this literal name, a browser asks for the name without the fragment
    "fonts/glyphicons-halflings-regular.svg#glyphicons_halflingsregular": (
        "bootstrap@3.3.7",
        "dist/fonts/glyphicons-halflings-regular.svg",
    ),
    "fonts/glyphicons-halflings-regular.svg": ("bootstrap@3.3.7", "dist/fonts/glyphicons-halflings-regular.svg"),
    f"{_MJ}/MathJax.js": ("mathjax@2.7.5", "MathJax.js"),
    f"{_MJ}/config/Safe.js": ("mathjax@2.7.5", "config/Safe.js"),
    f"{_MJ}/config/TeX-AMS-MML_HTMLorMML.js": ("mathjax@2.7.5", "config/TeX-AMS-MML_HTMLorMML.js"),
    f"{_MJ}/extensions/Safe.js": ("mathjax@2.7.5", "extensions/Safe.js"),
    f"{_MJ}/jax/output/SVG/fonts/TeX/fontdata.js": ("mathjax@2.7.5", "jax/output/SVG/fonts/TeX/fontdata.js"),
    f"{_MJ}/jax/output/SVG/jax.js": ("mathjax@2.7.5", "jax/output/SVG/jax.js"),
    f"{_MJ}/jax/output/SVG/fonts/TeX/Size1/Regular/Main.js": (
        "mathjax@2.7.5",
        "jax/output/SVG/fonts/TeX/Size1/Regular/Main.js",
    ),
    f"{_MJ}/jax/output/SVG/config.js": ("mathjax@2.7.5", "jax/output/SVG/config.js"),
}
MARKER = "version.built"
NPM_TIMEOUT_S = 180  # all tarballs in one call (about 10 MB)
DOWNLOAD_TIMEOUT_S = 30  # per connection of visdom's own downloader, which sets none


def visdom_dir() -> Path:
    """The installed ``visdom`` package folder (found without importing visdom)."""
    spec = importlib.util.find_spec("visdom")
    if spec is None or spec.origin is None:
        raise AssetsError("the visdom package is missing: pip install 'mnist-ignite[visdom]'")
    return Path(spec.origin).parent


def default_cache() -> Path:
    """Where npm tarballs are kept between installs."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mnist-ignite" / "visdom-npm"


def _version(pkg: Path) -> str:
    return (pkg / "VERSION").read_text().strip()


def missing_assets(pkg: Path | None = None) -> list[str]:
    """Files (under ``static/``) that visdom's server would try to download at start-up; empty when installed."""
    pkg = pkg or visdom_dir()
    static = pkg / "static"
    missing = [name for name in ASSETS if not (static / name).is_file() or not (static / name).stat().st_size]
    marker = static / MARKER
    if not marker.is_file() or marker.read_text().strip() != _version(pkg):
        missing.append(MARKER)
    return missing


def _tarball(cache: Path, spec: str) -> Path:
    name, version = spec.rsplit("@", 1)
    return cache / f"{name}-{version}.tgz"  # npm pack's file name for an unscoped package


def _npm_fetch(cache: Path, specs: set[str]) -> None:
    """``npm pack`` the tarballs not in the cache yet (one npm call for all)."""
    todo = sorted(s for s in specs if not _tarball(cache, s).is_file())
    if not todo:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise AssetsError("npm is not installed")
    cache.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            [
                npm,
                "pack",
                "--ignore-scripts",
                "--loglevel=error",
                "--prefer-offline",
                "--fetch-retries=1",
                "--fetch-retry-mintimeout=1000",
                "--fetch-retry-maxtimeout=2000",
                "--fetch-timeout=30000",
                *todo,
            ],
            cwd=cache,
            check=True,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
        )
    except subprocess.CalledProcessError as err:
        lines = [line for line in err.stderr.splitlines() if "ERR" in line] or err.stderr.splitlines() or ["?"]
        raise AssetsError(f"npm pack failed: {lines[0][:160]}") from None
    except subprocess.TimeoutExpired:
        raise AssetsError(f"npm pack took more than {NPM_TIMEOUT_S} s") from None
    absent = [s for s in todo if not _tarball(cache, s).is_file()]
    if absent:
        raise AssetsError(f"npm pack did not produce {', '.join(absent)}")


def _member(tar: tarfile.TarFile, path: str) -> bytes:
    """A file of an npm tarball by its path inside the package (the top folder is usually ``package/``)."""
    for info in tar.getmembers():
        if info.isfile() and info.name.split("/", 1)[-1] == path:
            f = tar.extractfile(info)
            if f is not None:
                return f.read()
    raise AssetsError(f"{Path(tar.name or '').name} has no {path}")


def _write(target: Path, data: bytes) -> bool:
    """Write ``data`` to ``target`` unless it already holds exactly that; atomic (a reader never sees half)."""
    if target.is_file() and target.read_bytes() == data:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return True


def _read(cache: Path, spec: str) -> dict[str, bytes]:
    """The files one npm tarball provides, by their place under static/."""
    with tarfile.open(_tarball(cache, spec)) as tar:
        return {dest: _member(tar, src) for dest, (s, src) in ASSETS.items() if s == spec}


def _from_npm(pkg: Path, cache: Path) -> int:
    specs = sorted({spec for spec, _ in ASSETS.values()})
    _npm_fetch(cache, set(specs))
    files: dict[str, bytes] = {}
    for spec in specs:
        try:
            files |= _read(cache, spec)
        except (tarfile.TarError, EOFError):  # damaged in the cache: fetch it once more
            _tarball(cache, spec).unlink()
            _npm_fetch(cache, {spec})
            try:
                files |= _read(cache, spec)
            except (tarfile.TarError, EOFError) as err:
                raise AssetsError(f"{spec}: npm gave a damaged tarball ({err})") from None
    return sum(_write(pkg / "static" / dest, data) for dest, data in files.items())


def _from_visdom(pkg: Path) -> None:
    """visdom's own downloader, with a timeout on each connection (it sets none)."""
    from visdom.server.build import download_scripts

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        download_scripts(install_dir=str(pkg))
    except Exception as err:  # it raises on the first failed MathJax file
        raise AssetsError(f"{type(err).__name__}: {str(err)[:160]}") from None
    finally:
        socket.setdefaulttimeout(previous)


def install_assets(pkg: Path | None = None, cache: Path | None = None, say: Callable[[str], None] = print) -> int:
    """Install visdom's front-end into ``pkg`` (default: the installed visdom); returns the files written.

    Raises:
        AssetsError: neither npm nor visdom's downloader could provide every file.
    """
    pkg = pkg or visdom_dir()
    cache = cache or default_cache()
    version = _version(pkg)
    try:
        try:
            written = _from_npm(pkg, cache)
            source = f"{written} written from the npm registry" if written else "all there already"
        except AssetsError as npm_error:
            say(f"{npm_error}; trying visdom's own download (unpkg, cdn.plot.ly, d3js.org, cdnjs)")
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                try:
                    _from_visdom(pkg)
                    reason = ""
                except AssetsError as err:
                    reason = f" ({err})"
            still = [m for m in missing_assets(pkg) if m != MARKER]
            if still:
                raise AssetsError(
                    f"could not install visdom's front-end: {npm_error}, and visdom's download failed{reason}: "
                    f"{len(still)} files missing, e.g. static/{still[0]}. Run this again where npm (apt-get install "
                    "npm) reaches the npm registry, or where those sites are reachable"
                ) from None
            written, source = 0, "downloaded by visdom"
        written += _write(pkg / "static" / MARKER, version.encode())  # last: tells visdom all is there
    except OSError as err:
        raise AssetsError(f"cannot write visdom's front-end into {pkg / 'static'}: {err.strerror or err}") from None
    say(f"visdom {version} front-end in {pkg / 'static'}: {len(ASSETS)} files in place ({source})")
    return written
