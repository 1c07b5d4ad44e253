#!/usr/bin/env python3
"""Checks paper §8 item 8d against stock PEFT: an adapter trained on a LoRAM carrier and
recovered by loramd loads into PEFT on the ORIGINAL golden tiny model (Tests/Fixtures/golden/tiny)
without shape errors and gives the logits loramd computes with it.

For each method (random and l2 structured at 0.5, semi 2:4): `model/prune` the tiny model, create an
adapter on the carrier with B drawn (so it matters), train it 3 steps, `adapter/recover` it onto
the original (fill zero, and normal for random), `adapter/save` it, then compare PEFT's logits on
the original with loramd's `model/forward` with the recovered adapter. Tolerance 3e-5 as in
scripts/check-peft-compat.py (the golden README's logits rule at this scale).

    swift build && python3 scripts/check-recovered-peft.py

Needs torch, transformers and peft (pip); the daemon and its tests do not. Exit code 0 when
every check passes.
"""
import importlib.util
import json
import pathlib
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("peft_compat", ROOT / "scripts/check-peft-compat.py")
compat = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compat)
LoramClient, TINY, IDS = compat.LoramClient, compat.TINY, compat.IDS

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]


def main():
    results = []
    with tempfile.TemporaryDirectory() as tmp, LoramClient(init_params={"threads": 1}) as client:
        tmp = pathlib.Path(tmp)
        data = tmp / "train.jsonl"
        data.write_text("\n".join(json.dumps({"ids": [1] + [3 + (j * 7 + i * 13) % 90 for j in range(12)]}) for i in range(8)))
        original = client.request("model/load", {"path": str(TINY)})["modelId"]
        for method, extra, fills in [("random", {"ratio": 0.5, "seed": 1}, ["zero", "normal"]), ("l2", {"ratio": 0.5}, ["zero"]),
                                     ("semi", {}, ["zero"])]:
            carrier = client.request("model/prune", {"modelId": original, "method": method, **extra})["modelId"]
            adapter = client.request("adapter/create", {"modelId": carrier, "r": 4, "alpha": 8, "targets": TARGETS,
                                                        "seed": 3, "bInitStd": 0.05})["adapterId"]
            job = client.request("train/create", {"modelId": carrier, "adapterId": adapter, "seqLen": 13, "microBatch": 2,
                                                  "steps": 3, "lr": 0.01, "dataset": {"path": str(data), "format": "tokens"}})["jobId"]
            client.request("train/step", {"jobId": job, "steps": 3})
            client.request("train/close", {"jobId": job})
            for fill in fills:
                params = {"adapterId": adapter, "targetModelId": original, "fill": fill}
                if fill == "normal":
                    params["seed"] = 5
                recovered = client.request("adapter/recover", params)["adapterId"]
                out = tmp / f"{method}-{fill}"
                client.request("adapter/save", {"adapterId": recovered, "path": str(out)})
                ours = np.array(client.request("model/forward", {"modelId": original, "adapterId": recovered, "ids": IDS,
                                                                 "logits": "all"})["logits"], dtype=np.float32)
                results.append(compat.compare(f"PEFT on the original with the {method} carrier's adapter recovered ({fill}) vs loramd",
                                                         compat.peft_logits(out), ours))
    print("all checks passed" if all(results) else "SOME CHECKS FAILED")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
