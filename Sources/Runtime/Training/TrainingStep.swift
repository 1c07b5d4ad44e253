import CKernels
import Foundation
import MemoryPlanner

/// One micro-batch through the model and back, run by walking the ops of its step program
/// (`StepProgramBuilder.trainingStep`) in its placed arena: every buffer is the program's, taken
/// by name. The forward keeps what the backward needs; the backward adds every trainable tensor's
/// gradient into `gradients`. LoRA mode computes gradients for the adapter only (no buffer exists
/// for a frozen base weight); full mode for every unfrozen tensor. With `checkpointing`, only each
/// layer's input is kept and the layer is recomputed just before its backward.
///
/// Axes: B rows of S tokens (T = B·S), C hidden, V vocab, r LoRA rank. Attention is causal
/// within each row.
public final class TrainingStep: @unchecked Sendable {
    public let weights: StepWeights
    public let adapter: LoRAAdapter?
    public let gradients: GradientBuffers
    public let rows: Int
    public let seqLen: Int
    public let checkpointing: Bool
    /// bf16: the larger slots of each layer are kept in 16 bits (without checkpointing).
    public let activations: Workload.ActivationDType
    /// How the frozen weights' products of several rows are computed (as asked; `effective` says what runs).
    public let matmul: MatmulDType
    /// The placed step program the step runs in.
    public let arena: PlannedBuffers
    private let tasks: [StepTask]
    private let rope: RotaryEmbedding
    /// The sliding layers' rope where it differs (Gemma 3).
    private let localRope: RotaryEmbedding?
    /// Per layer: the set the backward reads, the set a checkpointed forward drops at once (nil
    /// without checkpointing), the gradients, and where the layer's output goes.
    private let kept: [DecoderBlock.Activations]
    private let dropped: [DecoderBlock.Activations?]
    private let layerGradients: [DecoderBlock.Gradients]
    private let outputs: [UnsafeMutablePointer<Float>]
    private let workspace: LoRALinear.Workspace
    /// bf16 activations: per 16-bit slot, the fp32 buffer every layer computes in and, per layer,
    /// the kept 16-bit copy (empty for fp32 activations).
    private let narrowed: [(slot: TrainingBuffers.Slot, wide: UnsafeMutablePointer<Float>, kept: [(pointer: UnsafeMutablePointer<UInt16>, count: Int)])]

    /// Bytes of activations and workspaces (gradients are counted by `gradients`): the arena's planned peak.
    public var workspaceBytes: Int { arena.peakBytes }

    /// The transient part of the step program for these settings: what the step's arena holds.
    public static func program(config: ModelConfig, adapter: LoRAAdapter?, microBatch: Int, seqLen: Int,
                               checkpointing: Bool, activations: Workload.ActivationDType = .f32) throws -> StepProgram {
        try StepProgramBuilder.trainingStep(config.modelShape, Workload(
            kind: .train, microBatch: microBatch, seqLen: seqLen, lora: adapter.map { Workload.LoRA(r: $0.rank, targets: $0.targets) },
            checkpointing: checkpointing, activationDType: activations), optimizer: false).transientOnly()
    }

    /// A step in its own arena, placed here from `program(…)`. Throws when the placement or the
    /// arena cannot be made (sizes past the limits, no memory for the arena).
    public convenience init(weights: StepWeights, adapter: LoRAAdapter?, gradients: GradientBuffers,
                            microBatch: Int, seqLen: Int, checkpointing: Bool, activations: Workload.ActivationDType = .f32,
                            matmul: MatmulDType = .f32) throws {
        let program = try Self.program(config: weights.config, adapter: adapter, microBatch: microBatch, seqLen: seqLen,
                                       checkpointing: checkpointing, activations: activations)
        try self.init(weights: weights, adapter: adapter, gradients: gradients, microBatch: microBatch, seqLen: seqLen,
                      checkpointing: checkpointing, activations: activations, matmul: matmul, arena: PlannedBuffers(program))
    }

