"""loram_client.summary: the daemon's suggestions and over-budget errors in a command line's own
flags and sizes, and loram/run's report as lines (no daemon needed: the inputs are the daemon's
sentences and objects as Sources/Runtime/Pruning/CarrierDiagnosis.swift and MemoryLedger.swift
write them)."""

from __future__ import annotations

from loram_client.summary import CLI_FLAGS, carrier_check, human_sizes, over_budget_lines, run_summary, suggestion_flags

SCRIPT = {"align": "--align {}", "prune": "--prune {}", "method": "--method {}", "layers": None}
SUGGESTIONS = [
    "Align the carrier before training: align: true (80 steps on general text) or align {dataset, steps: 160, lr: 1e-4}.",
    "Prune less: ratio 0.15 instead of 0.30.",
    "Prune a narrower layer window: layers [8, 24) instead of [4, 28) of 30.",
    "Another criterion: taylor (gradient importance on calibration data from your domain) instead of random.",
]


def test_suggestions_in_the_scripts_flags():
    assert [suggestion_flags(s, SCRIPT) for s in SUGGESTIONS] == [
        "align the carrier first (--align 80)", "prune less (--prune 0.15)",
        "prune a narrower layer window (layers 8-24)", "another criterion (--method taylor)"]
    assert suggestion_flags("Align longer: 80 steps were not enough; try align {steps: 320} (more general text).", CLI_FLAGS) \
        == "align longer (--align-dataset TEXT.jsonl --align-steps 320)"
    assert suggestion_flags("Something new.", SCRIPT) == "Something new."


def test_the_carrier_check_is_one_short_line():
    report = {"diagnostics": {"afterPrune": {"klPerToken": 1.6137, "top1Agreement": 0.4412,
                                             "verdict": {"level": "moderate", "summary": "x" * 300, "suggestions": SUGGESTIONS}},
                              "afterAlign": None, "warnings": ["x" * 636]}}
    line = carrier_check(report, SCRIPT)
    assert line == ("the carrier is moderately far from the original (KL 1.61 nats/token, top-1 agreement 44%): LoRAM may keep "
                    "only part of LoRA's gain; try: align the carrier first (--align 80); prune less (--prune 0.15)")
    assert "align:" not in line and "ratio" not in line and len(line) <= 200  # the warning was 636 characters
    assert carrier_check(report, SCRIPT, tries=4).endswith("prune a narrower layer window (layers 8-24); another criterion (--method taylor)")
    report["diagnostics"]["afterPrune"]["verdict"]["level"] = "close"
    assert carrier_check(report, SCRIPT) is None


def test_over_budget_in_cli_terms():
    data = {"needBytes": 643_825_664, "capBytes": 4 << 20, "breakdown": {},
            "suggestion": {"changes": {"checkpointing": "layer", "microBatch": "2", "gradAccum": "4"}, "peakBytes": 3 << 20}}
    assert over_budget_lines(data) == ["fits with --checkpointing layer --micro-batch 2 --grad-accum 4 (peak 3.00 MiB)",
                                       "or raise --cap SIZE (needs 614 MiB in all; the cap is 4.00 MiB)"]
    data["suggestion"] = {"changes": {"prune": "structured 0.5", "baseDType": "nf4"}, "peakBytes": 1 << 30}
    assert over_budget_lines(data)[0] == "fits with --prune 0.5 --nf4 (peak 1.00 GiB)"
    assert over_budget_lines({"needBytes": None}) == ["raise --cap SIZE, or free memory the daemon holds"]
    assert human_sizes("Over budget: job-3 needs 643825664 bytes, 1048576 of 4194304 are free") \
        == "Over budget: job-3 needs 614 MiB, 1.00 MiB of 4.00 MiB are free"


def test_run_summary_lines():
    result = {"report": {
        "parameters": {"original": 134_515_008, "carrier": 115_396_416},
        "memory": {"plannedPeakBytes": 228 << 20, "measuredPeakBytes": 249 << 20, "fullModelLoRAPlannedPeakBytes": 391 << 20,
                   "savedOverFullModelLoRA": 391 / 228},
        "perplexity": [{"dataset": "/d/eval.jsonl", "original": 14.36, "carrier": 95.81, "carrierWithAdapter": 27.89,
                        "originalWithRecoveredAdapter": 13.72}],
        "verdict": {"text": "The recovered adapter makes the original worse, by 3.0% (perplexity 14.36 → 14.79 on x). Do not use this "
                            "adapter; the carrier was far from the original. Prune less: ratio 0.15 instead of 0.30."},
        "files": {"recoveredAdapter": "/o/adapter-recovered", "report": "/o/report.json"},
        "seconds": {"load": 0.6, "train": 237.9, "evaluate": 49.1, "save": 0.1}}}
    lines = run_summary(result)
    assert lines[0] == "parameters     original 134,515,008, carrier 115,396,416 (1.17x fewer)"
    assert lines[1] == "training peak  planned 228 MiB, measured 249 MiB; LoRA on the original would plan 391 MiB (1.71x more)"
    assert "  original + recovered adapter (LoRAM)                  13.72" in lines
    assert lines[-4].endswith("the carrier was far from the original. prune less (--prune 0.15)"), lines[-4]
    assert lines[-3:] == ["adapter        /o/adapter-recovered", "report         /o/report.json",
                          "took           288 s (load 1 s, train 238 s, evaluate 49 s)"]
