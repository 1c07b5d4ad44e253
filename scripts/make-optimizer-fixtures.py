#!/usr/bin/env python3
"""Reference fixtures for the optimizer building blocks (Sources/Runtime/Optimization).

    python3 scripts/make-optimizer-fixtures.py      # writes Tests/Fixtures/optimizer/

- adamw-*.safetensors: torch.optim.AdamW (single-tensor path, the CPU default) run for a few
  steps on small fp32 tensors with fixed gradients. Tensors: `init.<p>`, `grad.<k>.<p>`, and after
  step k (1-based) `param.<k>.<p>`, `exp_avg.<k>.<p>`, `exp_avg_sq.<k>.<p>` (`max_exp_avg_sq.<k>.<p>`
  with amsgrad), plus `ieee_param.<k>.<p>`: the same step recomputed with torch's own kernels in
  torch's order except that sqrt is correctly rounded. torch's CPU sqrt goes through MKL's vector
  math (measured here: up to 0.75 ulp, about 15 % of elements differ from IEEE sqrt); loramd's is
  IEEE. The header metadata `case` holds the hyperparameters (numbers as Python repr strings) and
  the lr used at each step.
- schedules.json: transformers' get_{constant,linear,cosine}_schedule_with_warmup through a real
  LambdaLR: the lr of each optimizer step k (0-based; scheduler.last_epoch = k) as repr strings.
- clip.safetensors: torch.nn.utils.clip_grad_norm_ on lists of gradients (`grad.<c>.<i>`,
  `clipped.<c>.<i>`, `total.<c>` as a 1-element F32); metadata `cases`.

Needs torch and transformers (bench/requirements.txt); the daemon and its tests do not.
"""
import json
import math
import pathlib

import torch
from safetensors.torch import save_file
from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                          get_linear_schedule_with_warmup)

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests/Fixtures/optimizer"

# name, shape, weight decay applies. Sizes are chosen to exercise torch's vector loops and their
# scalar tails (37, 15, 1000 are not multiples of the 16-lane AVX-512 width).
PARAMS = [("a", (8, 64), True), ("b", (37,), True), ("c", (3, 5), True), ("d", (1000,), True), ("norm", (64,), False)]


def gradients(generator, steps):
    """Per step and parameter: normal gradients at varying scales, with exact zeros, values
    comparable to eps and large ones mixed in, so every branch of the arithmetic is reached."""
    out = []
    for k in range(steps):
        step = {}
        for name, shape, _ in PARAMS:
            g = torch.randn(shape, generator=generator) * (10.0 ** (-k % 4))
            flat = g.view(-1)
            flat[::7] = 0.0
            flat[3::11] *= 1e-7
            flat[5::13] *= 1e3
            step[name] = g
        out.append(step)
    return out


def ieee_sqrt(x):
    return x.double().sqrt().float()  # sqrt in fp64 then rounded: the correctly rounded fp32 sqrt


def recompute_step(p, g, m, v, vmax, step, lr, beta1, beta2, eps, wd, amsgrad, maximize, sqrt):
    """torch's _single_tensor_adam (decoupled decay), op for op, with the given sqrt."""
    if maximize:
        g = -g
    if wd != 0:
        p.mul_(1 - lr * wd)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2 ** 0.5
    if amsgrad:
        torch.maximum(vmax, v, out=vmax)
        root = sqrt(vmax)
    else:
        root = sqrt(v)
    denom = (root / bias_correction2_sqrt).add_(eps)
    p.addcdiv_(m, denom, value=-step_size)


