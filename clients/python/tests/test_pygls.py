"""Interoperability: a JSON-RPC client we did not write (pygls) drives the daemon's lifecycle.

Written against pygls 2.1.1 (``pygls.client.JsonRPCClient``: ``start_io(cmd, *args)``,
``protocol.send_request_async``, ``protocol.notify``, ``stop()``); pygls 1.x has the same
calls. pygls differs from loram_client on the wire in ways the contract must tolerate:
string (UUID) request ids, ``"params": null`` on ``shutdown`` and ``exit``, and a
``Content-Type`` header on every message. Skipped if pygls is not installed.
"""

from __future__ import annotations

import asyncio

import pytest

pygls_client = pytest.importorskip("pygls.client")
pygls_exceptions = pytest.importorskip("pygls.exceptions")


def plain(value):
    """pygls turns JSON objects into namedtuple-like ``Object``s; back to dicts/lists."""
    if hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


async def drive(loramd_path: str) -> dict:
    client = pygls_client.JsonRPCClient()
    await client.start_io(loramd_path)
    out: dict = {}
    try:
        protocol = client.protocol
        out["initialize"] = await asyncio.wait_for(
            protocol.send_request_async(
                "initialize", {"processId": None, "clientInfo": {"name": "pygls-test"}}
            ),
            10,
        )
        protocol.notify("initialized", {})
        out["model/list"] = await asyncio.wait_for(protocol.send_request_async("model/list"), 10)
        try:
            await asyncio.wait_for(protocol.send_request_async("no/such/method", {}), 10)
        except pygls_exceptions.JsonRpcException as exc:
            out["unknown"] = exc
        out["shutdown"] = await asyncio.wait_for(protocol.send_request_async("shutdown"), 10)
        protocol.notify("exit")
        out["exit_code"] = await asyncio.wait_for(client._server.wait(), 10)
    finally:
        if client._server is not None and client._server.returncode is None:
            client._server.kill()
        await asyncio.wait_for(client.stop(), 10)
    return out


def test_pygls_drives_the_lifecycle(loramd_path):
    out = asyncio.run(drive(loramd_path))
    init = plain(out["initialize"])
    assert init["serverInfo"]["name"] == "loramd"
    assert "model/list" in init["capabilities"]["methods"]
    assert init["device"]["hbmCapBytes"] > 0
    listing = plain(out["model/list"])
    assert listing["models"] == [] and listing["adapters"] == [] and listing["jobs"] == []
    assert listing["memory"]["capBytes"] == init["device"]["hbmCapBytes"]
    assert out["unknown"].code == -32601
    assert out["shutdown"] is None
    assert out["exit_code"] == 0
