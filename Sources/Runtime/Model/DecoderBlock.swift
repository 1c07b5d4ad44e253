import MemoryPlanner

/// One decoder layer of any family, the one forward inference and training share, with each
/// block's backward beside its forward:
///
///     attention block: residual = x + post(o(attention(rope(q'), rope(k'), v'))),  n = rmsnorm(x)
///                      q' = headnorm(q(n) + b_q), k' = headnorm(k(n) + b_k), v' = v(n) + b_v
///     MLP block:       output = residual + post(down(act(gate(m)) · up(m))),   m = rmsnorm(residual)
///
/// The biases (Qwen2), the per-head RMSNorms over D (Qwen3, Gemma 3) and the RMSNorms on each
/// block's output (`post`, Gemma 3) are stages a family's layout turns on by having the tensors;
/// act is silu or the tanh GELU (`ModelConfig.activation`). Without them the layer is LLaMA's.
///
/// Buffers are the caller's. Inference passes one set every layer reuses (the residual stream
/// updated in place, one norm buffer, act written over gate, no rms kept); training passes the
/// layer's own set from its step program, kept for the backward, except the normed rows and act:
/// one layer's worth shared by all, which the backward remakes where it reads them.
/// Axes: T rows, C hidden, H/KV heads, D head dim, I MLP width, r LoRA rank.
struct DecoderBlock {
    let q, k, v, o, gate, up, down: LoRALinear
    let inputNorm, postAttentionNorm: UnsafeMutablePointer<Float>
    /// Added to q, k and v's outputs where the family has them.
    let qBias, kBias, vBias: UnsafeMutablePointer<Float>?
    /// RMSNorm weights (D) over each head of q and k before RoPE, where the family has them.
    let qNorm, kNorm: UnsafeMutablePointer<Float>?
    /// RMSNorms on the attention block's and the MLP's outputs, before the residual add (Gemma 3).
    let attentionOutputNorm, mlpOutputNorm: UnsafeMutablePointer<Float>?
    let activation: ModelConfig.Activation
    /// q·kᵀ's scale (1/√D unless the family says otherwise).
    let attentionScale: Float
    /// The layer rotates with the config's local rope (the caller passes that table).
    let localRope: Bool
    let heads, kvHeads, intermediate, hidden: Int
    let eps: Float
    let rope: RotaryEmbedding
    /// Each query sees only this many latest keys (Mistral's layers, Gemma 3's sliding ones); nil: all.
    let window: Int?

    /// A layer's buffers. Training only: `attentionNormRMS`/`mlpNormRMS` (1/rms per row),
    /// `probs` (B, H, S, S), and with per-head norms q and k before them (`qPreNorm`, `kPreNorm`)
    /// with their 1/rms per head (`qNormRMS` (T·H), `kNormRMS` (T·KV)). `loraU`: x·Aᵀ per
    /// targeted linear (training keeps each; inference points them all at one workspace). `attentionNorm`, `mlpNorm` and `act` are only read
    /// within the op that writes them: the backward remakes them first.
    struct Activations {
        var input, attentionNorm, q, k, v, attention, residual, mlpNorm, gate, up, act: UnsafeMutablePointer<Float>
        var attentionNormRMS, mlpNormRMS, probs: UnsafeMutablePointer<Float>?
        var qPreNorm, kPreNorm, qNormRMS, kNormRMS: UnsafeMutablePointer<Float>?
        /// With output norms: o's and down's outputs before them (T, C) and their 1/rms (T);
        /// inference passes one (T, C) buffer for both and no rms.
        var attentionOutput, attentionOutputRMS, mlpOutput, mlpOutputRMS: UnsafeMutablePointer<Float>?
        var loraU: [LoRATarget: UnsafeMutablePointer<Float>] = [:]
    }

