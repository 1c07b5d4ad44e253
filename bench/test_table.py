#!/usr/bin/env python3
"""bench/table.py without torch or loramd: its arguments, and its table from canned results.

    python3 -m unittest bench/test_table.py
"""
import contextlib
import io
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table  # noqa: E402


def canned_smollm2():
    """The shape of one model's results as runtime.py, train.py and nf4_decode return them."""
    runtime = {"promptTokens": 256, "newTokens": 64, "dtype": "bf16",
               "limits": {"prefillTokensPerSecondSgemmBound": 1000.0, "decodeTokensPerSecondBandwidthBound": 100.0},
               "ceilings": {"sgemm": {"gflops": 200.0}},
               "bandwidthGBps": {"used": 26.9, "samples": [20.0, 26.9, 30.0]},
               "bytes": {"weightsPerDecodedToken": 269e6},
               "torch": {"prefillTokensPerSecond": 500.0, "decodeTokensPerSecond": 20.0},
               "loramd": {"prefillTokensPerSecond": 850.0, "decodeTokensPerSecond": 75.0,
                          "prefill": {"sgemmFraction": 0.85}, "decode": {"bandwidthFraction": 0.75}},
               "loramdInfo": {"load": {"bytes": 269100288, "parameters": 134515008}}}
    train = {"config": {"microBatch": 4, "seqLen": 256, "r": 8},
             "ceilings": {"sgemm": {"gflops": 200.0}, "bandwidth": {"GBps": 25.0}},
             "flopsPerStep": {"total": 512e9},
             "torch": {"tokensPerSecond": 160.0, "peakRssBytes": 6000 * 2 ** 20},
             "loramd": {"tokensPerSecond": 200.0, "peakRssBytes": 1200 * 2 ** 20, "rate": {"sgemmFraction": 0.5}}}
    nf4 = {"promptTokens": 256, "newTokens": 64, "decodeTokensPerSecond": 150.0, "limitTokensPerSecond": 240.0,
           "bandwidthFraction": 0.625, "weightBytesPerToken": 111.5e6, "quantize": {"bytesPerParameter": 0.829},
           "bandwidthGBps": {"used": 26.8, "samples": [26.8]}}
    return {"errors": {}, "runtime": runtime, "train": train, "nf4Decode": nf4}


