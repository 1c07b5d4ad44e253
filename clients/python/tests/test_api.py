"""The typed API (loram_client.Loram) against the real daemon: one test per method family, the
errors it raises, streaming, timeouts, cancellation and progress bars."""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import subprocess
import time

import pytest

import loram_client as lc
from loram_client import bars
from hang import HANG


@pytest.fixture(scope="session")
def tiny_model(loramd_path, tmp_path_factory):
    """A random 2-layer LLaMA (GQA, 512-token vocabulary) with its tokenizer."""
    out = tmp_path_factory.mktemp("tiny")
    subprocess.run([loramd_path, "make-model", "--preset", "tiny", "--out", str(out)], check=True, capture_output=True)
    return str(out)


@pytest.fixture(scope="session")
def text_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    lines = ["The cat sat on the mat.", "A journey of a thousand miles begins with one step.",
             "Structured pruning removes whole attention heads and neurons.", "Small carriers train fast."]
    path.write_text("".join(json.dumps({"text": line}) + "\n" for line in lines))
    return str(path)


@pytest.fixture
def loram(loramd_path):
    with lc.Loram(loramd_path, lifecycle_timeout=HANG) as session:
        yield session
        assert session.protocol_errors == []


@pytest.fixture
def model(loram, tiny_model):
    return loram.load_model(tiny_model)["modelId"]


def test_models_load_list_save_unload(loram, tiny_model, tmp_path):
    loaded = loram.load_model(tiny_model, dtype="f32")
    assert loaded["parameters"] == 158016 and loaded["config"]["layers"] == 2
    listed = loram.list_models()
    assert [m["modelId"] for m in listed["models"]] == [loaded["modelId"]]
    assert listed["memory"]["usedBytes"] >= loaded["bytes"]
    files = loram.save_model(loaded["modelId"], tmp_path / "copy")
    assert any(f.endswith("model.safetensors") for f in files) and all(os.path.exists(f) for f in files)
    assert loram.unload_model(loaded["modelId"]) is None
    assert loram.list_models()["models"] == []


def test_gguf_save_load_and_adapter(loram, tiny_model, tmp_path):
    """A model saved as GGUF loads back with the same tokens and logits; an adapter saves as GGUF."""
    folder = loram.load_model(tiny_model, dtype="f32")["modelId"]
    files = loram.save_model(folder, tmp_path / "tiny.gguf", format="gguf", gguf_type="F32")
    assert files == [str(tmp_path / "tiny.gguf")]
    loaded = loram.load_model(tmp_path / "tiny.gguf", dtype="f32")
    assert loaded["format"] == "gguf" and loaded["config"]["layers"] == 2
    ids = loram.tokenize(folder, "The cat sat on the mat")
    assert loram.tokenize(loaded["modelId"], "The cat sat on the mat") == ids
    assert loram.forward(loaded["modelId"], ids)[0] == pytest.approx(loram.forward(folder, ids)[0], abs=1e-6)
    adapter = loram.create_adapter(loaded["modelId"], r=4, alpha=8, seed=1)
    written = loram.save_adapter(adapter["adapterId"], tmp_path / "adapter.gguf", format="gguf")
    assert written == [str(tmp_path / "adapter.gguf")] and open(written[0], "rb").read(4) == b"GGUF"


def test_tokenize_detokenize_forward(loram, model):
    ids = loram.tokenize(model, "The cat sat")
    assert ids[0] == 1 and len(ids) > 1  # BOS first
    assert loram.tokenize(model, "The cat sat", add_bos=False) == ids[1:]
    assert loram.detokenize(model, ids, skip_special_tokens=True) == "The cat sat"
    last = loram.forward(model, ids)
    every = loram.forward(model, ids, logits="all")
    assert len(last) == 1 and len(every) == len(ids) and len(last[0]) == 512
    assert every[-1] == pytest.approx(last[0], abs=1e-5)


