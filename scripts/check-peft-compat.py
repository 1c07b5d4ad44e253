#!/usr/bin/env python3
"""Checks that loramd's LoRA adapters and PEFT's are the same thing, both ways, on the golden
tiny model (Tests/Fixtures/golden/tiny), fp32 with eager attention:

1. loramd loads the golden PEFT adapter and saves it; PEFT loads what loramd saved and gives
   the golden LoRA logits (tiny_lora_logits.npy).
2. loramd creates an adapter on q/v/o/down_proj and lm_head (B drawn too, so it matters) and
   saves it; PEFT loads it and gives the logits loramd computes with it (`model/forward`).
3. PEFT makes an adapter of its own (rank 4 on k_proj, up_proj and lm_head, so its file has
   lm_head.base_layer.weight too) and saves it; loramd loads it and gives PEFT's logits.

Tolerance: max |d| <= 3e-5, the golden README's rule for logits (1e-5 * max(1, max |ref|)) at
these logits' scale.

    swift build && python3 scripts/check-peft-compat.py

Needs torch, transformers and peft (pip); the daemon and its tests do not. Not run by CI.
Exit code 0 when every check passes.
"""
import json
import pathlib
import sys
import tempfile
import warnings

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

ROOT = pathlib.Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "Tests/Fixtures/golden"
TINY = GOLDEN / "tiny"
sys.path.insert(0, str(ROOT / "clients/python"))
from loram_client import LoramClient  # noqa: E402

IDS = json.loads((GOLDEN / "tiny_golden.json").read_text())["input_ids"]


def base_model():
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32, attn_implementation="eager").eval()


def peft_logits(adapter_dir):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(base_model(), str(adapter_dir)).eval()
    for w in caught:
        if not issubclass(w.category, (FutureWarning, DeprecationWarning)):
            print(f"  PEFT warned: {w.message}")
    with torch.no_grad():
        return model(torch.tensor([IDS])).logits[0].numpy()


def compare(name, got, reference):
    diff = float(np.abs(got - reference).max())
    tolerance = 3e-5
    ok = diff <= tolerance
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max |d| = {diff:.3g} (tolerance {tolerance:.3g})")
    return ok


def main():
    results = []
    with tempfile.TemporaryDirectory() as tmp, LoramClient(init_params={"threads": 1}) as client:
        tmp = pathlib.Path(tmp)
        model = client.request("model/load", {"path": str(TINY)})["modelId"]

        # 1. The golden adapter through loramd, into PEFT.
        golden = client.request("adapter/load", {"modelId": model, "path": str(GOLDEN / "tiny_lora")})["adapterId"]
        client.request("adapter/save", {"adapterId": golden, "path": str(tmp / "golden-saved")})
        reference = np.load(GOLDEN / "tiny_lora_logits.npy")
        results.append(compare("PEFT on the golden adapter saved by loramd vs tiny_lora_logits.npy",
                               peft_logits(tmp / "golden-saved"), reference))

        # 2. An adapter loramd creates, into PEFT.
        created = client.request("adapter/create", {
            "modelId": model, "r": 4, "alpha": 8, "targets": ["q_proj", "v_proj", "o_proj", "down_proj", "lm_head"],
            "seed": 3, "bInitStd": 0.1})["adapterId"]
        client.request("adapter/save", {"adapterId": created, "path": str(tmp / "created")})
        ours = np.array(client.request("model/forward", {"modelId": model, "adapterId": created, "ids": IDS, "logits": "all"})["logits"],
                        dtype=np.float32)
        results.append(compare("PEFT on an adapter loramd created vs loramd's logits with it",
                               peft_logits(tmp / "created"), ours))

        # 3. An adapter PEFT makes, into loramd.
        torch.manual_seed(1)
        peft_model = get_peft_model(base_model(), LoraConfig(r=4, lora_alpha=12, target_modules=["k_proj", "up_proj", "lm_head"],
                                                             task_type="CAUSAL_LM"))
        with torch.no_grad():
            for name, parameter in peft_model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0, 0.1)
            theirs = peft_model(torch.tensor([IDS])).logits[0].numpy()
        peft_model.save_pretrained(tmp / "from-peft")
        loaded = client.request("adapter/load", {"modelId": model, "path": str(tmp / "from-peft")})["adapterId"]
        ours = np.array(client.request("model/forward", {"modelId": model, "adapterId": loaded, "ids": IDS, "logits": "all"})["logits"],
                        dtype=np.float32)
        results.append(compare("loramd on an adapter PEFT saved vs PEFT's logits", ours, theirs))

    print("all checks passed" if all(results) else "SOME CHECKS FAILED")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
