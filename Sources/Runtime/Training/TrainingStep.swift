import CKernels
import COpenBLAS
import Foundation
import MemoryPlanner

/// One micro-batch through the model and back: the forward keeps what the backward needs, the
/// backward adds every trainable tensor's gradient into `gradients`. LoRA mode computes gradients
/// for the adapter only (no buffer exists for a frozen base weight); full mode for every unfrozen
/// tensor. With `checkpointing`, only each layer's input is kept and the layer's forward is
/// recomputed just before its backward.
///
/// Axes: B rows of S tokens (T = B·S), C hidden, H heads, KV kv heads, D head dim, I MLP width,
/// V vocab, r LoRA rank. Attention is causal within each row.
public final class TrainingStep: @unchecked Sendable {
    public let weights: TrainingWeights
    public let adapter: LoRAAdapter?
    public let gradients: GradientBuffers
    public let rows: Int
    public let seqLen: Int
    public let checkpointing: Bool

    /// Every buffer the step allocates, by size in floats, from the shapes alone: what the memory
    /// plan charges before anything is allocated, and what `init` then allocates.
    public struct Layout: Sendable {
        public var ropeTable = 0
        /// Per layer when not checkpointing; one shared set (widest layer) when checkpointing.
        public var activationSets: [Int] = []
        public var layerInputs: [Int] = []
        public var loss = 0
        public var backward = 0
        public var scratch = 0

        public var floatCount: Int { ropeTable + activationSets.reduce(0, +) + layerInputs.reduce(0, +) + loss + backward + scratch }
        public var byteCount: Int { floatCount * 4 }

        public init(config: LlamaConfig, rank: Int?, targets: Set<LoRATarget>, microBatch: Int, seqLen: Int, checkpointing: Bool) {
            let t = microBatch * seqLen, c = config.hiddenSize, d = config.headDim, v = config.vocabSize
            let hMax = config.layers.map(\.headCount).max() ?? 1
            let kvMax = config.layers.map(\.kvHeadCount).max() ?? 1
            let iMax = config.layers.map(\.intermediateSize).max() ?? 1
            let r = rank ?? 1
            let loraTargets = LoRATarget.layerTargets.filter { rank != nil && targets.contains($0) }.count
            func activations(_ shape: LlamaConfig.LayerShape) -> Int {
                let h = shape.headCount, kv = shape.kvHeadCount, i = shape.intermediateSize
                return loraTargets * t * r + 4 * t * c + 2 * t + t * h * d * 2 + 2 * t * kv * d
                    + microBatch * h * seqLen * seqLen + 3 * t * i
            }
            ropeTable = t * d
            if checkpointing {
                activationSets = [activations(.init(headCount: hMax, kvHeadCount: kvMax, intermediateSize: iMax))]
                layerInputs = config.layers.map { _ in t * c }
            } else {
                activationSets = config.layers.map(activations)
            }
            loss = t * c + t + t * c + TrainingStep.lossRows * v + t * r
            backward = t * c + t * max(c, iMax) + t * hMax * d + 2 * t * kvMax * d + t * hMax * d + 3 * t * iMax
                + seqLen * seqLen + max(t, TrainingStep.lossRows) * r + t * max(c, iMax, hMax * d)
            scratch = TrainingStep.scratchCount
        }
    }

    /// What one layer's backward needs from its forward.
    struct LayerActivations {
        var xIn, inv1, xn1, q, k, v, probs, att, xMid, inv2, xn2, gate, up, act: UnsafeMutablePointer<Float>
        /// x·Aᵀ of each LoRA pair of the layer, (T, r).
        var loraU: [LoRATarget: UnsafeMutablePointer<Float>]
    }

