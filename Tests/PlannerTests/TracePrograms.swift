import Foundation
@testable import MemoryPlanner

/// Hand-made step programs for the planner tests, written the way a builder would write them.
enum TracePrograms {
    /// A training step of a small transformer with LoRA: forward creates each layer's activations
    /// and keeps them for backward; backward walks the layers in reverse, creating gradient
    /// temporaries and releasing each layer's activations. Sizes are fp32 multiples of 64 bytes.
    /// Axis legend: T tokens (batch × sequence), C channels, F MLP width, H heads, R LoRA rank.
    static func transformerTraining(layers: Int = 4, T: Int = 64, C: Int = 128, F: Int = 344, H: Int = 4, R: Int = 8,
                                    V: Int = 512) -> StepProgram {
        var p = StepProgram()
        let f = 4
        let embedding = p.buffer("embed.weight", kind: .weight, bytes: f * V * C, persistent: true)
        var weights = [Int](), adapters = [Int](), gradients = [Int](), moments = [Int]()
        for l in 0..<layers {
            weights.append(p.buffer("layers.\(l).weights", kind: .weight, bytes: f * (4 * C * C + 3 * C * F), persistent: true))
            adapters.append(p.buffer("layers.\(l).lora", kind: .adapter, bytes: f * 4 * 2 * R * C, persistent: true))
            gradients.append(p.buffer("layers.\(l).lora.grad", kind: .gradient, bytes: f * 4 * 2 * R * C, persistent: true))
            moments.append(p.buffer("layers.\(l).lora.adam", kind: .optimizer, bytes: 2 * f * 4 * 2 * R * C, persistent: true))
        }
        var x = p.buffer("embed.out", kind: .activation, bytes: f * T * C)
        p.op("embed", creates: [x], reads: [embedding])
        var kept = [[Int]]()
        var inputs = [Int]()
        for l in 0..<layers {
            let name = "layers.\(l)"
            let norm1 = p.buffer("\(name).attn.norm", kind: .activation, bytes: f * T * C)
            let qkv = p.buffer("\(name).attn.qkv", kind: .activation, bytes: f * 3 * T * C)
            let scores = p.buffer("\(name).attn.scores", kind: .activation, bytes: f * H * T * T)
            let attn = p.buffer("\(name).attn.out", kind: .activation, bytes: f * T * C)
            let scratch = p.buffer("\(name).attn.softmax.scratch", kind: .workspace, bytes: f * T * T)
            let x1 = p.buffer("\(name).attn.residual", kind: .activation, bytes: f * T * C)
            let norm2 = p.buffer("\(name).mlp.norm", kind: .activation, bytes: f * T * C)
            let gateUp = p.buffer("\(name).mlp.gate_up", kind: .activation, bytes: f * 2 * T * F)
            let act = p.buffer("\(name).mlp.act", kind: .activation, bytes: f * T * F)
            let out = p.buffer("\(name).out", kind: .activation, bytes: f * T * C)
            p.op("\(name).attn.norm", creates: [norm1], reads: [x])
            p.op("\(name).attn.qkv", creates: [qkv], reads: [norm1, weights[l], adapters[l]])
            p.op("\(name).attn.scores", creates: [scores, scratch], reads: [qkv], releases: [scratch])
            p.op("\(name).attn.out", creates: [attn], reads: [scores, qkv, weights[l], adapters[l]])
            p.op("\(name).attn.residual", creates: [x1], reads: [x, attn])
            p.op("\(name).mlp.norm", creates: [norm2], reads: [x1])
            p.op("\(name).mlp.gate_up", creates: [gateUp], reads: [norm2, weights[l], adapters[l]])
            p.op("\(name).mlp.act", creates: [act], reads: [gateUp])
            p.op("\(name).mlp.down", creates: [out], reads: [act, x1, weights[l], adapters[l]])
            kept.append([norm1, qkv, scores, attn, x1, norm2, gateUp, act])
            inputs.append(x)
            x = out
        }
        let logits = p.buffer("lm_head.logits", kind: .activation, bytes: f * T * V)
        p.op("lm_head", creates: [logits], reads: [x, embedding])
        var dx = p.buffer("lm_head.dlogits", kind: .activation, bytes: f * T * V)
        p.op("loss", creates: [dx], reads: [logits], releases: [logits])
        let dOut = p.buffer("lm_head.dx", kind: .activation, bytes: f * T * C)
        p.op("lm_head.backward", creates: [dOut], reads: [dx, embedding, x], releases: [dx, x])
        dx = dOut
        for l in (0..<layers).reversed() {
            let name = "layers.\(l)"
            let k = kept[l]
            let dAct = p.buffer("\(name).mlp.dact", kind: .activation, bytes: f * T * F)
            let dGateUp = p.buffer("\(name).mlp.dgate_up", kind: .activation, bytes: f * 2 * T * F)
            let dX1 = p.buffer("\(name).attn.dresidual", kind: .activation, bytes: f * T * C)
            let dScores = p.buffer("\(name).attn.dscores", kind: .activation, bytes: f * H * T * T)
            let dQkv = p.buffer("\(name).attn.dqkv", kind: .activation, bytes: f * 3 * T * C)
            let dIn = p.buffer("\(name).dx", kind: .activation, bytes: f * T * C)
            p.op("\(name).mlp.down.backward", creates: [dAct], reads: [dx, k[7], weights[l], adapters[l], gradients[l]],
                 releases: [k[7]])
            p.op("\(name).mlp.act.backward", creates: [dGateUp], reads: [dAct, k[6]], releases: [dAct, k[6]])
            p.op("\(name).mlp.gate_up.backward", creates: [dX1], reads: [dGateUp, dx, k[5], weights[l], gradients[l]],
                 releases: [dGateUp, dx, k[5], k[4]])
            p.op("\(name).attn.out.backward", creates: [dScores], reads: [dX1, k[3], k[2], weights[l], gradients[l]],
                 releases: [k[3]])
            p.op("\(name).attn.scores.backward", creates: [dQkv], reads: [dScores, k[2], k[1]], releases: [dScores, k[2], k[1]])
            p.op("\(name).attn.qkv.backward", creates: [dIn], reads: [dQkv, dX1, k[0], inputs[l], weights[l], gradients[l]],
                 releases: [dQkv, dX1, k[0], inputs[l]])
            dx = dIn
        }
        p.op("embed.backward", reads: [dx], releases: [dx])
        p.op("adamw", reads: adapters + gradients + moments)
        return p
    }