def test_forward_base64_and_json_logits_are_the_same_floats(loram, model):
    ids = loram.tokenize(model, "The cat sat on the mat")
    packed = loram.call("model/forward", {"modelId": model, "ids": ids, "logits": "all", "logitsEncoding": "base64"})
    assert packed["logitsEncoding"] == "base64" and packed["dtype"] == "float32" and packed["shape"] == [len(ids), 512]
    assert isinstance(packed["logits"], str) and len(packed["logits"]) == (len(ids) * 512 * 4 + 2) // 3 * 4
    as_json = loram.forward(model, ids, logits="all", encoding="json")
    as_base64 = loram.forward(model, ids, logits="all")  # the default
    assert len(as_base64) == len(ids) and all(len(row) == 512 for row in as_base64)
    # float32 values exactly: the JSON decimals are the shortest round trip of the same floats.
    assert as_base64 == as_json
    assert lc.decode_logits(packed) == as_json


def test_decode_logits_without_a_daemon():
    row = [1.5, -0.25, 3.0e-5, float("inf")]
    raw = struct.pack("<4f", *row) + struct.pack("<4f", *reversed(row))
    result = {"logits": base64.b64encode(raw).decode(), "logitsEncoding": "base64", "dtype": "float32", "shape": [2, 4]}
    decoded = lc.decode_logits(result)
    assert decoded[0][:3] == [1.5, -0.25, struct.unpack("<f", struct.pack("<f", 3.0e-5))[0]]
    assert decoded[0][3] == float("inf") and decoded[1] == list(reversed(decoded[0]))
    assert lc.decode_logits({"logits": [[1.0, 2.0]]}) == [[1.0, 2.0]]
    with pytest.raises(ValueError):
        lc.decode_logits({**result, "shape": [3, 4]})
    np = pytest.importorskip("numpy")
    array = lc.decode_logits(result, numpy=True)
    assert array.shape == (2, 4) and array.dtype == np.float32 and array[1, 0] == np.float32("inf")


def test_generate_stream_yields_the_result_text(loram, model):
    whole = loram.generate(model, "Once upon a time", max_tokens=24, temperature=0)
    assert isinstance(whole, lc.Generation) and whole.completion_tokens == len(whole.ids) <= 24
    assert whole.finish_reason in ("length", "eos") and whole.prompt_tokens > 0
    stream = loram.generate(model, "Once upon a time", max_tokens=24, temperature=0, stream=True)
    pieces = list(stream)
    assert "".join(pieces) == stream.result.text == whole.text
    assert stream.result.ids == whole.ids


def test_generate_stream_cancel_keeps_the_partial_text(loram, model):
    stream = loram.generate(model, "Once", max_tokens=200000, temperature=0.8, seed=3, stream=True)
    pieces = []
    for piece in stream:
        pieces.append(piece)
        if len(pieces) == 2:
            stream.cancel()
    result = stream.result
    assert result.finish_reason == "cancelled"
    assert result.text == "".join(pieces) and 0 < result.completion_tokens < 200000
    assert loram.list_models()["models"]  # still serving


def test_timeout_cancels_on_the_daemon(loram, model, text_data):
    adapter = loram.create_adapter(model, r=2, alpha=4)["adapterId"]
    job = loram.train_create(model, text_data, adapter_id=adapter, steps=1000000, lr=1e-3, seq_len=32)["jobId"]
    started = time.monotonic()
    with pytest.raises(lc.RequestTimeout):
        loram.train_run(job, timeout=0.5)
    assert time.monotonic() - started < 60  # a million steps would take days: it stopped
    # The daemon stopped the run at a step boundary, so the job is free to step again.
    deadline = time.monotonic() + HANG
    while True:
        try:
            assert loram.train_step(job)["step"] >= 1
            break
        except lc.InvalidParams:  # "busy" until the cancelled run has answered
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_errors_carry_code_hint_and_field(loram, model):
    with pytest.raises(lc.NotFound) as missing:
        loram.load_model("/no/such/model")
    assert missing.value.code == -31001 and missing.value.hint
    with pytest.raises(lc.NotFound) as unknown:
        loram.tokenize("m-nope", "x")
    assert unknown.value.code == -31001 and unknown.value.hint
    with pytest.raises(lc.InvalidParams) as bad:
        loram.generate(model, "x", max_tokens=0)
    assert bad.value.code == -32602 and bad.value.field == "maxTokens" and bad.value.hint
    with pytest.raises(lc.InvalidParams) as target:
        loram.create_adapter(model, targets=["embed_tokens"])
    assert target.value.field == "targets[0]"
    assert loram.list_models()["adapters"] == []  # nothing half-made