    /// `arena`: the transient part of this step's program (`program(…)` for these settings), placed.
    public init(weights: StepWeights, adapter: LoRAAdapter?, gradients: GradientBuffers,
                microBatch: Int, seqLen: Int, checkpointing: Bool, activations: Workload.ActivationDType = .f32,
                matmul: MatmulDType = .f32, arena: PlannedBuffers) {
        self.weights = weights
        self.adapter = adapter
        self.gradients = gradients
        self.rows = microBatch
        self.seqLen = seqLen
        self.checkpointing = checkpointing
        self.activations = activations
        self.matmul = matmul
        self.arena = arena
        tasks = arena.program.ops.compactMap(\.task)
        precondition(tasks.contains(.loss), "the step's program says nothing to run: build it with StepProgramBuilder.trainingStep")
        let config = weights.config
        rope = RotaryEmbedding(config: config)
        localRope = RotaryEmbedding.local(config)
        typealias Names = TrainingBuffers
        let targets = LoRATarget.layerTargets.filter { adapter?.targets.contains($0) ?? false }
        let layers = config.layers.indices
        let in16Bits = activations == .bf16 && !checkpointing ? Names.Slot.attentionSlots16 + Names.Slot.mlpSlots16 : []
        narrowed = in16Bits.map { slot in
            (slot, arena.require(Names.wide(slot)), layers.map { arena.requireHalves(Names.name(layer: $0, slot)) })
        }
        func set(_ l: Int, transient: Bool) -> DecoderBlock.Activations {
            func slot(_ slot: Names.Slot) -> UnsafeMutablePointer<Float> {
                in16Bits.contains(slot) ? arena.require(Names.wide(slot)) : arena.require(Names.name(layer: l, slot, transient: transient))
            }
            let norm = arena.require(Names.norm)
            var a = DecoderBlock.Activations(
                input: arena.require(Names.input(layer: l)), attentionNorm: norm, q: slot(.q), k: slot(.k), v: slot(.v),
                attention: slot(.attention), residual: slot(.residual), mlpNorm: norm, gate: slot(.gate), up: slot(.up),
                act: arena.require(Names.act), attentionNormRMS: slot(.attentionNormRMS), mlpNormRMS: slot(.mlpNormRMS), probs: slot(.probs))
            for target in targets { a.loraU[target] = slot(.loraU(target)) }
            if config.family.layout.hasHeadNorms {
                (a.qPreNorm, a.kPreNorm, a.qNormRMS, a.kNormRMS) = (slot(.qPreNorm), slot(.kPreNorm), slot(.qNormRMS), slot(.kNormRMS))
            }
            let sites = config.family.layout.normSites
            if sites.contains(.attentionOutput) { (a.attentionOutput, a.attentionOutputRMS) = (slot(.attentionOutput), slot(.attentionOutputRMS)) }
            if sites.contains(.mlpOutput) { (a.mlpOutput, a.mlpOutputRMS) = (slot(.mlpOutput), slot(.mlpOutputRMS)) }
            return a
        }
        kept = layers.map { set($0, transient: false) }
        dropped = layers.map { checkpointing ? set($0, transient: true) : nil }
        layerGradients = layers.map { l in
            func g(_ gradient: Names.Gradient) -> UnsafeMutablePointer<Float> { arena.require(Names.name(layer: l, gradient)) }
            return DecoderBlock.Gradients(act: g(.act), gate: g(.gate), up: g(.up), mlpNorm: g(.mlpNorm), attention: g(.attention),
                                          q: g(.q), k: g(.k), v: g(.v), scores: g(.scores), attentionNorm: g(.attentionNorm))
        }
        outputs = layers.map { arena.require($0 + 1 < config.layers.count ? Names.input(layer: $0 + 1) : Names.finalInput) }
        workspace = LoRALinear.Workspace(scratch: arena.require(Names.scratch), scratchCount: arena.floatCount(Names.scratch),
                                         du: arena.floats(Names.loraGradient), dropped: arena.floats(Names.loraDropout), matmul: matmul)
    }

    private var tokens: Int { rows * seqLen }

    // MARK: Step

    /// Forward and backward over one micro-batch (ids and labels: B·S each, labels[t] is the
    /// target at t, -100 for none). Gradients are added, scaled by 1/`normalizer` (the number of
    /// labelled tokens in the whole accumulated batch). Returns the summed loss and token count.
    /// `checkpoint` runs between layers; what it throws (a cancellation) ends the step there,
    /// with the gradients partly added.
    public func run(ids: [Int], labels: [Int], normalizer: Int, dropoutSeed: UInt64?,
                    checkpoint: () throws -> Void) rethrows -> (lossSum: Double, tokens: Int) {
        precondition(ids.count == tokens && labels.count == ids.count)
        return try walk(ids: ids, labels: labels, normalizer: Float(max(1, normalizer)), dropoutSeed: dropoutSeed,
                        backward: true, checkpoint: checkpoint)
    }