    /// Where keys and values come from.
    enum Attention {
        /// Into the cache at `position`; queries attend to every cached key (inference).
        case cached(KVCache, layer: Int, position: Int, scores: UnsafeMutablePointer<Float>, scoreCapacity: Int)
        /// Whole rows of a batch, probabilities kept in `probs` for the backward (training).
        case sequences(SequenceAttention.Shape)
    }

    /// The gradients the backward works in (the layer's `TrainingBuffers.Gradient`s).
    struct Gradients {
        var act, gate, up, mlpNorm, attention, q, k, v, scores, attentionNorm: UnsafeMutablePointer<Float>
    }

    init(layer: StepWeights.Layer, index: Int, adapter: LoRAAdapter?, dropoutSeed: UInt64?, config: ModelConfig, rope: RotaryEmbedding) {
        func linear(_ target: LoRATarget) -> LoRALinear {
            LoRALinear(weight: layer.weight(target), pair: adapter?.pair(target, layer: index), scaling: adapter?.scaling ?? 0,
                       dropout: LoRADropout(rate: adapter?.dropout ?? 0, seed: dropoutSeed, layer: index, target: target))
        }
        (q, k, v, o, gate, up, down) = (linear(.q), linear(.k), linear(.v), linear(.o), linear(.gate), linear(.up), linear(.down))
        inputNorm = layer.inputNorm
        postAttentionNorm = layer.postAttentionNorm
        (qBias, kBias, vBias) = (layer.vector(.bias(.q)), layer.vector(.bias(.k)), layer.vector(.bias(.v)))
        (qNorm, kNorm) = (layer.vector(.headNorm(.q)), layer.vector(.headNorm(.k)))
        (attentionOutputNorm, mlpOutputNorm) = (layer.vector(.norm(.attentionOutput)), layer.vector(.norm(.mlpOutput)))
        activation = config.activation
        attentionScale = config.attentionScale ?? 1 / Float(config.headDim).squareRoot()
        localRope = config.usesLocalRope(layer: index)
        (heads, kvHeads, intermediate) = (layer.shape.heads, layer.shape.kvHeads, layer.shape.intermediate)
        hidden = config.hiddenSize
        eps = config.rmsNormEps
        self.rope = rope
        window = config.window(layer: index)
    }

    // MARK: Attention block