    private let buffers: FloatBuffers
    /// The planned arena the buffers live in, when there is one.
    public let arena: PlannedBuffers?
    private var saved: [LayerActivations] = []
    /// With checkpointing in an arena: each layer's recomputed activations, used in the backward.
    private var recomputedSets: [LayerActivations] = []
    private var recomputing = false
    /// Layer inputs only, when checkpointing.
    private var layerInputs: [UnsafeMutablePointer<Float>] = []
    private let rope: RotaryEmbedding
    private let ropeTable: UnsafeMutablePointer<Float>
    // Final norm and the loss.
    private let xFinal, invFinal, xnFinal, logits, finalU: UnsafeMutablePointer<Float>
    // Backward workspaces.
    private let dx, dxn, dq, dk, dv, datt, dact, dgate, dup, dScores, du, dropped, scratch: UnsafeMutablePointer<Float>
    static let scratchCount = 1 << 20
    static let lossRows = 32
    private var scratchCount: Int { Self.scratchCount }
    private var lossRows: Int { Self.lossRows }
    private var dropoutSeed: UInt64 = 0
    private var dropoutOn = false

    /// Bytes of activations and workspaces (gradients are counted by `gradients`): the arena's
    /// planned peak, or the sum of the separate allocations.
    public var workspaceBytes: Int { arena?.peakBytes ?? buffers.byteCount }

    /// `arena`: the step's planned arena (the transient part of `StepProgramBuilder.trainingStep`
    /// for these settings, placed); every buffer is then a view into it at its planned offset, and
    /// buffers whose lifetimes do not meet share memory. Without it, each buffer is allocated on its own.
    public init(weights: TrainingWeights, adapter: LoRAAdapter?, gradients: GradientBuffers,
                microBatch: Int, seqLen: Int, checkpointing: Bool, arena: PlannedBuffers? = nil) {
        let buffers = FloatBuffers()
        self.buffers = buffers
        self.weights = weights
        self.adapter = adapter
        self.gradients = gradients
        self.rows = microBatch
        self.seqLen = seqLen
        self.checkpointing = checkpointing
        self.arena = arena
        /// `count` floats of planned buffer `name` (or an allocation of their own without an arena).
        func take(_ name: String, _ count: Int) -> UnsafeMutablePointer<Float> {
            arena?.take(name, floats: count) ?? buffers.make(count)
        }
        let config = weights.config
        let t = microBatch * seqLen, c = config.hiddenSize, d = config.headDim, v = config.vocabSize
        let hMax = config.layers.map(\.headCount).max() ?? 1
        let kvMax = config.layers.map(\.kvHeadCount).max() ?? 1
        let iMax = config.layers.map(\.intermediateSize).max() ?? 1
        let r = adapter?.rank ?? 1
        rope = RotaryEmbedding(headDim: d, theta: config.ropeTheta, scaling: config.ropeScaling)
        ropeTable = take("workspace.rope", t * d)
        for b in 0..<microBatch { rope.fillTable(ropeTable + b * seqLen * d, tokens: seqLen, position: 0) }

        func makeActivations(_ shape: LlamaConfig.LayerShape, _ targets: [LoRATarget], layer: Int,
                             kept: String? = nil, input: UnsafeMutablePointer<Float>? = nil) -> LayerActivations {
            let kept = kept ?? "layers.\(layer).saved"
            var loraU: [LoRATarget: UnsafeMutablePointer<Float>] = [:]
            for target in targets { loraU[target] = take(kept, t * r) }
            return LayerActivations(
                xIn: input ?? take("layers.\(layer).input", t * c), inv1: take(kept, t), xn1: take(kept, t * c),
                q: take(kept, t * shape.headCount * d), k: take(kept, t * shape.kvHeadCount * d), v: take(kept, t * shape.kvHeadCount * d),
                probs: take(kept, microBatch * shape.headCount * seqLen * seqLen), att: take(kept, t * shape.headCount * d),
                xMid: take(kept, t * c), inv2: take(kept, t), xn2: take(kept, t * c),
                gate: take(kept, t * shape.intermediateSize), up: take(kept, t * shape.intermediateSize),
                act: take(kept, t * shape.intermediateSize), loraU: loraU)
        }
        let allTargets = LoRATarget.layerTargets.filter { adapter?.targets.contains($0) ?? false }
        if checkpointing, arena != nil {
            // Per layer: the forward's set (released within its op) and the recomputed one (kept
            // to its backward), views into the plan, where layers' sets share memory.
            let inputs = config.layers.indices.map { take("layers.\($0).input", t * c) }
            layerInputs = inputs
            saved = config.layers.enumerated().map { makeActivations($0.element, allTargets, layer: $0.offset, input: inputs[$0.offset]) }
            recomputedSets = config.layers.enumerated().map {
                makeActivations($0.element, allTargets, layer: $0.offset, kept: "layers.\($0.offset).recomputed", input: inputs[$0.offset])
            }
        } else if checkpointing {
            // One set of activations, sized for the widest layer, reused by every layer.
            let widest = LlamaConfig.LayerShape(headCount: hMax, kvHeadCount: kvMax, intermediateSize: iMax)
            saved = [makeActivations(widest, allTargets, layer: 0)]
            layerInputs = config.layers.map { _ in buffers.make(t * c) }
        } else {
            saved = config.layers.enumerated().map { makeActivations($0.element, allTargets, layer: $0.offset) }
        }
        xFinal = take("final.input", t * c)
        invFinal = take("loss.workspace", t)
        xnFinal = take("loss.workspace", t * c)
        logits = take("loss.workspace", Self.lossRows * v)
        finalU = take("loss.workspace", t * r)
        let back = "backward.workspace"
        dx = take(back, t * c)
        dxn = take(back, t * max(c, iMax))
        dq = take(back, t * hMax * d)
        dk = take(back, t * kvMax * d)
        dv = take(back, t * kvMax * d)
        datt = take(back, t * hMax * d)
        dact = take(back, t * iMax)
        dgate = take(back, t * iMax)
        dup = take(back, t * iMax)
        dScores = take(back, seqLen * seqLen)
        du = take(back, max(t, Self.lossRows) * r)
        dropped = take(back, t * max(c, iMax, hMax * d))
        scratch = take("workspace.scratch", Self.scratchCount)
        arena?.checkFullyUsed()
    }

