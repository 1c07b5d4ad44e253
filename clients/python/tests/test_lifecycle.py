"""Lifecycle against the real daemon: initialize, shutdown/exit codes, end of input."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

import loram_client as lc
from hang import HANG


def test_initialize_result(client):
    assert client.server_info["name"] == "loramd"
    assert isinstance(client.server_info["version"], str)
    caps = client.capabilities
    for key in ("methods", "dtypes", "pruning"):
        assert isinstance(caps[key], list), key
    assert "model/list" in caps["methods"]
    device = client.device
    assert isinstance(device["kind"], str)
    for key in ("threads", "memoryBytes", "hbmCapBytes"):
        assert isinstance(device[key], int) and device[key] > 0, key
    assert device["hbmCapBytes"] <= device["memoryBytes"]


def test_hbm_cap_from_initialize_is_the_budget(spawn):
    cap = 1 << 30
    client = spawn(init_params={"hbmCapBytes": cap})
    assert client.device["hbmCapBytes"] == cap
    assert client.request("model/list", timeout=HANG)["memory"]["capBytes"] == cap


def test_shutdown_then_exit_is_code_0(client):
    assert client.shutdown() == 0
    assert client.returncode == 0 and not client.running


def test_exit_without_shutdown_is_code_1(client):
    assert client.exit() == 1


def test_context_manager_shuts_down_cleanly(loramd_path):
    with lc.LoramClient(command=loramd_path) as client:
        assert client.request("model/list", timeout=HANG)["models"] == []
    assert client.returncode == 0


def test_end_of_stdin_exits(client):
    client.close_stdin()
    code = client.wait(HANG)
    assert code in (0, 1), code


def test_request_before_initialize_is_server_not_initialized(spawn):
    client = spawn(initialize=False)
    with pytest.raises(lc.ServerNotInitialized) as info:
        client.request("model/list", timeout=HANG)
    assert info.value.code == -32002 and info.value.hint
    # and initialize still works afterwards
    assert client.initialize()["serverInfo"]["name"] == "loramd"
    assert client.request("model/list", timeout=HANG)["jobs"] == []


def test_notifications_before_initialize_are_dropped(spawn):
    client = spawn(initialize=False)
    logs = []
    client.on_notification("window/logMessage", logs.append)
    client.notify("debug/log", {"message": "too early"})  # a notification, not a request
    client.initialize()
    client.request("debug/log", {"message": "on time"}, timeout=HANG)
    assert [entry["message"] for entry in logs] == ["on time"]


def test_requests_after_shutdown_are_invalid_request(client):
    assert client.request("shutdown", timeout=HANG) is None
    with pytest.raises(lc.InvalidRequest) as info:
        client.request("model/list", timeout=HANG)
    assert info.value.hint
    assert client.exit() == 0


def test_shutdown_before_initialize(spawn):
    client = spawn(initialize=False)
    with pytest.raises(lc.ServerNotInitialized):
        client.shutdown()
    assert client.exit() == 1


def test_daemon_exits_when_process_id_is_gone(spawn):
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        client = spawn(init_params={"processId": parent.pid})
        assert client.running
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + HANG
    while client.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not client.running, "loramd kept running after its processId %d exited" % parent.pid
