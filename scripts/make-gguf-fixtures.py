#!/usr/bin/env python3
"""Writes the GGUF fixtures under Tests/Fixtures/gguf/ with llama.cpp's gguf-py.

    /work/refenv/bin/python scripts/make-gguf-fixtures.py

Needs numpy and gguf (the `gguf` PyPI package, llama.cpp's gguf-py). Deterministic: seeded RNG.

types.gguf    for every type the Swift reader dequantizes: `T.q` (2 rows x 256) and `T.ref`
              (F32, gguf-py's `gguf.quants.dequantize` of `T.q`). Types the Swift writer encodes
              also get `T.src` (the F32 values `T.q` was quantized from by `gguf.quants.quantize`);
              their second row holds edge blocks (all zero, constant, exact halves, one spike).
              Other block types get seeded random bytes with small finite scale fields.
metadata.gguf one key per metadata value type, nested arrays, non-UTF-8 string bytes,
              general.alignment = 64, and two small tensors.
v2.gguf       a tiny file whose version field says 2 (v2 and v3 little-endian files differ only there).
"""
import struct
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V
from gguf.quants import quantize, dequantize

OUT = Path(__file__).resolve().parent.parent / "Tests" / "Fixtures" / "gguf"
ROWS, COLS = 2, 256

# Types gguf-py quantizes and the Swift writer encodes: quantized from seeded data.
ENCODED = [T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1]
# Block types whose bytes are random, with these (offset, kind) scale fields overwritten.
# kind "d": small fp16 of either sign; "dmin": small positive fp16; "e8m0": exponent near 2^0.
RANDOM = {
    T.Q2_K: [(80, "d"), (82, "dmin")],
    T.Q3_K: [(108, "d")],
    T.Q4_K: [(0, "d"), (2, "dmin")],
    T.Q5_K: [(0, "d"), (2, "dmin")],
    T.Q6_K: [(208, "d")],
    T.IQ4_NL: [(0, "d")],
    T.IQ4_XS: [(0, "d")],
    T.TQ1_0: [(52, "d")],
    T.TQ2_0: [(64, "d")],
    T.MXFP4: [(0, "e8m0")],
}


def writer(path: Path, arch: str = "fixture") -> gguf.GGUFWriter:
    return gguf.GGUFWriter(str(path), arch)


def finish(w: gguf.GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def source_values(rng: np.random.Generator) -> np.ndarray:
    """Row 0: normal noise. Row 1: edge blocks (of 32), then noise."""
    x = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    edge = x[1]
    edge[0:32] = 0.0                                      # d == 0
    edge[32:64] = 1.5                                     # max == min
    edge[64:96] = (np.arange(32, dtype=np.float32) - 15.5) / 8  # x / d is k + 1/2 for Q8_0 (d = 1/8)
    edge[64] = 127.0 / 8                                  # so that Q8_0's d is exactly 1/8
    edge[96:128] = 0.01
    edge[100] = -50.0                                     # one spike, negative: d's sign
    edge[128:160] *= 1e-6                                 # tiny values
    return x


def random_blocks(rng: np.random.Generator, qtype: T) -> np.ndarray:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = ROWS * COLS // block
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for offset, kind in RANDOM[qtype]:
        if kind == "e8m0":
            raw[:, offset] = rng.integers(110, 140, size=n_blocks, dtype=np.uint8)
            continue
        scale = rng.uniform(-0.05, 0.05, size=n_blocks) if kind == "d" else rng.uniform(0.0, 0.02, size=n_blocks)
        raw[:, offset:offset + 2] = scale.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(ROWS, -1)


def types_file(rng: np.random.Generator) -> None:
    w = writer(OUT / "types.gguf")
    x = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    w.add_tensor("F32.q", x)
    w.add_tensor("F32.ref", dequantize(x.view(np.uint8), T.F32).reshape(ROWS, COLS).copy())
    for qtype in ENCODED:
        src = source_values(rng)
        q = quantize(src, qtype)
        raw = q.view(np.uint8).reshape(ROWS, -1)
        ref = dequantize(raw, qtype).astype(np.float32)
        assert ref.shape == (ROWS, COLS) and np.isfinite(ref).all()
        w.add_tensor(f"{qtype.name}.src", src)
        w.add_tensor(f"{qtype.name}.q", raw, raw_dtype=qtype)
        w.add_tensor(f"{qtype.name}.ref", ref)
    for qtype in RANDOM:
        raw = random_blocks(rng, qtype)
        ref = dequantize(raw, qtype).astype(np.float32)
        assert ref.shape == (ROWS, COLS) and np.isfinite(ref).all(), qtype.name
        w.add_tensor(f"{qtype.name}.q", raw, raw_dtype=qtype)
        w.add_tensor(f"{qtype.name}.ref", ref)
    finish(w)


def metadata_file() -> None:
    w = writer(OUT / "metadata.gguf")
    w.add_custom_alignment(64)
    w.add_uint8("test.uint8", 200)
    w.add_int8("test.int8", -100)
    w.add_uint16("test.uint16", 60000)
    w.add_int16("test.int16", -30000)
    w.add_uint32("test.uint32", 4000000000)
    w.add_int32("test.int32", -2000000000)
    w.add_uint64("test.uint64", 18000000000000000000)
    w.add_int64("test.int64", -9000000000000000000)
    w.add_float32("test.float32", 0.1)
    w.add_float64("test.float64", -2.5e-300)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo, GGUF")
    w.add_key_value("test.bytes", b"\xff\xfe not utf-8 \xc3", V.STRING)
    w.add_key_value("test.array.uint16", [1, 2, 65535], V.ARRAY, sub_type=V.UINT16)
    w.add_key_value("test.array.float32", [0.5, -1.25], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("test.array.bool", [True, False, True], V.ARRAY, sub_type=V.BOOL)
    w.add_array("test.array.string", ["a", "", "ü"])
    w.add_key_value("test.array.nested", [[1, 2], [3], [[4]]], V.ARRAY, sub_type=V.ARRAY)
    w.add_tensor("small", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("after", np.full((5,), 7.0, dtype=np.float16))
    finish(w)


def v2_file() -> None:
    path = OUT / "v2.gguf"
    w = writer(path)
    w.add_uint32("test.answer", 42)
    w.add_tensor("x", np.array([1.0, -2.0, 3.5, 0.25], dtype=np.float32))
    finish(w)
    data = bytearray(path.read_bytes())
    assert data[:4] == b"GGUF" and struct.unpack_from("<I", data, 4)[0] == 3
    struct.pack_into("<I", data, 4, 2)
    path.write_bytes(bytes(data))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240601)
    types_file(rng)
    metadata_file()
    v2_file()
    for path in sorted(OUT.glob("*.gguf")):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
