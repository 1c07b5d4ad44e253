"""Finding the daemon: $LORAMD, beside the interpreter, PATH, then .build/{release,debug} upward."""

from __future__ import annotations

import os
import sys

import pytest

from loram_client import DaemonNotFound, find_daemon
from loram_client import locate
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
    assert find_daemon(start=tmp_path, env={"PATH": str(exe.parent)}, installed=False) == str(exe)


def test_build_tree_found_from_a_nested_directory(tmp_path):
    exe = make_exe(tmp_path / ".build" / "debug" / "loramd")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert find_daemon(start=nested, env={"PATH": ""}, installed=False) == str(exe.resolve())


def test_the_newer_of_release_and_debug_wins(tmp_path):
    release = make_exe(tmp_path / ".build" / "release" / "loramd")
    debug = make_exe(tmp_path / ".build" / "debug" / "loramd")
    os.utime(debug, (1000, 1000))
    os.utime(release, (2000, 2000))
    assert find_build_binary(tmp_path) == release.resolve()  # scripts/setup --release built it last
    os.utime(debug, (3000, 3000))
    assert find_build_binary(tmp_path) == debug.resolve()  # a source change rebuilt only debug
    os.remove(debug)
    assert find_build_binary(tmp_path) == release.resolve()


def test_beside_the_interpreter_comes_before_path(tmp_path, monkeypatch):
    venv_bin = tmp_path / "venv" / "bin"
    beside = make_exe(venv_bin / "loramd")
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    on_path = make_exe(tmp_path / "elsewhere" / "loramd")
    assert find_daemon(start=tmp_path, env={"PATH": str(on_path.parent)}) == str(beside)
    assert find_daemon(start=tmp_path, env={"PATH": str(on_path.parent)}, installed=False) == str(on_path)


def test_the_package_checkout_is_searched_last(tmp_path, monkeypatch):
    checkout = tmp_path / "checkout"
    exe = make_exe(checkout / ".build" / "debug" / "loramd")
    package = checkout / "clients" / "python" / "loram_client"
    package.mkdir(parents=True)
    monkeypatch.setattr(locate, "__file__", str(package / "locate.py"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "nowhere" / "python"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if find_build_binary(elsewhere) is not None:
        pytest.skip("a build tree exists above the temporary directory")
    assert find_daemon(start=elsewhere, env={"PATH": ""}) == str(exe.resolve())


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
        find_daemon(start=tmp_path, env={"PATH": ""}, installed=False)
