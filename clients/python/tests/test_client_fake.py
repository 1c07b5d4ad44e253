"""Client mechanics against tests/fake_daemon.py: what the real daemon cannot be made to do
(crash with stderr output, print junk on stdout, send the client a request)."""

from __future__ import annotations

import concurrent.futures
import queue
import time

import pytest

import loram_client as lc
from hang import HANG


def test_initialize_result_is_stored(spawn_fake):
    client = spawn_fake()
    assert client.server_info == {"name": "fake_daemon", "version": "0"}
    assert client.capabilities["methods"] == ["echo"]
    assert client.device["kind"] == "cpu"
    assert client.init_result["serverInfo"] is client.server_info


def test_request_ids_are_integers_increasing_from_one(spawn_fake):
    client = spawn_fake(initialize=False)
    futures = [client.request_async("echo", {"n": n}) for n in range(5)]
    assert [f.request_id for f in futures] == [1, 2, 3, 4, 5]
    assert [f.result(HANG) for f in futures] == [{"n": n} for n in range(5)]


def test_crash_fails_pending_with_exit_code_and_stderr(spawn_fake):
    client = spawn_fake()
    hanging = client.request_async("never")
    with pytest.raises(lc.DaemonExited) as info:
        client.request("crash", {"code": 3, "lines": ["warming up", "fatal: out of llamas"]}, timeout=HANG)
    assert info.value.exit_code == 3
    assert info.value.stderr_lines[-1] == "fatal: out of llamas"
    with pytest.raises(lc.DaemonExited):
        hanging.result(HANG)
    with pytest.raises(lc.DaemonExited):  # later calls fail at once
        client.request("echo", {}, timeout=HANG)
    assert client.returncode == 3 and not client.running


def test_stderr_callback_sees_each_line(spawn_fake):
    lines = []
    client = spawn_fake(stderr=lines.append)
    with pytest.raises(lc.DaemonExited):
        client.request("crash", {"code": 0, "lines": ["a", "b"]}, timeout=HANG)
    client.wait(HANG)
    assert lines == ["a", "b"] and client.stderr_lines == ["a", "b"]


def test_junk_on_stdout_is_recorded_and_reading_resynchronises(spawn_fake):
    client = spawn_fake()
    assert client.request("garbage", timeout=HANG) == "after garbage"
    assert len(client.protocol_errors) == 1
    assert "not a header" in str(client.protocol_errors[0])
    client.protocol_errors.clear()


def test_requests_from_the_daemon_get_method_not_found(spawn_fake):
    client = spawn_fake()
    answer = client.request("ask", timeout=HANG)
    assert answer["id"] == "srv-1" and answer["error"]["code"] == -32601


def test_progress_routed_by_token_and_seen_by_global_listeners(spawn_fake):
    client = spawn_fake()
    routed, seen = [], []
    client.on_notification("$/progress", seen.append)
    assert client.request("progress", {}, on_progress=routed.append, timeout=HANG) == "done"
    assert [v["kind"] for v in routed] == ["begin", "report", "end"]
    assert len(seen) == 3 and all(p["token"] == seen[0]["token"] for p in seen)


def test_blocking_from_a_callback_raises_instead_of_deadlocking(spawn_fake):
    client = spawn_fake()
    outcome: "queue.Queue[object]" = queue.Queue()

    def callback(_value):
        try:
            client.request("echo", {}, timeout=1)
        except Exception as exc:  # noqa: BLE001 - the point is which one
            outcome.put(exc)
        else:
            outcome.put(None)
        # The async form works from a callback.
        client.request_async("echo", {"from": "callback"}).add_done_callback(lambda f: outcome.put(f.result()))

    client.request("progress", {}, on_progress=callback, timeout=HANG)
    first = outcome.get(timeout=HANG)
    assert isinstance(first, lc.CallbackDeadlock)
    # one CallbackDeadlock per progress value (3), then the async answers
    results = [outcome.get(timeout=HANG) for _ in range(5)]
    assert {"from": "callback"} in results


def test_timeout_raises_request_timeout_and_forgets_the_request(spawn_fake):
    client = spawn_fake()
    start = time.monotonic()
    with pytest.raises(lc.RequestTimeout) as info:
        client.request("never", timeout=0.3)
    assert time.monotonic() - start < 60  # "never" never answers: the timeout ended the wait
    assert isinstance(info.value, TimeoutError) and info.value.method == "never"
    assert client.request("echo", [1], timeout=HANG) == [1]


def test_local_cancel(spawn_fake):
    client = spawn_fake()
    future = client.request_async("never")
    assert future.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(1)


def test_unmatched_responses_from_send_raw(spawn_fake):
    client = spawn_fake()
    client.send_raw(lc.encode_frame({"jsonrpc": "2.0", "id": 424242, "method": "echo", "params": {"raw": 1}}))
    response = client.next_unmatched_response(timeout=HANG)
    assert response == {"jsonrpc": "2.0", "id": 424242, "result": {"raw": 1}}
    with pytest.raises(queue.Empty):
        client.next_unmatched_response(timeout=0.1)


def test_shutdown_and_exit_codes(spawn_fake):
    assert spawn_fake().shutdown() == 0
    assert spawn_fake().exit() == 1


def test_missing_binary():
    with pytest.raises(lc.DaemonNotFound):
        lc.LoramClient(command="/nonexistent/loramd")
