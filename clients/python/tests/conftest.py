"""Shared fixtures: where the daemon binary is, and clients that are always cleaned up.

The daemon is ``$LORAMD`` if set, else the nearest ``.build/debug/loramd`` (or
``.build/release/loramd``) found by walking up from this directory, i.e. the checkout's own
``swift build`` output. Tests that need it are skipped, with a message saying how to build
it, only when it is missing; the framing/errors/locate tests and the fake-daemon tests run
regardless.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest
from hang import HANG  # noqa: E402

TESTS_DIR = Path(__file__).resolve().parent
PACKAGE_ROOT = TESTS_DIR.parent

# Test the source tree, not whatever copy of loram_client happens to be installed.
sys.path.insert(0, str(PACKAGE_ROOT))

from loram_client import LoramClient  # noqa: E402
from loram_client.locate import ENV_VAR, find_build_binary  # noqa: E402

#: The fake daemon (a Python script) used by the tests of client mechanics.
FAKE_DAEMON = [sys.executable, str(TESTS_DIR / "fake_daemon.py")]


def _locate_loramd() -> "str | None":
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return from_env
    built = find_build_binary(TESTS_DIR)
    return None if built is None else str(built)


@pytest.fixture(scope="session")
def loramd_path() -> str:
    """Path of the real daemon; skips the test if there is none."""
    path = _locate_loramd()
    if path is None:
        pytest.skip(
            "loramd binary not found: run `swift build` at the repository root "
            "(or set LORAMD=/path/to/loramd)"
        )
    if not os.access(path, os.X_OK):
        pytest.fail("LORAMD=%s is not an executable file" % path)
    return path


def _clients(check_protocol: bool, **defaults: Any) -> Iterator[Callable[..., LoramClient]]:
    """Yields a client factory (keyword arguments over ``defaults``); at teardown closes every
    client it made and, with ``check_protocol``, fails if a daemon broke the protocol."""
    made: List[LoramClient] = []

    def make(**kwargs: Any) -> LoramClient:
        client = LoramClient(**{**defaults, **kwargs})
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=5.0)
    if check_protocol:
        for client in made:
            assert client.protocol_errors == [], "daemon broke the protocol: %r" % client.protocol_errors


@pytest.fixture
def spawn(loramd_path: str) -> Iterator[Callable[..., LoramClient]]:
    """Factory for real-daemon clients (``debug_methods=True`` unless told otherwise).

    Every client it made is closed at teardown, and the test fails if the daemon put
    anything on stdout that is not a protocol message.
    """
    yield from _clients(check_protocol=True, command=loramd_path, debug_methods=True, lifecycle_timeout=HANG)


@pytest.fixture
def client(spawn: Callable[..., LoramClient]) -> LoramClient:
    """An initialized client of a daemon started with --debug-methods."""
    return spawn()


@pytest.fixture
def spawn_fake() -> Iterator[Callable[..., LoramClient]]:
    """Factory for clients of tests/fake_daemon.py (no Swift build needed)."""
    yield from _clients(check_protocol=False, command=FAKE_DAEMON, lifecycle_timeout=HANG)