    func attentionForward(_ a: Activations, rows t: Int, attention: Attention, ropeTable: UnsafePointer<Float>,
                          workspace: LoRALinear.Workspace) {
        let d = rope.headDim
        RMSNorm.forward(a.input, weight: inputNorm, out: a.attentionNorm, rows: t, cols: hidden, eps: eps, inverse: a.attentionNormRMS)
        // Training keeps q and k as projected for the per-head norms' backward; inference normalises in place.
        let qOut = qNorm != nil ? a.qPreNorm ?? a.q : a.q, kOut = kNorm != nil ? a.kPreNorm ?? a.k : a.k
        if t == 1, Linear.readsInPlace(q.weight), Linear.readsInPlace(k.weight), Linear.readsInPlace(v.weight) {
            // Decode: one parallel region for the three products on the one input.
            Linear.oneRow(a.attentionNorm, (q.weight, qOut), (k.weight, kOut), (v.weight, a.v))
            q.addPair(a.attentionNorm, rows: 1, out: qOut, u: a.loraU[.q], workspace: workspace)
            k.addPair(a.attentionNorm, rows: 1, out: kOut, u: a.loraU[.k], workspace: workspace)
            v.addPair(a.attentionNorm, rows: 1, out: a.v, u: a.loraU[.v], workspace: workspace)
        } else {
            q.forward(a.attentionNorm, rows: t, out: qOut, u: a.loraU[.q], workspace: workspace)
            k.forward(a.attentionNorm, rows: t, out: kOut, u: a.loraU[.k], workspace: workspace)
            v.forward(a.attentionNorm, rows: t, out: a.v, u: a.loraU[.v], workspace: workspace)
        }
        if let qBias { Bias.forward(qOut, bias: qBias, rows: t, cols: heads * d) }
        if let kBias { Bias.forward(kOut, bias: kBias, rows: t, cols: kvHeads * d) }
        if let vBias { Bias.forward(a.v, bias: vBias, rows: t, cols: kvHeads * d) }
        if let qNorm { RMSNorm.forward(qOut, weight: qNorm, out: a.q, rows: t * heads, cols: d, eps: eps, inverse: a.qNormRMS) }
        if let kNorm { RMSNorm.forward(kOut, weight: kNorm, out: a.k, rows: t * kvHeads, cols: d, eps: eps, inverse: a.kNormRMS) }
        rope.apply(a.q, tokens: t, heads: heads, rowStride: heads * d, table: ropeTable)
        rope.apply(a.k, tokens: t, heads: kvHeads, rowStride: kvHeads * d, table: ropeTable)
        switch attention {
        case let .cached(cache, layer, position, scores, capacity):
            cache.store(layer: layer, k: a.k, v: a.v, tokens: t, position: position)
            CausalAttention.forward(q: a.q, out: a.attention, tokens: t, position: position, heads: heads, kvHeads: kvHeads,
                                    layer: layer, cache: cache, scores: scores, scoreCapacity: capacity, window: window,
                                    scale: attentionScale)
        case let .sequences(shape):
            SequenceAttention.forward(q: a.q, k: a.k, v: a.v, probs: a.probs!, out: a.attention, shape: shape)
        }
        if a.residual != a.input { a.residual.update(from: a.input, count: t * hidden) }
        guard let attentionOutputNorm, let out = a.attentionOutput else {
            o.forward(a.attention, rows: t, out: a.residual, accumulate: true, u: a.loraU[.o], workspace: workspace)
            return
        }
        // residual += rmsnorm(o(attention)), normed in the (free by now) norm buffer.
        o.forward(a.attention, rows: t, out: out, u: a.loraU[.o], workspace: workspace)
        RMSNorm.forward(out, weight: attentionOutputNorm, out: a.attentionNorm, rows: t, cols: hidden, eps: eps, inverse: a.attentionOutputRMS)
        Residual.add(a.attentionNorm, into: a.residual, count: t * hidden)
    }

