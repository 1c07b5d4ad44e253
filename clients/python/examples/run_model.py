#!/usr/bin/env python3
"""Make a small random LLaMA with loramd, load it, stream a generation, measure perplexity, then
train a LoRA adapter on a few lines of text, save it in PEFT's layout and generate with it.

    python3 clients/python/examples/run_model.py [--preset tiny|small] [--out DIR] [--dtype f32|bf16]

The checkpoint is a real Hugging Face directory (config.json, model.safetensors, tokenizer.json);
a downloaded LLaMA checkpoint loads the same way: pass its directory to ``model/load``.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from loram_client import LoramClient
from loram_client.locate import find_daemon


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", choices=["tiny", "small"])
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "loramd-example-model"))
    parser.add_argument("--dtype", default=None, choices=["f32", "bf16", "f16"])
    parser.add_argument("--prompt", default="Once upon a time, in a small village by the sea,")
    args = parser.parse_args()

    daemon = find_daemon()
    print(f"making a random {args.preset} LLaMA in {args.out}")
    subprocess.run([daemon, "make-model", "--preset", args.preset, "--out", args.out], check=True)

    with LoramClient(daemon) as client:
        params = {"path": args.out}
        if args.dtype:
            params["dtype"] = args.dtype
        loaded = client.request("model/load", params)
        model = loaded["modelId"]
        print(f"loaded {model}: {loaded['parameters']:,} parameters, {loaded['bytes'] / 1e6:.1f} MB, config {json.dumps(loaded['config'])}")

        print(f"\nprompt: {args.prompt!r}\ngeneration (random weights, so the text is noise):")
        def stream(value):
            if value["kind"] == "report" and "text" in value:
                print(value["text"], end="", flush=True)
        result = client.request("generate", {"modelId": model, "prompt": args.prompt, "maxTokens": 64,
                                             "temperature": 0.8, "topP": 0.95, "seed": 1}, on_progress=stream)
        timing = result["timing"]
        print(f"\n\nfinish: {result['finishReason']}, {result['usage']['promptTokens']} prompt + "
              f"{result['usage']['completionTokens']} new tokens; prefill {timing['prefillTokensPerSecond']:.0f} tok/s, "
              f"decode {timing['decodeTokensPerSecond']:.0f} tok/s")

        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
            for sentence in ["The cat sat on the mat.", "A journey of a thousand miles begins with one step.",
                             "Structured pruning removes whole attention heads and MLP neurons."]:
                handle.write(json.dumps({"text": sentence}) + "\n")
        start = time.monotonic()
        ppl = client.request("eval/perplexity", {"modelId": model, "dataset": {"path": handle.name, "format": "text"}})
        print(f"perplexity {ppl['perplexity']:.1f} over {ppl['tokens']} tokens ({time.monotonic() - start:.2f} s); "
              f"a uniform guess over the vocabulary would give {loaded['config']['vocab']}")

        # LoRA: an adapter on all seven projections, trained on the same lines.
        adapter = client.request("adapter/create", {"modelId": model, "r": 8, "alpha": 16,
                                                    "targets": ["q_proj", "k_proj", "v_proj", "o_proj",
                                                                "gate_proj", "up_proj", "down_proj"], "seed": 0})
        job = client.request("train/create", {"modelId": model, "adapterId": adapter["adapterId"],
                                              "dataset": {"path": handle.name, "format": "text"},
                                              "seqLen": 64, "microBatch": 3, "steps": 30, "lr": 3e-3, "schedule": "cosine",
                                              "warmupSteps": 3})
        print(f"\ntraining {adapter['parameters']:,} LoRA parameters; planned memory {job['plan']['peakBytes'] / 1e6:.1f} MB")
        def training(value):
            if value["kind"] == "report" and "step" in value:
                print(f"\r  step {value['step']:3d}  loss {value['loss']:.3f}  lr {value['lr']:.2e}  "
                      f"{value['tokensPerSecond']:.0f} tok/s  eta {value['etaSeconds']:.1f} s", end="", flush=True)
        run = client.request("train/run", {"jobId": job["jobId"]}, on_progress=training)
        print(f"\nfinal loss {run['loss']:.3f}")
        tuned = client.request("eval/perplexity", {"modelId": model, "adapterId": adapter["adapterId"],
                                                   "dataset": {"path": handle.name, "format": "text"}})
        print(f"perplexity with the adapter {tuned['perplexity']:.1f} (was {ppl['perplexity']:.1f})")
        saved = os.path.join(args.out + "-lora")
        client.request("train/save", {"jobId": job["jobId"], "path": saved})
        print(f"saved the job and the adapter (PEFT layout) in {saved}/adapter")
        out = client.request("generate", {"modelId": model, "adapterId": adapter["adapterId"],
                                          "prompt": "The cat", "maxTokens": 12})
        print(f"with the adapter: 'The cat' -> {out['text']!r}")
        client.request("train/close", {"jobId": job["jobId"]})
        os.unlink(handle.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
