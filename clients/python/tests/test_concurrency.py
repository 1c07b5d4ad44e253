"""Concurrency against the real daemon: out-of-order answers, cancellation, threads, death."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

import loram_client as lc
from hang import HANG


# Bounds on elapsed time are against the work's own length (a 60 s sleep: answering within half
# of it shows the quick answer did not wait for it), never a speed a busy machine could miss.

def test_fast_request_overtakes_slow_one(client):
    start = time.monotonic()
    slow = client.request_async("debug/sleep", {"ms": 60000})
    fast = client.request_async("debug/echo", {"fast": True})
    assert fast.request_id > slow.request_id
    assert fast.result(HANG) == {"fast": True}
    assert time.monotonic() - start < 30, "model/list-class requests must not wait for running work"
    assert not slow.done()
    slow.cancel_request()
    with pytest.raises(lc.RequestCancelled):
        slow.result(HANG)


def test_model_list_while_work_runs(client):
    slow = client.request_async("debug/sleep", {"ms": 60000})
    start = time.monotonic()
    assert client.request("model/list", timeout=HANG)["models"] == []
    assert time.monotonic() - start < 30
    slow.cancel_request()
    with pytest.raises(lc.RequestCancelled):
        slow.result(HANG)


def test_cancel_request_ends_work_promptly(client):
    future = client.request_async("debug/sleep", {"ms": 60000})
    time.sleep(0.2)
    start = time.monotonic()
    future.cancel_request()
    with pytest.raises(lc.RequestCancelled) as info:
        future.result(HANG)
    assert time.monotonic() - start < 30
    assert info.value.code == -32800 and info.value.hint
    assert client.request("debug/echo", {"after": "cancel"}, timeout=HANG) == {"after": "cancel"}


def test_cancel_by_id(client):
    future = client.request_async("debug/sleep", {"ms": 10000})
    client.cancel(future.request_id)
    with pytest.raises(lc.RequestCancelled):
        future.result(HANG)


def test_cancel_of_unknown_or_finished_request_is_ignored(client):
    client.cancel(999999)
    done = client.request_async("debug/echo", {"n": 1})
    assert done.result(HANG) == {"n": 1}
    client.cancel(done)
    assert client.request("debug/echo", {"n": 2}, timeout=HANG) == {"n": 2}


def test_local_cancel_also_stops_the_daemon_work(client):
    future = client.request_async("debug/sleep", {"ms": 10000})
    assert future.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(1)
    # the daemon's eventual RequestCancelled answer is dropped, and it keeps serving
    assert client.request("debug/echo", {"n": 1}, timeout=HANG) == {"n": 1}


def test_timeout_cancels_on_the_daemon(client):
    start = time.monotonic()
    with pytest.raises(lc.RequestTimeout):
        client.request("debug/sleep", {"ms": 60000}, timeout=0.3)
    assert time.monotonic() - start < 30
    # A later sleep is not queued behind the abandoned one.
    assert client.request("debug/sleep", {"ms": 50}, timeout=HANG) == {"sleptMs": 50}


def test_requests_from_many_threads(client):
    threads, per_thread = 8, 25
    errors = []
    results = {}

    def work(t: int) -> None:
        try:
            for i in range(per_thread):
                payload = {"t": t, "i": i, "pad": "é" * (i * 7)}
                results[(t, i)] = (payload, client.request("debug/echo", payload, timeout=HANG))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert errors == []
    assert len(results) == threads * per_thread
    assert all(sent == got for sent, got in results.values())


def test_futures_from_several_threads(client):
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        futures = list(pool.map(lambda n: client.request_async("debug/sleep", {"ms": 2000 + 100 * n}), range(12)))
    ids = [f.request_id for f in futures]
    assert len(set(ids)) == len(ids)
    start = time.monotonic()
    assert [f.result(HANG) for f in futures] == [{"sleptMs": 2000 + 100 * n} for n in range(12)]
    # They ran concurrently (at least 8 at a time: about 5 s), not one after the other (30.6 s).
    assert time.monotonic() - start < 15


def test_daemon_death_fails_pending_futures(client):
    pending = [client.request_async("debug/sleep", {"ms": 10000}) for _ in range(3)]
    client.process.kill()
    for future in pending:
        with pytest.raises(lc.DaemonExited) as info:
            future.result(HANG)
        assert info.value.exit_code == -9
    with pytest.raises(lc.DaemonExited):
        client.request("model/list", timeout=HANG)
    with pytest.raises(lc.DaemonExited):
        client.notify("initialized")


def test_end_of_stdin_cancels_running_work(client):
    future = client.request_async("debug/sleep", {"ms": 60000})
    time.sleep(0.2)
    start = time.monotonic()
    client.close_stdin()
    with pytest.raises((lc.RequestCancelled, lc.DaemonExited)):
        future.result(HANG)
    client.wait(HANG)
    assert time.monotonic() - start < 30