def test_perplexity(loram, model, text_data):
    result = loram.perplexity(model, text_data, seq_len=32)
    assert result["tokens"] > 0 and result["perplexity"] == pytest.approx(2.718281828 ** result["loss"], rel=1e-6)
    assert loram.perplexity(model, lc.dataset(text_data, "text"), max_samples=1)["tokens"] < result["tokens"]


def test_adapter_create_save_load_merge_unload(loram, model, tmp_path):
    adapter = loram.create_adapter(model, r=4, alpha=8, seed=1)
    assert adapter["r"] == 4 and adapter["parameters"] > 0 and adapter["targets"] == list(lc.DECODER_TARGETS)
    files = loram.save_adapter(adapter["adapterId"], tmp_path / "a")
    assert sorted(os.path.basename(f) for f in files) == ["adapter_config.json", "adapter_model.safetensors"]
    loaded = loram.load_adapter(model, tmp_path / "a")
    assert loaded["parameters"] == adapter["parameters"]
    merged = loram.merge_adapter(model, loaded["adapterId"])
    ids = loram.tokenize(model, "Hello")
    # B = 0: the merged model and the adapter both change nothing yet.
    assert loram.forward(merged["modelId"], ids)[0] == pytest.approx(loram.forward(model, ids)[0], abs=1e-5)
    assert loram.unload_adapter(adapter["adapterId"]) is None
    assert [a["adapterId"] for a in loram.list_models()["adapters"]] == [loaded["adapterId"]]


def test_bf16_activations_are_named_planned_smaller_and_echoed(loram, model, text_data):
    adapter = loram.create_adapter(model, r=4, alpha=8)["adapterId"]
    for dtype in ("f32", "bf16"):
        job = loram.train_create(model, text_data, adapter_id=adapter, steps=2, lr=1e-2, seq_len=32, micro_batch=2,
                                 activation_dtype=dtype)
        assert job["plan"]["activationDtype"] == dtype
        loram.train_close(job["jobId"])
    with pytest.raises(lc.InvalidParams) as bad:
        loram.train_create(model, text_data, adapter_id=adapter, steps=2, lr=1e-2, seq_len=32, activation_dtype="f8")
    assert bad.value.data.get("field") == "activationDtype"
    # On a real shape the layers' activations are the peak, and bf16 halves most of them.
    plans = {d: loram.memory_plan({"preset": "llama-3.1-8b"}, seq_len=1024, activation_dtype=d) for d in ("f32", "bf16")}
    assert plans["bf16"].breakdown["activations"] < 0.75 * plans["f32"].breakdown["activations"]


def test_matmul_dtype_is_named_and_echoed_as_what_runs(loram, model, text_data):
    amx = loram.device["amx"]
    losses = {}
    for dtype in ("f32", "bf16"):
        adapter = loram.create_adapter(model, r=4, alpha=8, seed=3)["adapterId"]  # a fresh one each: steps train it
        job = loram.train_create(model, text_data, adapter_id=adapter, steps=2, lr=1e-2, seq_len=32, micro_batch=2,
                                 matmul_dtype=dtype, seed=1)
        assert job["plan"]["matmulDtype"] == (dtype if amx else "f32")
        assert any("AMX" in w for w in job["warnings"]) == (dtype == "bf16" and not amx)
        losses[dtype] = loram.train_step(job["jobId"])["losses"][0]
        loram.train_close(job["jobId"])
    # bf16 products move the loss by bf16 rounding only (and not at all without AMX).
    assert losses["bf16"] == pytest.approx(losses["f32"], rel=5e-3)
    with pytest.raises(lc.InvalidParams) as bad:
        loram.train_create(model, text_data, adapter_id=adapter, steps=2, lr=1e-2, seq_len=32, matmul_dtype="f8")
    assert bad.value.data.get("field") == "matmulDtype"