class TableTests(unittest.TestCase):
    def test_arguments(self):
        a = table.parse_args(["--threads", "2", "--quick", "--models", "smollm2"])
        self.assertEqual((a.threads, a.quick, a.models), (2, True, ["smollm2"]))
        self.assertEqual(table.parse_args([]).models, ["small", "smollm2"])
        for bad in (["--models", "tiny"], ["--models", ","], ["--threads", "0"], ["--runs", "0"]):
            with self.assertRaises(SystemExit, msg=str(bad)), contextlib.redirect_stderr(io.StringIO()):
                table.parse_args(bad)

    def test_sub_benchmark_arguments(self):
        a = table.parse_args(["--threads", "2"])
        rt = table.runtime.parse_args(table.runtime_argv(a, "/bin/loramd", "/m", "smollm2"))
        self.assertEqual((rt.prompt_tokens, rt.new_tokens, rt.dtype, rt.runs), (256, 64, "bf16", 5))
        self.assertEqual((rt.target_prefill, rt.target_decode, rt.target_decode_bandwidth), (1.6, 4.0, 0.7))
        tr = table.train.parse_args(table.train_argv(a, "/bin/loramd", "/m", "small"))
        self.assertEqual((tr.seq_len, tr.micro_batch, tr.r, tr.alpha, tr.dtype), (256, 4, 8, 16.0, None))
        self.assertEqual((tr.target_speed, tr.target_memory, tr.steps, tr.runs), (1.5, 0.35, 4, 3))
        q = table.train.parse_args(table.train_argv(table.parse_args(["--quick"]), "/bin/loramd", "/m", "smollm2"))
        self.assertEqual((q.seq_len, q.steps, q.runs, q.target_speed, q.target_memory), (64, 1, 1, 1.8, 0.25))

    def test_rows(self):
        rows = {r["workload"]: r for r in table.rows_for("smollm2", canned_smollm2())}
        self.assertEqual(len(rows), 5)
        p = rows["prefill 256 tokens"]
        self.assertAlmostEqual(p["ratio"], 1.7, delta=1e-12)
        self.assertEqual((p["ceiling"], p["fraction"], p["target"], p["ok"]), (1000.0, 0.85, ">= 1.6x", True))
        d = rows["decode 64 new tokens after 256"]
        self.assertAlmostEqual(d["ratio"], 3.75, delta=1e-12)
        self.assertEqual((d["target"], d["ok"]), (">= 4x, >= 70% of limit", False))  # 3.75x < 4x though 75% >= 70%
        n = rows["decode 64 new tokens after 256, NF4"]
        self.assertEqual((n["torch"], n["ratio"], n["fraction"], n["ok"]), (None, None, 0.625, False))
        t = rows["LoRA step (r 8, 7 proj., 4x256)"]
        self.assertAlmostEqual(t["ratio"], 1.25, delta=1e-12)
        self.assertAlmostEqual(t["ceiling"], 200e9 / 512e9 * 1024, delta=1e-9)  # 400 tok/s
        self.assertEqual((t["target"], t["ok"]), (">= 1.8x", False))
        m = rows["LoRA step peak RSS"]
        self.assertEqual((m["torch"], m["loramd"], m["ratio"], m["ok"], m["unit"]), (6000, 1200, 0.2, True, "MiB"))

    def test_bf16_products_rows(self):
        res = canned_smollm2()
        res["runtimeBF16"] = dict(res["runtime"], torch={"prefillTokensPerSecond": 900.0},
                                  loramd={"prefillTokensPerSecond": 1800.0})
        res["trainBF16"] = dict(res["train"], torch={"tokensPerSecond": 200.0}, loramd={"tokensPerSecond": 500.0})
        rows = {r["workload"]: r for r in table.rows_for("smollm2", res)}
        self.assertEqual(len(rows), 7)
        p, t = rows["prefill 256 tokens, bf16 products"], rows["LoRA step (r 8, 7 proj., 4x256), bf16 products"]
        self.assertEqual((p["ratio"], p["ceiling"], p["ok"], p["target"]), (2.0, None, "-", "none (bf16 both sides)"))
        self.assertEqual((t["ratio"], t["torch"], t["loramd"], t["ok"]), (2.5, 200.0, 500.0, "-"))
        self.assertEqual(rows["prefill 256 tokens"]["ratio"], 1.7)  # the fp32 rows stay as they were
        res["trainBF16"]["loramdInfo"] = {"device": {"matmulDtype": "f32"}}
        labels = [r["workload"] for r in table.rows_for("smollm2", res)]
        self.assertIn("LoRA step (r 8, 7 proj., 4x256), bf16 products (loramd ran f32: no AMX)", labels)
        a = table.parse_args(["--bf16-matmul", "off"])
        self.assertFalse(table.bf16_matmul(a))
        self.assertTrue(table.bf16_matmul(table.parse_args(["--bf16-matmul", "on"])))
        self.assertTrue(table.runtime.parse_args(["--bf16-matmul"]).bf16_matmul)
        self.assertTrue(table.train.parse_args(["--bf16-matmul"]).bf16_matmul)

    def test_missing_side_is_not_measured(self):
        res = canned_smollm2()
        res["runtime"]["loramd"] = None
        del res["train"], res["nf4Decode"]
        rows = table.rows_for("small", res)
        self.assertEqual([r["loramd"] for r in rows], [None, None])
        self.assertEqual([r["ok"] for r in rows], [None, None])
        self.assertTrue(rows[0]["target"].endswith("(runtime.py)"))  # issue 16 sets none for small's prefill

    def test_render(self):
        models = {"smollm2": canned_smollm2()}
        samples = table.bandwidth_samples(models)
        self.assertEqual(samples, [20.0, 26.9, 30.0, 26.8, 25.0])
        page = table.render({"threads": 2, "quick": False, "date": "D", "git": "G", "loramd": "L", "versions": "V",
                             "machine": {"cpu": "C", "cores": 2, "loadAverageBefore": [0], "loadAverageAfter": [0]},
                             "bandwidthGBps": {"samples": samples, "min": 20.0, "max": 30.0},
                             "rows": table.rows_for("smollm2", models["smollm2"]), "models": models})
        self.assertIn("| prefill 256 tokens, tok/s | SmolLM2-135M (bf16) | 500.0 | 850.0 | 1.70x | "
                      "1000 tok/s (sgemm 200 GFLOP/s) | 85% | >= 1.6x | ok |", page)
        self.assertIn("| LoRA step peak RSS, MiB | SmolLM2-135M (bf16) | 6000.0 | 1200.0 | 0.20x | - | - | <= 0.25x | ok |", page)
        self.assertIn("**BELOW TARGET**", page)
        self.assertIn("20.0-30.0 over 5 measurements", page)
        self.assertIn("loramd held 2.001 bytes a parameter (bf16); its NF4 copy 0.829", page)
        self.assertNotIn("WARNING", page)

    def test_ratio_near_its_target_shows_three_decimals(self):
        self.assertEqual(table.ratio_text(1.797, 1.8), "1.797x")
        self.assertEqual(table.ratio_text(1.8, 1.8), "1.80x")
        self.assertEqual(table.ratio_text(1.7, 1.8), "1.70x")
        self.assertEqual(table.ratio_text(None, 1.8), "-")

    def test_busy_machine(self):
        res = canned_smollm2()
        quiet, loud = {"foreignCpuSeconds": 0.1, "wallSeconds": 10.0}, {"foreignCpuSeconds": 15.0, "wallSeconds": 10.0}
        res["runtime"]["interference"] = {"torch": [quiet], "loramd": [quiet]}
        res["train"]["interference"] = {"torch": [loud], "loramd": [quiet]}
        res["nf4Decode"]["rounds"] = [{"interference": None}]
        busy = table.busy_benchmarks({"smollm2": res}, 2)
        self.assertEqual([b[:2] for b in busy], [("smollm2", "train")])
        self.assertAlmostEqual(busy[0][2], 15.1, delta=1e-9)
        self.assertAlmostEqual(busy[0][3], 20.0, delta=1e-9)


if __name__ == "__main__":
    unittest.main()
