"""Finding the ``loramd`` executable when the caller did not name one.

Order: the ``LORAMD`` environment variable; ``loramd`` beside the running interpreter (the
project venv's ``bin``, where ``scripts/setup`` links it); ``loramd`` on PATH; then a SwiftPM
build tree (``.build/{release,debug}/loramd``) in the start directory or any directory above it,
then above this package's own source (an editable install in a checkout), so a checkout's daemon
is found from anywhere. In a build tree the release build wins when it is at least as new as the
debug one (``scripts/setup --release`` makes both; a real model is ~20x slower in debug), else
the debug one (a source change rebuilt only debug).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Mapping, Optional, Union

from .errors import DaemonNotFound

__all__ = ["ENV_VAR", "BUILD_CANDIDATES", "find_build_binary", "find_daemon"]

ENV_VAR = "LORAMD"
EXECUTABLE = "loramd"
BUILD_CANDIDATES = (Path(".build/release/loramd"), Path(".build/debug/loramd"))

PathLike = Union[str, "os.PathLike[str]"]


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(str(path), os.X_OK)


def _newest_build(directory: Path) -> Optional[Path]:
    """Release if it is there and not older than debug, else debug, else None."""
    release, debug = (directory / candidate for candidate in BUILD_CANDIDATES)
    have_release, have_debug = _is_executable(release), _is_executable(debug)
    if have_release and (not have_debug or release.stat().st_mtime >= debug.stat().st_mtime):
        return release
    return debug if have_debug else None


def find_build_binary(start: Optional[PathLike] = None) -> Optional[Path]:
    """The nearest ``.build/{release,debug}/loramd`` at or above ``start`` (default: cwd)."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    for directory in (here, *here.parents):
        found = _newest_build(directory)
        if found is not None:
            return found
    return None


def find_daemon(start: Optional[PathLike] = None, env: Optional[Mapping[str, str]] = None, installed: bool = True) -> str:
    """Path of the daemon to run; raises DaemonNotFound saying where it looked. ``installed``
    false skips the places tied to this interpreter and package (beside ``sys.executable``, the
    package's checkout), for callers that want only ``start`` and ``env`` to matter."""
    environ = os.environ if env is None else env
    from_env = environ.get(ENV_VAR)
    if from_env:
        return from_env
    # Not resolved: a venv's python is a link into the base interpreter's bin.
    beside = Path(sys.executable).parent / EXECUTABLE if installed and sys.executable else None
    if beside is not None and _is_executable(beside):
        return str(beside)
    on_path = shutil.which(EXECUTABLE, path=environ.get("PATH"))
    if on_path:
        return on_path
    built = find_build_binary(start)
    if built is None and installed:
        built = find_build_binary(Path(__file__).resolve().parent)
    if built is not None:
        return str(built)
    where = Path(start if start is not None else os.getcwd()).resolve()
    raise DaemonNotFound(
        "loramd not found: set $%s, run scripts/setup (it links .venv/bin/loramd), put loramd on PATH, "
        "or build it with `swift build` (looked for %s at and above %s)"
        % (ENV_VAR, " and ".join(str(c) for c in BUILD_CANDIDATES), where)
    )