    /// `dx` holds the gradient of the residual on entry and of the layer input on exit. Without
    /// `inputGradient` (the first layer, when neither the embedding nor this norm trains) the path
    /// back through the norm is skipped: dx then holds the residual's share only.
    func attentionBackward(_ a: Activations, dx: UnsafeMutablePointer<Float>, _ g: Gradients, shape: SequenceAttention.Shape,
                           ropeTable: UnsafePointer<Float>, gradients: GradientBuffers, inputGradient: Bool = true,
                           workspace: LoRALinear.Workspace) {
        let t = shape.rows * shape.seqLen, d = rope.headDim
        g.attention.update(repeating: 0, count: t * heads * d)
        // With an output norm, o's output gradient is the norm's input gradient (in g.attentionNorm, free until q/k/v's).
        let oGradient = outputNormBackward(attentionOutputNorm, dy: dx, x: a.attentionOutput, inverse: a.attentionOutputRMS,
                                           into: g.attentionNorm, rows: t, gradients: gradients)
        o.backward(dy: oGradient, x: a.attention, u: a.loraU[.o], dx: g.attention, rows: t, gradients: gradients, workspace: workspace)
        SequenceAttention.backward(dOut: g.attention, q: a.q, k: a.k, v: a.v, probs: a.probs!, dq: g.q, dk: g.k, dv: g.v,
                                   dScores: g.scores, shape: shape)
        rope.applyBackward(g.q, tokens: t, heads: heads, rowStride: heads * d, table: ropeTable)
        rope.applyBackward(g.k, tokens: t, heads: kvHeads, rowStride: kvHeads * d, table: ropeTable)
        // Through the per-head norms (g.q becomes the gradient of q as projected), then the biases'.
        if let qNorm {
            RMSNorm.backwardInPlace(g.q, x: a.qPreNorm!, weight: qNorm, inverse: a.qNormRMS!, weightGrad: gradients.gradient(forNorm: qNorm),
                                    rows: t * heads, cols: d)
        }
        if let kNorm {
            RMSNorm.backwardInPlace(g.k, x: a.kPreNorm!, weight: kNorm, inverse: a.kNormRMS!, weightGrad: gradients.gradient(forNorm: kNorm),
                                    rows: t * kvHeads, cols: d)
        }
        for (bias, dy, cols) in [(qBias, g.q, heads * d), (kBias, g.k, kvHeads * d), (vBias, g.v, kvHeads * d)] {
            if let bias, let gradient = gradients.gradient(forNorm: bias) { Bias.backward(dy: dy, gradient: gradient, rows: t, cols: cols) }
        }
        let normGradient = inputGradient ? g.attentionNorm : nil
        normGradient?.update(repeating: 0, count: t * hidden)
        if q.backwardReadsInput(gradients) || k.backwardReadsInput(gradients) || v.backwardReadsInput(gradients) {
            RMSNorm.remake(a.input, weight: inputNorm, inverse: a.attentionNormRMS!, out: a.attentionNorm, rows: t, cols: hidden)
        }
        q.backward(dy: g.q, x: a.attentionNorm, u: a.loraU[.q], dx: normGradient, rows: t, gradients: gradients, workspace: workspace)
        k.backward(dy: g.k, x: a.attentionNorm, u: a.loraU[.k], dx: normGradient, rows: t, gradients: gradients, workspace: workspace)
        v.backward(dy: g.v, x: a.attentionNorm, u: a.loraU[.v], dx: normGradient, rows: t, gradients: gradients, workspace: workspace)
        guard inputGradient else { return }
        RMSNorm.backward(dy: g.attentionNorm, x: a.input, weight: inputNorm, inverse: a.attentionNormRMS!, dx: dx,
                         weightGrad: gradients.gradient(forNorm: inputNorm), rows: t, cols: hidden)
    }

    // MARK: MLP block

    /// `dy` itself without an output norm; else the gradient of the norm's input, written into `into`.
    private func outputNormBackward(_ weight: UnsafeMutablePointer<Float>?, dy: UnsafeMutablePointer<Float>, x: UnsafeMutablePointer<Float>?,
                                    inverse: UnsafeMutablePointer<Float>?, into: UnsafeMutablePointer<Float>, rows t: Int,
                                    gradients: GradientBuffers) -> UnsafeMutablePointer<Float> {
        guard let weight else { return dy }
        into.update(repeating: 0, count: t * hidden)
        RMSNorm.backward(dy: dy, x: x!, weight: weight, inverse: inverse!, dx: into, weightGrad: gradients.gradient(forNorm: weight),
                         rows: t, cols: hidden)
        return into
    }

    private func gateForward(_ a: Activations, count: Int) {
        switch activation {
        case .silu: SwiGLU.forward(gate: a.gate, up: a.up, out: a.act, count: count)
        case .geluTanh: GeGLU.forward(gate: a.gate, up: a.up, out: a.act, count: count)
        }
    }