    /// `run` without cancellation.
    public func run(ids: [Int], labels: [Int], normalizer: Int, dropoutSeed: UInt64?) -> (lossSum: Double, tokens: Int) {
        run(ids: ids, labels: labels, normalizer: normalizer, dropoutSeed: dropoutSeed, checkpoint: {})
    }

    /// The loss alone (no gradients, no dropout): the program's ops up to the loss.
    public func loss(ids: [Int], labels: [Int]) -> (lossSum: Double, tokens: Int) {
        precondition(ids.count == tokens && labels.count == ids.count)
        return walk(ids: ids, labels: labels, normalizer: 1, dropoutSeed: nil, backward: false, checkpoint: {})
    }

    private func walk(ids: [Int], labels: [Int], normalizer: Float, dropoutSeed: UInt64?, backward: Bool,
                      checkpoint: () throws -> Void) rethrows -> (lossSum: Double, tokens: Int) {
        let config = weights.config
        let blocks = weights.layers.enumerated().map {
            DecoderBlock(layer: $0.element, index: $0.offset, adapter: adapter, dropoutSeed: dropoutSeed, config: config, rope: rope)
        }
        let globalTable = arena.require(TrainingBuffers.rope), localTable = localRope.map { _ in arena.require(TrainingBuffers.ropeLocal) }
        func ropeTable(_ l: Int) -> UnsafeMutablePointer<Float> { blocks[l].localRope ? localTable! : globalTable }
        let hidden = arena.require(TrainingBuffers.hiddenGradient)
        func shape(_ l: Int) -> SequenceAttention.Shape {
            SequenceAttention.Shape(rows: rows, seqLen: seqLen, heads: blocks[l].heads, kvHeads: blocks[l].kvHeads, headDim: config.headDim,
                                    window: blocks[l].window, attentionScale: blocks[l].attentionScale)
        }
        var result: (lossSum: Double, tokens: Int) = (0, 0)
        for task in tasks {
            switch task {
            case .embed:
                for b in 0..<rows {
                    rope.fillTable(globalTable + b * seqLen * config.headDim, tokens: seqLen, position: 0)
                    if let localRope, let localTable { localRope.fillTable(localTable + b * seqLen * config.headDim, tokens: seqLen, position: 0) }
                }
                ids.withUnsafeBufferPointer {
                    Embedding.forward($0, table: weights.embedding, out: arena.require(TrainingBuffers.input(layer: 0)), hidden: config.hiddenSize,
                                      scale: config.embeddingScale)
                }
            case let .attentionForward(l, recompute):
                try checkpoint()
                let a = recompute ? kept[l] : dropped[l] ?? kept[l]
                blocks[l].attentionForward(a, rows: tokens, attention: .sequences(shape(l)), ropeTable: ropeTable(l), workspace: workspace)
                convert(layer: l, mlp: false, narrow: true)
            case let .mlpForward(l, recompute):
                let a = recompute ? kept[l] : dropped[l] ?? kept[l]
                blocks[l].mlpForward(a, rows: tokens, output: recompute ? nil : outputs[l], workspace: workspace)
                convert(layer: l, mlp: true, narrow: true)
            case .loss:
                result = loss(labels: labels, normalizer: normalizer, dropoutSeed: dropoutSeed, backward: backward)
                if !backward { return result }
            case .mlpBackward(let l):
                try checkpoint()
                convert(layer: l, mlp: true, narrow: false)
                blocks[l].mlpBackward(kept[l], dx: hidden, layerGradients[l], rows: tokens, gradients: gradients, workspace: workspace)
            case .attentionBackward(let l):
                // Below the first layer only the embedding (and that layer's norm) can use a gradient.
                let inputGradient = l > 0 || gradients.gradient(for: weights.embedding) != nil
                    || gradients.gradient(forNorm: weights.layers[0].inputNorm) != nil
                convert(layer: l, mlp: false, narrow: false)
                blocks[l].attentionBackward(kept[l], dx: hidden, layerGradients[l], shape: shape(l), ropeTable: ropeTable(l),
                                            gradients: gradients, inputGradient: inputGradient, workspace: workspace)
            case .embedBackward:
                if let gradient = gradients.gradient(for: weights.embedding) {
                    ids.withUnsafeBufferPointer {
                        Embedding.backward($0, dOut: hidden, gradient: gradient, hidden: config.hiddenSize, scale: config.embeddingScale)
                    }
                }
            case .optimizer, .prefill, .decode:
                break  // the job steps the optimizer once per gradAccum micro-batches
            }
        }
        return result
    }

