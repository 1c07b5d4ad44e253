extension StepProgramBuilder {
    /// One optimizer step: `gradAccum` micro-batches share these buffers one after another, so the
    /// plan of one micro-batch's forward and backward plus the optimizer is the step's peak.
    /// `optimizer: false` plans the backward alone (Taylor importance: gradients, no update);
    /// `trainableParameters` overrides how many parameters have gradients in full-parameter mode
    /// (default: all of them). Throws `SizeError` for a shape or workload past `SizeLimits`, or
    /// sizes whose products overflow.
    ///
    /// Every layer runs as two ops (attention block, MLP block) forward and two backward, each
    /// making its own buffers (`TrainingBuffers`) and dropping them the moment nothing later reads
    /// them, so the placement reuses memory between them. With checkpointing the forward drops a
    /// layer's set at once and the layer is recomputed from its kept input just before its backward.
    public static func trainingStep(_ shape: ModelShape, _ workload: Workload, optimizer: Bool = true,
                                    trainableParameters: Int? = nil) throws -> StepProgram {
        try shape.checkSizes()
        try workload.checkSizes()
        typealias Names = TrainingBuffers
        var program = StepProgram()
        let f = 4  // fp32 bytes
        let sizes = try TrainingBuffers(shape, microBatch: workload.microBatch, seqLen: workload.seqLen, lora: workload.lora,
                                        activations: workload.activationDType, checkpointing: workload.checkpointing)
        let t = sizes.t, c = sizes.c

        // Persistent: weights (an fp32 copy for full-parameter training), trainable state.
        let trainable: CheckedSize
        if let lora = workload.lora {
            try addWeights(&program, shape, base: workload.baseDType)
            trainable = CheckedSize(try shape.loraParameterCount(rank: lora.r, targets: lora.targets))
            try program.buffer("adapter", kind: .adapter, persistent: true) { try trainable * f }
        } else {
            try addWeights(&program, shape, base: .f32)
            trainable = CheckedSize(try trainableParameters ?? shape.parameterCount)
        }
        let gradients = try program.buffer("gradients", kind: .gradient, persistent: true) { try trainable * f }
        let moments = optimizer ? try program.buffer("optimizer.adamw", kind: .optimizer, persistent: true) { try 2 * trainable * f } : nil

        // Step-long workspaces: RoPE angles, the linear scratch, LoRA's dropout and x·Aᵀ gradient,
        // one layer's normed rows and silu(gate)·up.
        var stepLong = [try program.buffer(Names.rope, kind: .workspace) { try t * sizes.d * f },
                        try program.buffer(Names.scratch, kind: .workspace) { try Names.scratchFloats * CheckedSize(f) }]
        if shape.localRope { stepLong.append(try program.buffer(Names.ropeLocal, kind: .workspace) { try t * sizes.d * f }) }
        if sizes.lora {
            stepLong.append(try program.buffer(Names.loraGradient, kind: .workspace) { try t * sizes.r * f })
            stepLong.append(try program.buffer(Names.loraDropout, kind: .workspace) { try t * (try sizes.widestInput(shape)) * f })
        }
        stepLong.append(try program.buffer(Names.norm, kind: .workspace) { try t * c * f })
        stepLong.append(try program.buffer(Names.act, kind: .workspace) { try t * sizes.widestMLP(shape) * f })
        // bf16 activations: the fp32 slots every layer computes in and its backward widens into.
        for slot in sizes.slotsIn16Bits {
            stepLong.append(try program.buffer(Names.wide(slot), kind: .workspace) {
                try shape.layers.reduce(CheckedSize(0)) { max($0, try sizes.floats(slot, $1)) } * f
            })
        }
        var input = try program.buffer(Names.input(layer: 0), kind: .activation) { try t * c * f }
        program.op("embed", creates: stepLong + [input], task: .embed)

        /// A layer's slots, split by block, the residual apart (made by attention, read by the MLP).
        struct LayerSet { var attention: [Int]; var residual: Int; var mlp: [Int] }
        func makeSet(_ l: Int, transient: Bool) throws -> LayerSet {
            var attention: [Int] = [], mlp: [Int] = [], residual = -1
            for slot in sizes.slots {
                let index = try program.buffer(Names.name(layer: l, slot, transient: transient), kind: .activation) {
                    try sizes.bytes(slot, shape.layers[l])
                }
                if slot == .residual { residual = index } else if slot.inMLP { mlp.append(index) } else { attention.append(index) }
            }
            return LayerSet(attention: attention, residual: residual, mlp: mlp)
        }
        func forward(_ l: Int, _ set: LayerSet, input: Int, output: Int?, recompute: Bool, drop: Bool) {
            let suffix = recompute ? ".recompute" : ""
            program.op("layers.\(l).attention\(suffix)", creates: set.attention + [set.residual], reads: [input] + stepLong,
                       releases: drop ? set.attention : [], task: .attentionForward(layer: l, recompute: recompute))
            program.op("layers.\(l).mlp\(suffix)", creates: set.mlp + (output.map { [$0] } ?? []), reads: [set.residual] + stepLong,
                       releases: drop ? set.mlp + [set.residual] : [], task: .mlpForward(layer: l, recompute: recompute))
        }

        var inputs: [Int] = []
        var kept: [LayerSet?] = []
        for l in shape.layers.indices {
            let next = try program.buffer(l + 1 < shape.layers.count ? Names.input(layer: l + 1) : Names.finalInput, kind: .activation) {
                try t * c * f
            }
            let set = try makeSet(l, transient: workload.checkpointing)
            forward(l, set, input: input, output: next, recompute: false, drop: workload.checkpointing)
            inputs.append(input)
            kept.append(workload.checkpointing ? nil : set)
            input = next
        }

        // Loss: final norm, lm_head and cross-entropy in blocks of rows; the residual stream's
        // gradient starts here and runs down to the embedding.
        var loss = [try program.buffer(Names.finalNormRMS, kind: .workspace) { try t * f },
                    try program.buffer(Names.finalNorm, kind: .workspace) { try t * c * f },
                    try program.buffer(Names.logits, kind: .workspace) { try CheckedSize(Names.lossRows(tokens: t.value)) * sizes.v * f }]
        if sizes.lmHeadTargeted { loss.append(try program.buffer(Names.lmHeadU, kind: .workspace) { try t * sizes.r * f }) }
        loss.append(try program.buffer(Names.finalNormGradient, kind: .workspace) { try t * c * f })
        let hidden = try program.buffer(Names.hiddenGradient, kind: .workspace) { try t * c * f }
        program.op("loss", creates: loss + [hidden], reads: [input, gradients] + stepLong, releases: loss + [input], task: .loss)

        for l in stride(from: shape.layers.count - 1, through: 0, by: -1) {
            let set: LayerSet
            if let saved = kept[l] {
                set = saved
            } else {
                set = try makeSet(l, transient: false)
                forward(l, set, input: inputs[l], output: nil, recompute: true, drop: false)
            }
            var mlpGradients: [Int] = [], attentionGradients: [Int] = []
            for gradient in TrainingBuffers.Gradient.allCases {
                let index = try program.buffer(Names.name(layer: l, gradient), kind: .workspace) { try sizes.floats(gradient, shape.layers[l]) * f }
                if gradient.inMLP { mlpGradients.append(index) } else { attentionGradients.append(index) }
            }
            program.op("layers.\(l).mlp.backward", creates: mlpGradients, reads: set.mlp + [set.residual, hidden, gradients] + stepLong,
                       releases: set.mlp + [set.residual] + mlpGradients, task: .mlpBackward(layer: l))
            program.op("layers.\(l).attention.backward", creates: attentionGradients,
                       reads: set.attention + [inputs[l], hidden, gradients] + stepLong,
                       releases: set.attention + [inputs[l]] + attentionGradients, task: .attentionBackward(layer: l))
        }
        program.op("embed.backward", reads: [hidden, gradients], releases: [hidden] + stepLong, task: .embedBackward)
        if let moments { program.op("optimizer", reads: [gradients, moments], task: .optimizer) }
        return program
    }
}
