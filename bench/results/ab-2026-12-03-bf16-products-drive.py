import sys, os, json, random, time
sys.path.insert(0, "/work/main/clients/python")
from loram_client import LoramClient
binary = os.environ.get("LORAMD", "/work/main/.build/release/loramd")
mode = sys.argv[1]  # train | decode | prefill
model = os.path.expanduser("~/.cache/loramd/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
dtype = os.environ.get("DTYPE", "bf16")
c = LoramClient(command=[binary], cwd="/tmp", init_params={"threads": 2, "matmulDtype": os.environ.get("MATMUL", "f32")}, lifecycle_timeout=60)
mid = c.request("model/load", {"path": model, "dtype": dtype}, timeout=600)["modelId"]
if os.environ.get("NF4"):
    mid = c.request("model/quantize", {"modelId": mid, "format": "nf4"}, timeout=600)["modelId"]
print("pid", c.pid, flush=True)
open("/tmp/prof/pid", "w").write(str(c.pid))
rng = random.Random(0)
def cpu():
    f = open("/proc/%d/stat" % c.pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
n = int(os.environ.get("N", "3"))
if mode == "train":
    ds = "/tmp/prof/ds.jsonl"
    with open(ds, "w") as f:
        for _ in range(64): f.write(json.dumps({"ids": [rng.randrange(3, 49152) for _ in range(256)]}) + "\n")
    a = c.request("adapter/create", {"modelId": mid, "r": 8, "alpha": 16, "targets": ["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"], "seed": 0})
    job = c.request("train/create", {"modelId": mid, "adapterId": a["adapterId"], "dataset": {"path": ds, "format": "tokens"}, "seqLen": 256, "microBatch": 4, "steps": 100, "lr": 1e-4, "checkpointing": "none", "seed": 0}, timeout=600)
    c.request("train/step", {"jobId": job["jobId"], "steps": 1}, timeout=3600)
    for i in range(n):
        t0 = time.perf_counter()
        c0 = cpu()
        r = c.request("train/step", {"jobId": job["jobId"], "steps": 1}, timeout=3600)
        print("train tok/s %.1f  cpu-s %.2f" % (1024 / (time.perf_counter() - t0), cpu() - c0), r.get("losses"), flush=True)
else:
    prompt = [rng.randrange(3, 49152) for _ in range(256)]
    for i in range(n):
        t0 = time.perf_counter()
        c.request("model/forward", {"modelId": mid, "ids": prompt, "logits": "last"}, timeout=600)
        pre = 256 / (time.perf_counter() - t0)
        c0 = cpu()
        r = c.request("generate", {"modelId": mid, "ids": prompt, "maxTokens": 1, "temperature": 0}, timeout=600)
        c1 = cpu()
        r = c.request("generate", {"modelId": mid, "ids": prompt, "maxTokens": 64, "temperature": 0}, timeout=600)
        c2 = cpu()
        print("prefill %.1f decode %.1f  cpu-ms/token %.2f" % (pre, r["timing"]["decodeTokensPerSecond"], 1000 * ((c2 - c1) - (c1 - c0)) / 63), flush=True)
with open("/proc/%d/status" % c.pid) as f:
    print([l.strip() for l in f if l.startswith("VmHWM")])
c.close(timeout=10)