def test_training_step_run_save_resume_close(loram, model, text_data, tmp_path):
    adapter = loram.create_adapter(model, r=4, alpha=8)["adapterId"]
    job = loram.train_create(model, text_data, adapter_id=adapter, steps=6, lr=1e-2, seq_len=32, micro_batch=2)
    assert job["plan"]["peakBytes"] > 0 and job["examples"] == 4
    first = loram.train_step(job["jobId"])
    assert first["step"] == 1 and len(first["losses"]) == 1
    two = loram.train_step(job["jobId"], 2)
    assert two["step"] == 3 and len(two["losses"]) == 2
    seen = []
    run = loram.train_run(job["jobId"], progress=seen.append)
    assert run["step"] == 6 and run["loss"] < first["losses"][0]
    assert [v["kind"] for v in seen][0] == "begin" and seen[-1]["kind"] == "end"
    saved = loram.train_save(job["jobId"], tmp_path / "job")
    assert os.path.isdir(tmp_path / "job" / "adapter") and saved is not None
    assert loram.train_close(job["jobId"]) is None
    resumed = loram.train_resume(tmp_path / "job", model_id=model)
    assert resumed["step"] == 6
    loram.train_close(resumed["jobId"])


def test_train_run_progress_bar_plain(loram, model, text_data, monkeypatch, capsys):
    monkeypatch.setattr(bars, "make_bar", lambda total, title="", stream=None, plain=False: bars.PlainBar(total, title, stream, 0.0))
    monkeypatch.setattr(lc.api, "make_bar", bars.make_bar)
    adapter = loram.create_adapter(model, r=2, alpha=4)["adapterId"]
    job = loram.train_create(model, text_data, adapter_id=adapter, steps=5, lr=1e-3, seq_len=32)
    loram.train_run(job["jobId"], progress=True)
    err = capsys.readouterr().err
    assert "train [" in err and "5/5" in err and "loss" in err and err.endswith("\n")


def test_train_run_progress_bar_tqdm(loram, model, text_data, capsys):
    pytest.importorskip("tqdm")
    adapter = loram.create_adapter(model, r=2, alpha=4)["adapterId"]
    job = loram.train_create(model, text_data, adapter_id=adapter, steps=5, lr=1e-3, seq_len=32)
    loram.train_run(job["jobId"], progress=True)
    err = capsys.readouterr().err
    assert "train" in err and "5/5" in err and "100%" in err


def test_plain_bar_draws_one_line():
    out = io.StringIO()
    with bars.PlainBar(10, "x", out, min_interval=0.0) as bar:
        bar.update(5, {"loss": 1.23456})
        bar.update(10, {"loss": 0.5})
    text = out.getvalue()
    assert text.count("\n") == 1 and "\r" in text
    assert "x [" + "#" * 12 + "." * 12 + "] 5/10  loss 1.235" in text and "10/10  loss 0.5" in text


def test_train_run_async_cancel_keeps_the_job(loram, model, text_data):
    adapter = loram.create_adapter(model, r=2, alpha=4)["adapterId"]
    job = loram.train_create(model, text_data, adapter_id=adapter, steps=100000, lr=1e-3, seq_len=32)["jobId"]
    steps = []
    future = loram.train_run_async(job, on_progress=lambda v: steps.append(v.get("step")))
    deadline = time.monotonic() + HANG
    while not any(steps) and time.monotonic() < deadline:
        time.sleep(0.05)
    future.cancel_request()
    with pytest.raises(lc.RequestCancelled) as cancelled:
        future.result(20)
    partial = cancelled.value.data["partial"]["step"]
    assert partial >= 1
    assert loram.train_step(job)["step"] == partial + 1


