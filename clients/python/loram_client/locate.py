"""Finding the ``loramd`` executable when the caller did not name one.

Order: the ``LORAMD`` environment variable, then ``loramd`` on PATH, then a SwiftPM build
tree (``.build/debug/loramd``, then ``.build/release/loramd``) in the start directory or any
directory above it, so a checkout's freshly built daemon is found from anywhere inside it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Mapping, Optional, Union

from .errors import DaemonNotFound

__all__ = ["ENV_VAR", "BUILD_CANDIDATES", "find_build_binary", "find_daemon"]

ENV_VAR = "LORAMD"
EXECUTABLE = "loramd"
BUILD_CANDIDATES = (Path(".build/debug/loramd"), Path(".build/release/loramd"))

PathLike = Union[str, "os.PathLike[str]"]


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(str(path), os.X_OK)


def find_build_binary(start: Optional[PathLike] = None) -> Optional[Path]:
    """The nearest ``.build/{debug,release}/loramd`` at or above ``start`` (default: cwd)."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    for directory in (here, *here.parents):
        for candidate in BUILD_CANDIDATES:
            path = directory / candidate
            if _is_executable(path):
                return path
    return None


def find_daemon(start: Optional[PathLike] = None, env: Optional[Mapping[str, str]] = None) -> str:
    """Path of the daemon to run; raises DaemonNotFound saying where it looked."""
    environ = os.environ if env is None else env
    from_env = environ.get(ENV_VAR)
    if from_env:
        return from_env
    on_path = shutil.which(EXECUTABLE, path=environ.get("PATH"))
    if on_path:
        return on_path
    built = find_build_binary(start)
    if built is not None:
        return str(built)
    where = Path(start if start is not None else os.getcwd()).resolve()
    raise DaemonNotFound(
        "loramd not found: set $%s, put loramd on PATH, or build it with `swift build` "
        "(looked for %s at and above %s)"
        % (ENV_VAR, " and ".join(str(c) for c in BUILD_CANDIDATES), where)
    )