def adamw_case(file, steps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False,
               maximize=False, schedule=None, seed=0):
    generator = torch.Generator().manual_seed(seed)
    init = {name: torch.randn(shape, generator=generator) for name, shape, _ in PARAMS}
    grads = gradients(generator, steps)
    params = {name: torch.nn.Parameter(init[name].clone()) for name, _, _ in PARAMS}
    # Two groups as transformers' Trainer makes them: decay, and no decay for norms and biases.
    groups = [{"params": [params[n] for n, _, d in PARAMS if d], "weight_decay": weight_decay},
              {"params": [params[n] for n, _, d in PARAMS if not d], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, amsgrad=amsgrad, maximize=maximize,
                                  foreach=False)
    scheduler = schedule(optimizer) if schedule else None
    # Two recomputations: with torch's sqrt (must equal torch.optim.AdamW bit for bit, which checks
    # that the recomputation is torch's arithmetic) and with IEEE sqrt (the fixture).
    def fresh():
        return [{name: f(init[name]) for name, _, _ in PARAMS}
                for f in (torch.clone, torch.zeros_like, torch.zeros_like, torch.zeros_like)]
    ieee, ieee_m, ieee_v, ieee_vmax = fresh()
    same, same_m, same_v, same_vmax = fresh()
    tensors = {f"init.{n}": t.clone() for n, t in init.items()}
    lrs = []
    for k in range(1, steps + 1):
        step_lr = optimizer.param_groups[0]["lr"]
        lrs.append(repr(step_lr))
        for name, _, decays in PARAMS:
            params[name].grad = grads[k - 1][name].clone()
            tensors[f"grad.{k}.{name}"] = grads[k - 1][name].clone()
            hyper = (k, step_lr, betas[0], betas[1], eps, weight_decay if decays else 0.0, amsgrad, maximize)
            recompute_step(ieee[name], grads[k - 1][name].clone(), ieee_m[name], ieee_v[name], ieee_vmax[name],
                           *hyper, sqrt=ieee_sqrt)
            recompute_step(same[name], grads[k - 1][name].clone(), same_m[name], same_v[name], same_vmax[name],
                           *hyper, sqrt=torch.sqrt)
        optimizer.step()
        if scheduler:
            scheduler.step()
        for name, _, _ in PARAMS:
            state = optimizer.state[params[name]]
            assert float(state["step"]) == k
            tensors[f"param.{k}.{name}"] = params[name].detach().clone()
            tensors[f"exp_avg.{k}.{name}"] = state["exp_avg"].clone()
            tensors[f"exp_avg_sq.{k}.{name}"] = state["exp_avg_sq"].clone()
            if amsgrad:
                tensors[f"max_exp_avg_sq.{k}.{name}"] = state["max_exp_avg_sq"].clone()
            tensors[f"ieee_param.{k}.{name}"] = ieee[name].clone()
            assert torch.equal(same[name], params[name].detach()), f"recomputation differs from torch: {name} step {k}"
            # The moments do not involve sqrt: both recomputations equal torch's bit for bit.
            assert torch.equal(ieee_m[name], state["exp_avg"]) and torch.equal(ieee_v[name], state["exp_avg_sq"])
    case = {"steps": steps, "lr": repr(lr), "beta1": repr(betas[0]), "beta2": repr(betas[1]), "eps": repr(eps),
            "weightDecay": repr(weight_decay), "amsgrad": amsgrad, "maximize": maximize, "stepLRs": lrs,
            "params": [{"name": n, "shape": list(s), "decays": d} for n, s, d in PARAMS]}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(OUT / file), metadata={"case": json.dumps(case)})
    differing = sum(int((tensors[f"param.{k}.{n}"] != tensors[f"ieee_param.{k}.{n}"]).sum())
                    for k in range(1, steps + 1) for n, _, _ in PARAMS)
    total = steps * sum(math.prod(s) for _, s, _ in PARAMS)
    print(f"{file}: {steps} steps; torch params differing from the IEEE-sqrt recomputation: {differing}/{total}")


def schedules():
    cases = []
    for kind, make in [("constant", lambda o, w, n: get_constant_schedule_with_warmup(o, w)),
                       ("linear", get_linear_schedule_with_warmup),
                       ("cosine", get_cosine_schedule_with_warmup)]:
        for warmup, total, base in [(0, 10, 1e-4), (3, 10, 2e-4), (5, 23, 3e-3), (10, 10, 1e-3), (0, 1, 0.1), (7, 100, 1e-4)]:
            optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
            scheduler = make(optimizer, warmup, total)
            lrs = []
            for _ in range(total + 3):  # a few steps past the end: linear and cosine stay at 0
                lrs.append(repr(optimizer.param_groups[0]["lr"]))
                optimizer.step()
                scheduler.step()
            cases.append({"kind": kind, "warmupSteps": warmup, "totalSteps": total, "baseLR": repr(base), "lrs": lrs})
    (OUT / "schedules.json").write_text(json.dumps({"cases": cases}, indent=1) + "\n")
    print(f"schedules.json: {len(cases)} cases")


def clipping():
    generator = torch.Generator().manual_seed(1)
    tensors, cases = {}, []
    shapes = [(8, 64), (37,), (64, 8), (1000,)]
    for c, (scale, max_norm) in enumerate([(1.0, 1.0), (1e-3, 1.0), (10.0, 0.5), (1.0, 1e6), (0.0, 1.0)]):
        grads = [torch.randn(s, generator=generator) * scale for s in shapes]
        params = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
        for i, (p, g) in enumerate(zip(params, grads)):
            p.grad = g.clone()
            tensors[f"grad.{c}.{i}"] = g.clone()
        total = torch.nn.utils.clip_grad_norm_(params, max_norm)
        for i, p in enumerate(params):
            tensors[f"clipped.{c}.{i}"] = p.grad.clone()
        tensors[f"total.{c}"] = total.reshape(1).float()
        cases.append({"maxNorm": repr(max_norm), "tensors": len(shapes)})
    save_file(tensors, str(OUT / "clip.safetensors"), metadata={"cases": json.dumps(cases)})
    print(f"clip.safetensors: {len(cases)} cases")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    adamw_case("adamw-default.safetensors", steps=6, lr=1e-3)
    adamw_case("adamw-amsgrad-maximize.safetensors", steps=5, lr=3e-3, betas=(0.3, 0.99), eps=1e-6,
               weight_decay=0.1, amsgrad=True, maximize=True, seed=1)
    adamw_case("adamw-scheduled.safetensors", steps=8, lr=1e-2, weight_decay=0.0, seed=2,
               schedule=lambda o: get_cosine_schedule_with_warmup(o, 3, 8))
    schedules()
    clipping()


if __name__ == "__main__":
    main()
