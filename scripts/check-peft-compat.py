#!/usr/bin/env python3
"""Checks that loramd's LoRA adapters and PEFT's are the same thing, both ways, on tiny golden
models, fp32 with eager attention:

    swift build && python3 scripts/check-peft-compat.py [GOLDEN ...] [--daemon PATH]

GOLDEN is `llama` (Tests/Fixtures/golden: tiny, tiny_lora, tiny_lora_logits.npy; the default) or a
family golden (Tests/Fixtures/golden-<name>: model, lora, lora_logits.npy, golden.json), e.g.
`qwen2 qwen2-tied qwen3 gemma3 mistral`, or `all` for every one of them. On each:

1. loramd loads the golden PEFT adapter and saves it; PEFT loads what loramd saved and gives
   the golden LoRA logits.
2. loramd creates an adapter on q/v/o/down_proj and lm_head (B drawn too, so it matters) and
   saves it; PEFT loads it and gives the logits loramd computes with it (`model/forward`).
3. PEFT makes an adapter of its own (rank 4 on k_proj, up_proj and lm_head, so its file has
   lm_head.base_layer.weight too) and saves it; loramd loads it and gives PEFT's logits.

Tolerance: max |d| <= 3e-5, the golden README's rule for logits (1e-5 * max(1, max |ref|)) at
these logits' scale (max |logit| is 3-4 in every golden).

Needs torch, transformers and peft (pip, e.g. /work/refenv); the daemon and its tests do not.
Not run by CI. Exit code 0 when every check passes.
"""
import argparse
import json
import pathlib
import sys
import tempfile
import warnings

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM
from transformers.utils import logging as transformers_logging

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests/Fixtures"
FAMILIES = ["qwen2", "qwen2-tied", "qwen3", "gemma3", "mistral"]
TOLERANCE = 3e-5
sys.path.insert(0, str(ROOT / "clients/python"))
from loram_client import LoramClient  # noqa: E402


class Golden:
    """Where one golden's model, PEFT adapter, LoRA logits and prompt are."""

    def __init__(self, name):
        self.name = name
        if name == "llama":
            root = FIXTURES / "golden"
            self.model, self.lora, self.lora_logits = root / "tiny", root / "tiny_lora", root / "tiny_lora_logits.npy"
            self.ids = json.loads((root / "tiny_golden.json").read_text())["input_ids"]
        else:
            root = FIXTURES / f"golden-{name}"
            self.model, self.lora, self.lora_logits = root / "model", root / "lora", root / "lora_logits.npy"
            self.ids = json.loads((root / "golden.json").read_text())["input_ids"]
        if not self.model.is_dir():
            sys.exit(f"{self.model} not found")

    def base_model(self):
        torch.manual_seed(0)
        return AutoModelForCausalLM.from_pretrained(self.model, dtype=torch.float32, attn_implementation="eager").eval()

    def peft_logits(self, adapter_dir):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = PeftModel.from_pretrained(self.base_model(), str(adapter_dir)).eval()
        for w in caught:
            if not issubclass(w.category, (FutureWarning, DeprecationWarning)):
                print(f"  PEFT warned: {w.message}")
        with torch.no_grad():
            return model(torch.tensor([self.ids])).logits[0].numpy()


def compare(name, got, reference):
    diff = float(np.abs(got - reference).max())
    ok = diff <= TOLERANCE
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max |d| = {diff:.3g} (tolerance {TOLERANCE:.3g}; max |ref| {np.abs(reference).max():.3g})",
          flush=True)
    return ok


def check(client, golden, tmp):
    results = []
    print(f"-- {golden.name}: {golden.model.relative_to(ROOT)}", flush=True)
    model = client.request("model/load", {"path": str(golden.model)})["modelId"]

    def forward(adapter):
        reply = client.request("model/forward", {"modelId": model, "adapterId": adapter, "ids": golden.ids, "logits": "all"})
        return np.array(reply["logits"], dtype=np.float32)

    # 1. The golden adapter through loramd, into PEFT.
    loaded = client.request("adapter/load", {"modelId": model, "path": str(golden.lora)})["adapterId"]
    client.request("adapter/save", {"adapterId": loaded, "path": str(tmp / "golden-saved")})
    reference = np.load(golden.lora_logits)
    results.append(compare(f"{golden.name}: loramd's logits with the golden adapter vs {golden.lora_logits.name}",
                           forward(loaded), reference))
    results.append(compare(f"{golden.name}: PEFT on the golden adapter saved by loramd vs {golden.lora_logits.name}",
                           golden.peft_logits(tmp / "golden-saved"), reference))

    # 2. An adapter loramd creates, into PEFT.
    created = client.request("adapter/create", {
        "modelId": model, "r": 4, "alpha": 8, "targets": ["q_proj", "v_proj", "o_proj", "down_proj", "lm_head"],
        "seed": 3, "bInitStd": 0.1})["adapterId"]
    client.request("adapter/save", {"adapterId": created, "path": str(tmp / "created")})
    results.append(compare(f"{golden.name}: PEFT on an adapter loramd created vs loramd's logits with it",
                           golden.peft_logits(tmp / "created"), forward(created)))

    # 3. An adapter PEFT makes, into loramd.
    torch.manual_seed(1)
    peft_model = get_peft_model(golden.base_model(), LoraConfig(r=4, lora_alpha=12, target_modules=["k_proj", "up_proj", "lm_head"],
                                                                task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.1)
        theirs = peft_model(torch.tensor([golden.ids])).logits[0].numpy()
    peft_model.save_pretrained(tmp / "from-peft")
    from_peft = client.request("adapter/load", {"modelId": model, "path": str(tmp / "from-peft")})["adapterId"]
    results.append(compare(f"{golden.name}: loramd on an adapter PEFT saved vs PEFT's logits", forward(from_peft), theirs))
    for adapter in (loaded, created, from_peft):
        client.request("adapter/unload", {"adapterId": adapter})
    client.request("model/unload", {"modelId": model})
    return results


def main():
    transformers_logging.disable_progress_bar()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("goldens", nargs="*", default=["llama"], help="llama (default), " + ", ".join(FAMILIES) + ", or all")
    ap.add_argument("--daemon", help="loramd executable (default: $LORAMD, then the checkout's .build)")
    args = ap.parse_args()
    names = ["llama"] + FAMILIES if args.goldens == ["all"] else args.goldens
    goldens = [Golden(n) for n in names]
    results = []
    options = {"command": args.daemon} if args.daemon else {}
    with LoramClient(init_params={"threads": 1}, **options) as client:
        for golden in goldens:
            with tempfile.TemporaryDirectory() as tmp:
                results += check(client, golden, pathlib.Path(tmp))
    print("all checks passed" if all(results) else "SOME CHECKS FAILED")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
