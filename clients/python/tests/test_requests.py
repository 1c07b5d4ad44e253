"""Plain requests against the real daemon: results, typed errors, raw protocol edges."""

from __future__ import annotations

import queue
import time

import pytest

import loram_client as lc
from hang import HANG


def test_model_list_starts_empty(client):
    result = client.request("model/list", timeout=HANG)
    assert result["models"] == [] and result["adapters"] == [] and result["jobs"] == []
    memory = result["memory"]
    for key in ("capBytes", "usedBytes", "peakBytes"):
        assert isinstance(memory[key], int) and memory[key] >= 0, key
    assert memory["capBytes"] == client.device["hbmCapBytes"]
    assert memory["usedBytes"] <= memory["capBytes"]


def test_unknown_method(client):
    with pytest.raises(lc.MethodNotFound) as info:
        client.request("no/such/method", {}, timeout=HANG)
    assert info.value.code == -32601 and info.value.hint
    assert info.value.method == "no/such/method"


def test_debug_methods_need_the_flag(spawn):
    client = spawn(debug_methods=False)
    with pytest.raises(lc.MethodNotFound):
        client.request("debug/echo", {"x": 1}, timeout=HANG)
    assert not any(m.startswith("debug/") for m in client.capabilities["methods"])


def test_echo_round_trips_nested_unicode(client):
    params = {"text": "héllo ✓ 🦙 \u0000 \"quoted\"", "nested": {"list": [1, 2.5, None, True, "x" * 10000]}}
    assert client.request("debug/echo", params, timeout=HANG) == params


def test_invalid_params_names_the_field(client):
    with pytest.raises(lc.InvalidParams) as info:
        client.request("debug/sleep", {"ms": "x"}, timeout=HANG)
    assert info.value.field == "ms" and info.value.hint


def test_missing_param_names_the_field(client):
    with pytest.raises(lc.InvalidParams) as info:
        client.request("debug/sleep", {}, timeout=HANG)
    assert info.value.field == "ms"


@pytest.mark.parametrize(
    "params,field",
    [
        ({"ms": True}, "ms"),
        ({"ms": 1.5}, "ms"),
        ([1], "params"),
    ],
)
def test_ill_typed_params_name_the_field(client, params, field):
    with pytest.raises(lc.InvalidParams) as info:
        client.request("debug/sleep", params, timeout=HANG)
    assert info.value.field == field


def test_internal_error_and_the_daemon_keeps_serving(client):
    with pytest.raises(lc.InternalError) as info:
        client.request("debug/fail", timeout=HANG)
    assert info.value.hint
    assert client.request("debug/echo", {"still": "here"}, timeout=HANG) == {"still": "here"}


def test_log_message_notification(client):
    logs = []
    client.on_notification("window/logMessage", logs.append)
    assert client.request("debug/log", {"message": "hello from a test", "type": 2}, timeout=HANG) is None
    # delivered in order: the notification came before the response
    assert logs == [{"type": 2, "message": "hello from a test"}]


def test_log_message_default_type_is_in_range(client):
    logs = []
    remove = client.on_notification("window/logMessage", logs.append)
    client.request("debug/log", {"message": "m"}, timeout=HANG)
    remove()
    client.request("debug/log", {"message": "not seen"}, timeout=HANG)
    assert len(logs) == 1 and logs[0]["message"] == "m" and logs[0]["type"] in (1, 2, 3, 4)


def raw_request(client, body: bytes, timeout: float = 10):
    client.send_raw(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return client.next_unmatched_response(timeout=timeout)


def test_params_null_counts_as_absent(client):
    reply = raw_request(client, b'{"jsonrpc":"2.0","id":9001,"method":"model/list","params":null}')
    assert reply["id"] == 9001 and reply["result"]["models"] == []


def test_string_ids_are_echoed(client):
    reply = raw_request(client, b'{"jsonrpc":"2.0","id":"abc","method":"debug/echo","params":{"k":1}}')
    assert reply == {"jsonrpc": "2.0", "id": "abc", "result": {"k": 1}}


def test_parse_error_then_the_daemon_keeps_serving(client):
    reply = raw_request(client, b'{"jsonrpc": "2.0", "id": 5, "method": ')
    assert reply["id"] is None and reply["error"]["code"] == -32700
    assert reply["error"]["data"]["hint"]
    assert client.request("debug/echo", {"after": "garbage"}, timeout=HANG) == {"after": "garbage"}


def test_unframed_message_is_a_parse_error_then_resync(client):
    client.send_raw(b'{"jsonrpc":"2.0","id":906,"method":"model/list"}\r\n\r\n')
    reply = client.next_unmatched_response(timeout=HANG)
    assert reply["id"] is None and reply["error"]["code"] == -32700
    assert client.request("debug/echo", {"resync": 2}, timeout=HANG) == {"resync": 2}


def test_malformed_header_resynchronises(client):
    client.send_raw(b"Content-Length: nope\r\n\r\n")
    reply = client.next_unmatched_response(timeout=HANG)
    assert reply["id"] is None and reply["error"]["code"] == -32700
    assert client.request("debug/echo", {"resync": True}, timeout=HANG) == {"resync": True}


def test_invalid_request_object(client):
    reply = raw_request(client, b'{"jsonrpc":"1.0","id":77,"method":"model/list"}')
    assert reply["error"]["code"] == -32600


def test_batch(client):
    reply = raw_request(
        client,
        b'[{"jsonrpc":"2.0","id":801,"method":"debug/echo","params":{"n":1}},'
        b'{"jsonrpc":"2.0","method":"initialized"},'
        b'{"jsonrpc":"2.0","id":802,"method":"debug/echo","params":{"n":2}}]',
    )
    # The client unpacks batch answers; the unmatched ones arrive one by one.
    second = client.next_unmatched_response(timeout=HANG)
    by_id = {m["id"]: m["result"] for m in (reply, second)}
    assert by_id == {801: {"n": 1}, 802: {"n": 2}}


def test_empty_batch_is_one_invalid_request(client):
    reply = raw_request(client, b"[]")
    assert reply["error"]["code"] == -32600 and reply["id"] is None


def test_notification_only_batch_gets_no_answer(client):
    client.send_raw(lc.encode_frame([{"jsonrpc": "2.0", "method": "initialized"}]))
    time.sleep(0.3)
    assert client.request("debug/echo", {"n": 3}, timeout=HANG) == {"n": 3}
    with pytest.raises(queue.Empty):
        client.next_unmatched_response(timeout=0.2)


def test_lifecycle_methods_refused_inside_a_batch(client):
    reply = raw_request(client, b'[{"jsonrpc":"2.0","id":901,"method":"shutdown"}]')
    assert reply["id"] == 901 and "error" in reply
    assert client.request("model/list", timeout=HANG)["models"] == []  # not shut down
