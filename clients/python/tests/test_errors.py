"""The error-code -> exception mapping of the RPC contract."""

from __future__ import annotations

import pytest

import loram_client as lc
from loram_client.errors import ERROR_CLASSES, error_from_response

CONTRACT = {
    -32700: lc.ParseError,
    -32600: lc.InvalidRequest,
    -32601: lc.MethodNotFound,
    -32602: lc.InvalidParams,
    -32603: lc.InternalError,
    -32002: lc.ServerNotInitialized,
    -32800: lc.RequestCancelled,
    -31001: lc.NotFound,
    -31010: lc.FormatError,
    -31011: lc.ShapeMismatch,
    -31020: lc.OverBudget,
    -31030: lc.LoramIOError,
}


def test_every_contract_code_has_its_class():
    assert ERROR_CLASSES == CONTRACT


@pytest.mark.parametrize("code,cls", sorted(CONTRACT.items()))
def test_factory_maps_code_to_class(code, cls):
    exc = error_from_response({"code": code, "message": "m", "data": {"hint": "do this"}}, request_id=7, method="x/y")
    assert type(exc) is cls
    assert isinstance(exc, lc.LoramError)
    assert (exc.code, exc.message, exc.hint, exc.request_id, exc.method) == (code, "m", "do this", 7, "x/y")
    assert "do this" in str(exc) and str(code) in str(exc)


def test_unknown_code_is_plain_loram_error():
    exc = error_from_response({"code": -1, "message": "odd"})
    assert type(exc) is lc.LoramError
    assert exc.data == {} and exc.hint is None


def test_invalid_params_field():
    exc = error_from_response({"code": -32602, "message": "bad", "data": {"hint": "h", "field": "ms"}})
    assert isinstance(exc, lc.InvalidParams) and exc.field == "ms"


def test_over_budget_fields():
    data = {"hint": "h", "needBytes": 10, "capBytes": 5, "breakdown": {"weights": 10}, "suggestion": {"r": 4}}
    exc = error_from_response({"code": -31020, "message": "too big", "data": data})
    assert isinstance(exc, lc.OverBudget)
    assert (exc.need_bytes, exc.cap_bytes, exc.breakdown, exc.suggestion) == (10, 5, {"weights": 10}, {"r": 4})


def test_io_error_fields():
    data = {"hint": "h", "path": "/full/model", "reason": "No space left on device", "errno": 28, "operation": "write"}
    exc = error_from_response({"code": -31030, "message": "I/O error", "data": data})
    assert isinstance(exc, lc.LoramIOError) and not isinstance(exc, OSError)
    assert (exc.path, exc.reason, exc.errno) == ("/full/model", "No space left on device", 28)


@pytest.mark.parametrize("error", [None, "boom", {"message": "no code"}, {"code": "x", "message": 3}])
def test_malformed_error_objects_do_not_crash(error):
    exc = error_from_response(error)
    assert isinstance(exc, lc.LoramError)


def test_non_object_data_is_kept_raw():
    exc = error_from_response({"code": -32603, "message": "m", "data": [1, 2]})
    assert exc.data == {} and exc.raw_data == [1, 2]


def test_daemon_exited_message():
    exc = lc.DaemonExited(3, ["first", "last words"])
    assert exc.exit_code == 3 and exc.stderr_lines == ["first", "last words"]
    assert "code 3" in str(exc) and "last words" in str(exc)
    assert not isinstance(exc, lc.LoramError)


def test_client_side_errors_are_standard_types_too():
    assert issubclass(lc.RequestTimeout, TimeoutError)
    assert issubclass(lc.DaemonNotFound, FileNotFoundError)