    private func activations(_ layer: Int) -> LayerActivations {
        if recomputing && !recomputedSets.isEmpty { return recomputedSets[layer] }
        return checkpointing && recomputedSets.isEmpty ? saved[0] : saved[layer]
    }

    // MARK: Step

    /// Forward and backward over one micro-batch (ids and labels: B·S each, labels[t] is the
    /// target at t, -100 for none). Gradients are added, scaled by 1/`normalizer` (the number of
    /// labelled tokens in the whole accumulated batch). Returns the summed loss and token count.
    public func run(ids: [Int], labels: [Int], normalizer: Int, dropoutSeed: UInt64?) -> (lossSum: Double, tokens: Int) {
        precondition(ids.count == rows * seqLen && labels.count == ids.count)
        self.dropoutSeed = dropoutSeed ?? 0
        dropoutOn = dropoutSeed != nil && (adapter?.dropout ?? 0) > 0
        recomputing = false
        forward(ids)
        let result = lossAndBackward(labels: labels, normalizer: Float(max(1, normalizer)), backward: true)
        recomputing = checkpointing
        defer { recomputing = false }
        for l in stride(from: weights.layers.count - 1, through: 0, by: -1) {
            if checkpointing {
                forwardLayer(l, input: layerInputs[l])
                // The down projection's output is the next layer's input (kept); its x·Aᵀ is not.
                let a = activations(l)
                if let u = a.loraU[.down] { loraProject(a.act, weights.layers[l].down, .down, layer: l, u: u, rowCount: rows * seqLen) }
            }
            backwardLayer(l)
        }
        if let gradient = gradients.gradient(for: weights.embedding) {
            let c = weights.config.hiddenSize
            for (t, id) in ids.enumerated() {
                let row = gradient + id * c, g = dx + t * c
                for i in 0..<c { row[i] += g[i] }
            }
        }
        return result
    }

    /// The loss alone (no gradients, no dropout).
    public func loss(ids: [Int], labels: [Int]) -> (lossSum: Double, tokens: Int) {
        dropoutOn = false
        recomputing = false
        forward(ids)
        return lossAndBackward(labels: labels, normalizer: 1, backward: false)
    }

    // MARK: Forward

