"""$/progress against the real daemon: per-request routing, order, percentages."""

from __future__ import annotations

import time

import pytest

import loram_client as lc
from hang import HANG


def kinds(values):
    return [v["kind"] for v in values]


def test_progress_begin_reports_end(client):
    values = []
    assert client.request("debug/sleep", {"ms": 1200}, on_progress=values.append, timeout=HANG) == {"sleptMs": 1200}
    # every value sent before the response has been delivered when request() returns
    assert values, "no $/progress for a request with workDoneToken"
    assert values[0]["kind"] == "begin" and isinstance(values[0].get("title"), str)
    assert values[-1]["kind"] == "end"
    assert set(kinds(values[1:-1])) <= {"report"}
    percentages = [v["percentage"] for v in values if v["kind"] == "report" and "percentage" in v]
    assert percentages, "reports carry percentage"
    assert all(0 <= p <= 100 for p in percentages)
    assert percentages == sorted(percentages)


def test_reports_are_coalesced(client):
    values = []
    client.request("debug/sleep", {"ms": 1500}, on_progress=values.append, timeout=HANG)
    reports = kinds(values).count("report")
    # "a few per second at most": allow up to ~6/s over 1.5 s plus a final one
    assert reports <= 10, reports


def test_explicit_token_and_global_listener(client):
    seen, routed = [], []
    client.on_notification("$/progress", seen.append)
    params = {"ms": 300}
    client.request("debug/sleep", params, work_done_token="my-token-1", on_progress=routed.append, timeout=HANG)
    assert params == {"ms": 300}, "the caller's params are not modified"
    assert seen and all(p["token"] == "my-token-1" for p in seen)
    assert [p["value"] for p in seen] == routed


def test_token_without_callback_goes_to_global_listeners(client):
    seen = []
    client.on_notification("$/progress", seen.append)
    client.request("debug/sleep", {"ms": 100}, work_done_token=42, timeout=HANG)
    assert seen and {p["token"] for p in seen} == {42}
    assert kinds(p["value"] for p in seen)[0] == "begin"


def test_concurrent_requests_get_their_own_progress(client):
    a, b = [], []
    fa = client.request_async("debug/sleep", {"ms": 600}, on_progress=a.append)
    fb = client.request_async("debug/sleep", {"ms": 300}, on_progress=b.append)
    assert fa.progress_token != fb.progress_token
    fa.result(HANG), fb.result(HANG)
    for values in (a, b):  # nothing crossed over: one begin and one end each
        assert values[0]["kind"] == "begin" and values[-1]["kind"] == "end"
        assert kinds(values).count("begin") == 1 and kinds(values).count("end") == 1


def test_cancelled_request_ends_its_progress(client):
    values = []
    future = client.request_async("debug/sleep", {"ms": 10000}, on_progress=values.append)
    time.sleep(0.3)
    future.cancel_request()
    with pytest.raises(lc.RequestCancelled):
        future.result(HANG)
    assert values and values[0]["kind"] == "begin"
    assert values[-1]["kind"] == "end", "a cancelled request still closes its progress with end"


def test_no_progress_without_token(client):
    seen = []
    client.on_notification("$/progress", seen.append)
    client.request("debug/sleep", {"ms": 100}, timeout=HANG)
    assert seen == []
