"""Finding the daemon: $LORAMD, then PATH, then .build/{debug,release} upward."""

from __future__ import annotations

import os

import pytest

from loram_client import DaemonNotFound, find_daemon
from loram_client.locate import find_build_binary


def make_exe(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_env_var_wins(tmp_path):
    assert find_daemon(start=tmp_path, env={"LORAMD": "/x/loramd", "PATH": ""}) == "/x/loramd"


def test_path_lookup(tmp_path):
    exe = make_exe(tmp_path / "bin" / "loramd")
    assert find_daemon(start=tmp_path, env={"PATH": str(exe.parent)}) == str(exe)


def test_build_tree_found_from_a_nested_directory(tmp_path):
    exe = make_exe(tmp_path / ".build" / "debug" / "loramd")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert find_daemon(start=nested, env={"PATH": ""}) == str(exe.resolve())


def test_debug_preferred_over_release(tmp_path):
    make_exe(tmp_path / ".build" / "release" / "loramd")
    debug = make_exe(tmp_path / ".build" / "debug" / "loramd")
    assert find_build_binary(tmp_path) == debug.resolve()


def test_non_executable_is_ignored(tmp_path):
    plain = tmp_path / ".build" / "debug" / "loramd"
    plain.parent.mkdir(parents=True)
    plain.write_text("")
    os.chmod(plain, 0o644)
    # Only this tmp tree is searched below tmp_path; anything above it must not be a build.
    found = find_build_binary(tmp_path)
    assert found is None or tmp_path not in found.parents


def test_not_found_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if find_build_binary(tmp_path) is not None:
        pytest.skip("a build tree exists above the temporary directory")
    with pytest.raises(DaemonNotFound, match="swift build"):
        find_daemon(start=tmp_path, env={"PATH": ""})
