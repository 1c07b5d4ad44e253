#!/usr/bin/env python3
"""Make a small random LLaMA with loramd, load it, stream a generation and measure perplexity.

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
        os.unlink(handle.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