def test_memory_plan_equals_the_raw_request(loram):
    plan = loram.memory_plan({"preset": "llama-3.1-70b"}, seq_len=512, lora_r=8, base_dtype="nf4", prune=0.85,
                             cap_bytes=18 << 30, search=True)
    raw = loram.request("memory/plan", {"model": {"preset": "llama-3.1-70b"}, "hbmCapBytes": 18 << 30, "search": True,
                                        "workload": {"kind": "train", "seqLen": 512, "lora": {"r": 8}, "baseDtype": "nf4",
                                                     "prune": {"method": "l2", "ratio": 0.85}}})
    assert plan.raw == raw
    assert not plan.fits and plan.peak_bytes == raw["peakBytes"] and plan.cap_bytes == 18 << 30
    assert plan.parameters_original == 70553706496 and plan.reduction == pytest.approx(15.81, abs=0.01)
    assert plan.suggestion is not None and plan.suggestion.changes == {"checkpointing": "layer"}
    assert plan.suggestion.peak_bytes <= 18 << 30
    # docs/rpc.md says the breakdown sums to the lower bound; loramd 0.4 is 4,144 bytes short
    # (reported), so this checks it to within 64 KiB.
    assert 0 <= plan.lower_bound_bytes - sum(plan.breakdown.values()) < 1 << 16


def test_memory_plan_of_a_loaded_model_with_detail(loram, model):
    plan = loram.memory_plan(model, seq_len=32, detail=True)
    assert plan.fits and plan.buffers and set(plan.live_at_peak) <= {b.name for b in plan.buffers}
    assert max(b.offset + b.bytes for b in plan.buffers) == plan.peak_bytes
    full = loram.memory_plan(model, seq_len=32, lora_r=None)
    assert full.breakdown["optimizer"] > plan.breakdown["optimizer"]


# ---------------------------------------------------------------- methods being built elsewhere


def _needs(loram, method):
    if not loram.has_method(method):
        pytest.skip("this loramd does not serve %s yet (capabilities.methods)" % method)


def test_prune_and_recover(loram, model, text_data):
    _needs(loram, "model/prune")
    pruned = loram.prune_model(model, 0.5, method="l2", layers=[0, 2])
    assert pruned["modelId"] != model and pruned["parameters"] < 158016 and pruned["reduction"] > 1
    assert len(loram.list_models()["models"]) == 2
    _needs(loram, "adapter/recover")
    small = loram.create_adapter(pruned["modelId"], r=4, alpha=8)["adapterId"]
    job = loram.train_create(pruned["modelId"], text_data, adapter_id=small, steps=2, lr=1e-2, seq_len=32)
    loram.train_run(job["jobId"])
    recovered = loram.recover_adapter(small, model)
    assert recovered["adapterId"] != small
    ids = loram.tokenize(model, "The cat")
    assert len(loram.forward(model, ids, adapter_id=recovered["adapterId"])[0]) == 512
    with pytest.raises(lc.LoramError) as wrong:
        loram.recover_adapter(small, pruned["modelId"])
    assert wrong.value.hint


def test_prune_bad_ratio(loram, model):
    _needs(loram, "model/prune")
    with pytest.raises(lc.InvalidParams) as bad:
        loram.prune_model(model, 1.5, layers=[0, 2])
    assert bad.value.field and bad.value.hint


def test_quantize(loram, model):
    _needs(loram, "model/quantize")
    quantized = loram.quantize_model(model)
    assert quantized["modelId"] != model and quantized["bytes"] < loram.list_models()["models"][0]["bytes"]


def test_loram_run(loram, tiny_model, text_data, tmp_path):
    _needs(loram, "loram/run")
    result = loram.loram_run(tiny_model, prune={"method": "l2", "ratio": 0.5, "layers": [0, 2]},
                             train={"dataset": lc.dataset(text_data), "seqLen": 32, "microBatch": 1, "steps": 2, "lr": 1e-2},
                             out_dir=tmp_path / "run")
    assert result["prunedModelId"] and result["adapterId"] and isinstance(result["report"], dict)