    private func forward(_ ids: [Int]) {
        let c = weights.config.hiddenSize
        let x = checkpointing ? layerInputs[0] : saved[0].xIn
        for (t, id) in ids.enumerated() {
            let row = weights.embedding.rows(id..<(id + 1), scratch: x + t * c)
            if row != UnsafePointer(x + t * c) { (x + t * c).update(from: row, count: c) }
        }
        for l in 0..<weights.layers.count {
            let input = checkpointing ? layerInputs[l] : saved[l].xIn
            let output = l + 1 < weights.layers.count ? (checkpointing ? layerInputs[l + 1] : saved[l + 1].xIn) : xFinal
            forwardLayer(l, input: input)
            let a = activations(l)
            // The layer's output: xMid + down(act) was accumulated into xMid's copy below.
            output.update(from: a.xMid, count: rows * seqLen * c)
            linear(a.act, weights.layers[l].down, .down, layer: l, into: output, accumulate: true, u: a.loraU[.down])
        }
    }

    /// One layer's forward from `input`, filling its activations up to `act`.
    private func forwardLayer(_ l: Int, input: UnsafeMutablePointer<Float>) {
        let layer = weights.layers[l], a = activations(l)
        let config = weights.config
        let t = rows * seqLen, c = config.hiddenSize, d = config.headDim
        let h = layer.shape.headCount, kv = layer.shape.kvHeadCount, inter = layer.shape.intermediateSize
        if input != a.xIn { a.xIn.update(from: input, count: t * c) }
        normalize(a.xIn, weight: layer.inputNorm, inverse: a.inv1, out: a.xn1)
        linear(a.xn1, layer.q, .q, layer: l, into: a.q, u: a.loraU[.q])
        linear(a.xn1, layer.k, .k, layer: l, into: a.k, u: a.loraU[.k])
        linear(a.xn1, layer.v, .v, layer: l, into: a.v, u: a.loraU[.v])
        rope.apply(a.q, tokens: t, heads: h, rowStride: h * d, table: ropeTable)
        rope.apply(a.k, tokens: t, heads: kv, rowStride: kv * d, table: ropeTable)
        attentionForward(a, heads: h, kvHeads: kv)
        a.xMid.update(from: a.xIn, count: t * c)
        linear(a.att, layer.o, .o, layer: l, into: a.xMid, accumulate: true, u: a.loraU[.o])
        normalize(a.xMid, weight: layer.postAttentionNorm, inverse: a.inv2, out: a.xn2)
        linear(a.xn2, layer.gate, .gate, layer: l, into: a.gate, u: a.loraU[.gate])
        linear(a.xn2, layer.up, .up, layer: l, into: a.up, u: a.loraU[.up])
        SwiGLU.forward(gate: a.gate, up: a.up, out: a.act, count: t * inter)
    }

    private func normalize(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, inverse: UnsafeMutablePointer<Float>,
                           out: UnsafeMutablePointer<Float>) {
        let t = rows * seqLen, c = weights.config.hiddenSize
        RMSNorm.inverseRMS(x, rows: t, cols: c, eps: weights.config.rmsNormEps, out: inverse)
        for row in 0..<t {
            let r = inverse[row], xr = x + row * c, o = out + row * c
            for i in 0..<c { o[i] = xr[i] * r * weight[i] }
        }
    }