    /// The plainest training step: forward creates each layer's activations and keeps them for
    /// backward; backward walks the layers in reverse, releasing each activation in the reverse
    /// order of its creation, and passes one gradient per layer down the chain. Every moment's
    /// live set is a stack plus one or two gradients, so the lower bound is reachable.
    static func stackedTraining(layers: Int = 4, T: Int = 64, C: Int = 128, F: Int = 344, H: Int = 4, V: Int = 512) -> StepProgram {
        var p = StepProgram()
        let f = 4
        let weights = p.buffer("weights", kind: .weight, bytes: f * layers * (4 * C * C + 3 * C * F), persistent: true)
        let activations: [(String, Int)] = [("attn.norm", f * T * C), ("attn.qkv", f * 3 * T * C), ("attn.scores", f * H * T * T),
                                            ("attn.out", f * T * C), ("mlp.norm", f * T * C), ("mlp.gate_up", f * 2 * T * F),
                                            ("mlp.act", f * T * F)]
        var x = p.buffer("embed.out", kind: .activation, bytes: f * T * C)
        p.op("embed", creates: [x], reads: [weights])
        var kept = [[Int]](), inputs = [Int]()
        for l in 0..<layers {
            var layer = [Int]()
            for (name, bytes) in activations {
                let b = p.buffer("layers.\(l).\(name)", kind: .activation, bytes: bytes)
                p.op("layers.\(l).\(name)", creates: [b], reads: [layer.last ?? x, weights])
                layer.append(b)
            }
            let out = p.buffer("layers.\(l).out", kind: .activation, bytes: f * T * C)
            p.op("layers.\(l).mlp.down", creates: [out], reads: [layer.last!, x, weights])
            kept.append(layer)
            inputs.append(x)
            x = out
        }
        let logits = p.buffer("lm_head.logits", kind: .activation, bytes: f * T * V)
        p.op("lm_head", creates: [logits], reads: [x, weights])
        let dLogits = p.buffer("lm_head.dlogits", kind: .activation, bytes: f * T * V)
        p.op("loss", creates: [dLogits], reads: [logits], releases: [logits])
        var dx = p.buffer("lm_head.dx", kind: .activation, bytes: f * T * C)
        p.op("lm_head.backward", creates: [dx], reads: [dLogits, x, weights], releases: [dLogits, x])
        for l in (0..<layers).reversed() {
            for (j, b) in kept[l].enumerated().reversed() where j > 0 {
                p.op("layers.\(l).\(activations[j].0).backward", reads: [dx, b, weights], releases: [b])
            }
            let dIn = p.buffer("layers.\(l).dx", kind: .activation, bytes: f * T * C)
            p.op("layers.\(l).attn.norm.backward", creates: [dIn], reads: [dx, kept[l][0], inputs[l], weights],
                 releases: [dx, kept[l][0], inputs[l]])
            dx = dIn
        }
        p.op("embed.backward", reads: [dx, weights], releases: [dx])
        return p
    }

    /// A random program: `count` buffers with random sizes (1 B to 64 MB, log-uniform, with a
    /// few outliers up to 1 GB) and random lifetimes over `ops` ops; about 1 in 20 persistent.
    /// `largestLog2` and `outliers` shrink the sizes for tests that touch every byte.
    static func random(count: Int, ops: Int, largestLog2: Double = 26, outliers: Bool = true,
                       using random: inout SplitMix64) -> StepProgram {
        var p = StepProgram()
        var creates = [[Int]](repeating: [], count: ops)
        var reads = [[Int]](repeating: [], count: ops)
        var releases = [[Int]](repeating: [], count: ops)
        for i in 0..<count {
            let bytes: Int
            if outliers && Int.random(in: 0..<100, using: &random) < 2 {
                bytes = Int.random(in: (256 << 20)...(1 << 30), using: &random)
            } else {
                bytes = Int(exp2(Double.random(in: 0...largestLog2, using: &random)))
            }
            let persistent = Int.random(in: 0..<20, using: &random) == 0
            let b = p.buffer("b\(i)", kind: BufferKind.allCases[i % BufferKind.allCases.count], bytes: bytes, persistent: persistent)
            guard !persistent else { continue }
            let start = Int.random(in: 0..<ops, using: &random)
            let end = Int.random(in: start..<ops, using: &random)
            creates[start].append(b)
            // Most are released; some live on to their last read, some to the end.
            switch Int.random(in: 0..<4, using: &random) {
            case 0, 1: releases[end].append(b)
            case 2: reads[end].append(b)
            default: break
            }
        }
        for op in 0..<ops { p.op("op\(op)", creates: creates[op], reads: reads[op], releases: releases[op]) }
        return p
    }
}