    /// `output` (may be the residual itself): residual + down(act). nil when recomputing for the
    /// backward: the output exists already, only down's x·Aᵀ (and, with an output norm, what the
    /// norm's backward reads) is needed again.
    func mlpForward(_ a: Activations, rows t: Int, output: UnsafeMutablePointer<Float>?, workspace: LoRALinear.Workspace) {
        RMSNorm.forward(a.residual, weight: postAttentionNorm, out: a.mlpNorm, rows: t, cols: hidden, eps: eps, inverse: a.mlpNormRMS)
        if t == 1, Linear.readsInPlace(gate.weight), Linear.readsInPlace(up.weight) {
            Linear.oneRow(a.mlpNorm, (gate.weight, a.gate), (up.weight, a.up))
            gate.addPair(a.mlpNorm, rows: 1, out: a.gate, u: a.loraU[.gate], workspace: workspace)
            up.addPair(a.mlpNorm, rows: 1, out: a.up, u: a.loraU[.up], workspace: workspace)
        } else {
            gate.forward(a.mlpNorm, rows: t, out: a.gate, u: a.loraU[.gate], workspace: workspace)
            up.forward(a.mlpNorm, rows: t, out: a.up, u: a.loraU[.up], workspace: workspace)
        }
        gateForward(a, count: t * intermediate)
        if let mlpOutputNorm, let out = a.mlpOutput {
            // output = residual + rmsnorm(down(act)), normed in the (free by now) norm buffer.
            down.forward(a.act, rows: t, out: out, u: a.loraU[.down], workspace: workspace)
            RMSNorm.forward(out, weight: mlpOutputNorm, out: a.mlpNorm, rows: t, cols: hidden, eps: eps, inverse: a.mlpOutputRMS)
            guard let output else { return }
            if output != a.residual { output.update(from: a.residual, count: t * hidden) }
            Residual.add(a.mlpNorm, into: output, count: t * hidden)
            return
        }
        guard let output else {
            if let u = a.loraU[.down] { down.project(a.act, rows: t, u: u, workspace: workspace) }
            return
        }
        if output != a.residual { output.update(from: a.residual, count: t * hidden) }
        down.forward(a.act, rows: t, out: output, accumulate: true, u: a.loraU[.down], workspace: workspace)
    }

    /// `dx` holds the gradient of the output on entry (it passes to the residual unchanged) and
    /// of the residual on exit.
    func mlpBackward(_ a: Activations, dx: UnsafeMutablePointer<Float>, _ g: Gradients, rows t: Int, gradients: GradientBuffers,
                     workspace: LoRALinear.Workspace) {
        g.act.update(repeating: 0, count: t * intermediate)
        if down.backwardReadsInput(gradients) { gateForward(a, count: t * intermediate) }
        // With an output norm, down's output gradient is the norm's input gradient (in g.mlpNorm, free until gate/up's).
        let downGradient = outputNormBackward(mlpOutputNorm, dy: dx, x: a.mlpOutput, inverse: a.mlpOutputRMS, into: g.mlpNorm,
                                              rows: t, gradients: gradients)
        down.backward(dy: downGradient, x: a.act, u: a.loraU[.down], dx: g.act, rows: t, gradients: gradients, workspace: workspace)
        switch activation {
        case .silu: SwiGLU.backward(dout: g.act, gate: a.gate, up: a.up, dgate: g.gate, dup: g.up, count: t * intermediate)
        case .geluTanh: GeGLU.backward(dout: g.act, gate: a.gate, up: a.up, dgate: g.gate, dup: g.up, count: t * intermediate)
        }
        g.mlpNorm.update(repeating: 0, count: t * hidden)
        if gate.backwardReadsInput(gradients) || up.backwardReadsInput(gradients) {
            RMSNorm.remake(a.residual, weight: postAttentionNorm, inverse: a.mlpNormRMS!, out: a.mlpNorm, rows: t, cols: hidden)
        }
        gate.backward(dy: g.gate, x: a.mlpNorm, u: a.loraU[.gate], dx: g.mlpNorm, rows: t, gradients: gradients, workspace: workspace)
        up.backward(dy: g.up, x: a.mlpNorm, u: a.loraU[.up], dx: g.mlpNorm, rows: t, gradients: gradients, workspace: workspace)
        RMSNorm.backward(dy: g.mlpNorm, x: a.residual, weight: postAttentionNorm, inverse: a.mlpNormRMS!, dx: dx,
                         weightGrad: gradients.gradient(forNorm: postAttentionNorm), rows: t, cols: hidden)
    }
}