    private func attentionForward(_ a: LayerActivations, heads h: Int, kvHeads kv: Int) {
        let d = weights.config.headDim, s = seqLen
        let group = h / kv, scale = 1 / Float(d).squareRoot()
        for b in 0..<rows {
            for head in 0..<h {
                let g = head / group
                let q = a.q + b * s * h * d + head * d, k = a.k + b * s * kv * d + g * d, v = a.v + b * s * kv * d + g * d
                let p = a.probs + (b * h + head) * s * s
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(s), Int32(s), Int32(d),
                            scale, q, Int32(h * d), k, Int32(kv * d), 0, p, Int32(s))
                lk_softmax_causal(p, s, 0, s, 1)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(s), Int32(d), Int32(s),
                            1, p, Int32(s), v, Int32(kv * d), 0, a.att + b * s * h * d + head * d, Int32(h * d))
            }
        }
    }

    /// y (+)= x·Wᵀ, plus scaling·(dropout(x)·Aᵀ)·Bᵀ when the adapter targets it (keeping x·Aᵀ in `u`).
    private func linear(_ x: UnsafePointer<Float>, _ weight: Weight, _ target: LoRATarget, layer: Int,
                        into out: UnsafeMutablePointer<Float>, accumulate: Bool = false, u: UnsafeMutablePointer<Float>?, rowCount: Int? = nil) {
        let t = rowCount ?? rows * seqLen
        Linear.forward(x, rows: t, weight: weight, out: out, accumulate: accumulate, scratch: scratch, scratchCount: scratchCount)
        guard let adapter, let pair = adapter.pair(target, layer: layer), let u else { return }
        let r = adapter.rank, outFeatures = weight.rows
        loraProject(x, weight, target, layer: layer, u: u, rowCount: t)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(t), Int32(outFeatures), Int32(r),
                    adapter.scaling, u, Int32(r), pair.b.float32!, Int32(r), 1, out, Int32(outFeatures))
    }

    /// u = dropout(x)·Aᵀ for the pair on `target` of `layer`.
    private func loraProject(_ x: UnsafePointer<Float>, _ weight: Weight, _ target: LoRATarget, layer: Int,
                             u: UnsafeMutablePointer<Float>, rowCount t: Int) {
        guard let adapter, let pair = adapter.pair(target, layer: layer) else { return }
        let inFeatures = weight.cols
        let input = dropout(x, count: t * inFeatures, target: target, layer: layer)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(t), Int32(adapter.rank), Int32(inFeatures),
                    1, input, Int32(inFeatures), pair.a.float32!, Int32(inFeatures), 0, u, Int32(adapter.rank))
    }

    // MARK: LoRA dropout

    /// dropout(x) into `dropped`, or x itself when dropout is off. The mask is a hash of
    /// (seed, layer, target, index), so the backward regenerates it instead of storing it.
    private func dropout(_ x: UnsafePointer<Float>, count: Int, target: LoRATarget, layer: Int) -> UnsafePointer<Float> {
        guard dropoutOn, let adapter else { return x }
        let keep = 1 - adapter.dropout, scale = Float(1 / keep)
        let base = maskBase(target: target, layer: layer)
        for i in 0..<count { dropped[i] = Self.kept(base, i, keep) ? x[i] * scale : 0 }
        return UnsafePointer(dropped)
    }

    private func maskBase(target: LoRATarget, layer: Int) -> UInt64 {
        dropoutSeed &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(layer &* 16 &+ (LoRATarget.allCases.firstIndex(of: target) ?? 0)) &* 0xBF58_476D_1CE4_E5B9
    }

    @inline(__always)
    static func kept(_ base: UInt64, _ index: Int, _ keep: Double) -> Bool {
        var z = base &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) * 0x1.0p-53 < keep
    }

    // MARK: Loss

    /// Final norm, lm_head and cross-entropy in blocks of rows, so (T, V) logits never exist at
    /// once; with `backward`, dx gets the gradient of the layers' output.
    private func lossAndBackward(labels: [Int], normalizer: Float, backward: Bool) -> (Double, Int) {
        let config = weights.config
        let t = rows * seqLen, c = config.hiddenSize, v = config.vocabSize
        normalize(xFinal, weight: weights.finalNorm, inverse: invFinal, out: xnFinal)
        if backward { dxn.update(repeating: 0, count: t * c) }
        var total = 0.0
        var count = 0
        let lmGradient = gradients.gradient(for: weights.lmHead)
        var start = 0
        while start < t {
            let n = min(lossRows, t - start)
            let x = xnFinal + start * c
            linear(x, weights.lmHead, .lmHead, layer: 0, into: logits, u: finalU + start * (adapter?.rank ?? 1), rowCount: n)
            for row in 0..<n {
                let position = start + row
                let target = position % seqLen + 1 < seqLen ? labels[position + 1] : Dataset.ignoreIndex
                let values = logits + row * v
                guard target != Dataset.ignoreIndex else {
                    if backward { values.update(repeating: 0, count: v) }
                    continue
                }
                // d(loss)/d(logits) = (softmax − onehot) / normalizer, written over the logits.
                total += Double(lk_cross_entropy_row(values, v, target, backward ? 1 / normalizer : 0))
                count += 1
            }
            if backward {
                linearBackward(dy: logits, x: x, weight: weights.lmHead, target: .lmHead, layer: 0,
                               u: finalU + start * (adapter?.rank ?? 1), dx: dxn + start * c, rowCount: n, weightGradient: lmGradient)
            }
            start += n
        }
        if backward {
            dx.update(repeating: 0, count: t * c)
            RMSNorm.backward(dy: dxn, x: xFinal, weight: weights.finalNorm, inverse: invFinal, dx: dx,
                             weightGrad: gradients.gradient(forNorm: weights.finalNorm), rows: t, cols: c)
        }
        return (total, count)
    }

    // MARK: Backward

    /// The gradients of y = x·Wᵀ + s·(drop(x)·Aᵀ)·Bᵀ: dx += dy·W + s·drop'(dy·B·A); W's, A's and B's
    /// gradients where they exist. `dx` accumulates.
    private func linearBackward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: Weight, target: LoRATarget, layer: Int,
                                u: UnsafePointer<Float>?, dx: UnsafeMutablePointer<Float>, rowCount: Int? = nil,
                                weightGradient: UnsafeMutablePointer<Float>? = nil) {
        let t = rowCount ?? rows * seqLen, inFeatures = weight.cols, outFeatures = weight.rows
        LinearBackward.input(dy: dy, rows: t, weight: weight, dx: dx, accumulate: true, scratch: scratch, scratchCount: scratchCount)
        if let gradientW = weightGradient ?? gradients.gradient(for: weight) {
            LinearBackward.weight(dy: dy, x: x, rows: t, outFeatures: outFeatures, inFeatures: inFeatures, grad: gradientW)
        }
        guard let adapter, let pair = adapter.pair(target, layer: layer), let u else { return }
        let r = adapter.rank, s = adapter.scaling
        // dB += s·dyᵀ·u ; du = s·dy·B ; dA += duᵀ·drop(x) ; dx += drop'(du·A)
        if let gradientB = gradients.gradient(for: pair.b) {
            LinearBackward.weight(dy: dy, x: u, rows: t, outFeatures: outFeatures, inFeatures: r, grad: gradientB, scale: s)
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(t), Int32(r), Int32(outFeatures),
                    s, dy, Int32(outFeatures), pair.b.float32!, Int32(r), 0, du, Int32(r))
        let input = dropout(x, count: t * inFeatures, target: target, layer: layer)
        if let gradientA = gradients.gradient(for: pair.a) {
            LinearBackward.weight(dy: du, x: input, rows: t, outFeatures: r, inFeatures: inFeatures, grad: gradientA)
        }
        if dropoutOn {
            let keep = 1 - adapter.dropout, scale = Float(1 / keep)
            let base = maskBase(target: target, layer: layer)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(t), Int32(inFeatures), Int32(r),
                        1, du, Int32(r), pair.a.float32!, Int32(inFeatures), 0, dropped, Int32(inFeatures))
            for i in 0..<(t * inFeatures) where Self.kept(base, i, keep) { dx[i] += dropped[i] * scale }
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(t), Int32(inFeatures), Int32(r),
                        1, du, Int32(r), pair.a.float32!, Int32(inFeatures), 1, dx, Int32(inFeatures))
        }
    }

    /// Backward through layer `l`: dx holds the gradient of its output on entry and of its input on exit.
    private func backwardLayer(_ l: Int) {
        let layer = weights.layers[l], a = activations(l)
        let config = weights.config
        let t = rows * seqLen, c = config.hiddenSize, d = config.headDim
        let h = layer.shape.headCount, kv = layer.shape.kvHeadCount, inter = layer.shape.intermediateSize
        // MLP: out = xMid + down(silu(gate(xn2))·up(xn2)); dx is d(out) and passes to xMid unchanged.
        dact.update(repeating: 0, count: t * inter)
        linearBackward(dy: dx, x: a.act, weight: layer.down, target: .down, layer: l, u: a.loraU[.down], dx: dact)
        SwiGLU.backward(dout: dact, gate: a.gate, up: a.up, dgate: dgate, dup: dup, count: t * inter)
        dxn.update(repeating: 0, count: t * c)
        linearBackward(dy: dgate, x: a.xn2, weight: layer.gate, target: .gate, layer: l, u: a.loraU[.gate], dx: dxn)
        linearBackward(dy: dup, x: a.xn2, weight: layer.up, target: .up, layer: l, u: a.loraU[.up], dx: dxn)
        RMSNorm.backward(dy: dxn, x: a.xMid, weight: layer.postAttentionNorm, inverse: a.inv2, dx: dx,
                         weightGrad: gradients.gradient(forNorm: layer.postAttentionNorm), rows: t, cols: c)
        // Attention: xMid = xIn + o(attention(rope(q(xn1)), rope(k(xn1)), v(xn1))).
        datt.update(repeating: 0, count: t * h * d)
        linearBackward(dy: dx, x: a.att, weight: layer.o, target: .o, layer: l, u: a.loraU[.o], dx: datt)
        attentionBackward(a, heads: h, kvHeads: kv)
        rope.applyBackward(dq, tokens: t, heads: h, rowStride: h * d, table: ropeTable)
        rope.applyBackward(dk, tokens: t, heads: kv, rowStride: kv * d, table: ropeTable)
        dxn.update(repeating: 0, count: t * c)
        linearBackward(dy: dq, x: a.xn1, weight: layer.q, target: .q, layer: l, u: a.loraU[.q], dx: dxn)
        linearBackward(dy: dk, x: a.xn1, weight: layer.k, target: .k, layer: l, u: a.loraU[.k], dx: dxn)
        linearBackward(dy: dv, x: a.xn1, weight: layer.v, target: .v, layer: l, u: a.loraU[.v], dx: dxn)
        RMSNorm.backward(dy: dxn, x: a.xIn, weight: layer.inputNorm, inverse: a.inv1, dx: dx,
                         weightGrad: gradients.gradient(forNorm: layer.inputNorm), rows: t, cols: c)
    }

    /// out = P·V with P = softmax(scale·Q·Kᵀ): dV += Pᵀ·dO; dP = dO·Vᵀ; dS = P⊙(dP − rowsum(dP⊙P));
    /// dQ = scale·dS·K; dK += scale·dSᵀ·Q. GQA heads of a group add into their kv head.
    private func attentionBackward(_ a: LayerActivations, heads h: Int, kvHeads kv: Int) {
        let d = weights.config.headDim, s = seqLen, t = rows * seqLen
        let group = h / kv, scale = 1 / Float(d).squareRoot()
        dk.update(repeating: 0, count: t * kv * d)
        dv.update(repeating: 0, count: t * kv * d)
        for b in 0..<rows {
            for head in 0..<h {
                let g = head / group
                let qOffset = b * s * h * d + head * d, kvOffset = b * s * kv * d + g * d
                let p = a.probs + (b * h + head) * s * s
                let dO = datt + qOffset
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(s), Int32(d), Int32(s),
                            1, p, Int32(s), dO, Int32(h * d), 1, dv + kvOffset, Int32(kv * d))
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(s), Int32(s), Int32(d),
                            1, dO, Int32(h * d), a.v + kvOffset, Int32(kv * d), 0, dScores, Int32(s))
                lk_softmax_backward_causal(p, dScores, s, 0, s)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(s), Int32(d), Int32(s),
                            scale, dScores, Int32(s), a.k + kvOffset, Int32(kv * d), 0, dq + qOffset, Int32(h * d))
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(s), Int32(d), Int32(s),
                            scale, dScores, Int32(s), a.q + qOffset, Int32(h * d), 1, dk + kvOffset, Int32(kv * d))
            }
        }
    }
}