    /// bf16 activations: narrows a block's 16-bit slots of layer `l` from the fp32 buffers it
    /// computed in into the layer's kept copy (the MLP block's with the residual, which it reads),
    /// or widens them back before the block's backward. Nothing for fp32 activations.
    private func convert(layer l: Int, mlp: Bool, narrow: Bool) {
        for (slot, wide, kept) in narrowed where TrainingBuffers.Slot.mlpSlots16.contains(slot) == mlp {
            let (half, count) = kept[l]
            Parallel.ranges(count, costPerItem: 2) { range in
                if narrow { lk_narrow_bf16(wide, half, range.lowerBound, range.upperBound) }
                else { lk_widen16(half, 1, wide, range.lowerBound, range.upperBound) }
            }
        }
    }

    // MARK: Loss

    /// Final norm, lm_head and cross-entropy in blocks of `TrainingBuffers.lossRows` rows, so the
    /// (T, V) logits never exist at once; with `backward`, the hidden gradient gets the gradient
    /// of the layers' output.
    private func loss(labels: [Int], normalizer: Float, dropoutSeed: UInt64?, backward: Bool) -> (Double, Int) {
        typealias Names = TrainingBuffers
        let config = weights.config
        let t = tokens, c = config.hiddenSize, v = config.vocabSize, r = adapter?.rank ?? 0
        let x = arena.require(Names.finalInput), inverse = arena.require(Names.finalNormRMS), xn = arena.require(Names.finalNorm)
        let logits = arena.require(Names.logits), u = arena.floats(Names.lmHeadU), dxn = arena.require(Names.finalNormGradient)
        let head = LoRALinear(weight: weights.lmHead, pair: adapter?.lmHead, scaling: adapter?.scaling ?? 0,
                              dropout: LoRADropout(rate: adapter?.dropout ?? 0, seed: dropoutSeed, layer: 0, target: .lmHead))
        RMSNorm.forward(x, weight: weights.finalNorm, out: xn, rows: t, cols: c, eps: config.rmsNormEps, inverse: inverse)
        if backward { dxn.update(repeating: 0, count: t * c) }
        var total = 0.0
        var count = 0
        var start = 0
        while start < t {
            let n = min(Names.lossRows(tokens: t), t - start)
            let rowsU = u.map { $0 + start * r }
            head.forward(xn + start * c, rows: n, out: logits, u: rowsU, workspace: workspace)
            for row in 0..<n {
                let position = start + row
                let target = position % seqLen + 1 < seqLen ? labels[position + 1] : Dataset.ignoreIndex
                let values = logits + row * v
                guard target != Dataset.ignoreIndex else {
                    if backward { values.update(repeating: 0, count: v) }
                    continue
                }
                // d(loss)/d(logits) = (softmax − onehot) / normalizer, written over the logits.
                total += Double(CrossEntropy.row(values, vocab: v, target: target, gradientScale: backward ? 1 / normalizer : 0))
                count += 1
            }
            if backward {
                head.backward(dy: logits, x: xn + start * c, u: rowsU, dx: dxn + start * c, rows: n, gradients: gradients, workspace: workspace)
            }
            start += n
        }
        if backward {
            let dx = arena.require(Names.hiddenGradient)
            dx.update(repeating: 0, count: t * c)
            RMSNorm.backward(dy: dxn, x: x, weight: weights.finalNorm, inverse: inverse, dx: dx,
                             weightGrad: gradients.gradient(forNorm: weights.finalNorm), rows: t, cols: c)
        }
        return (total, count)
    }
}
