import Foundation
import MemoryPlanner

/// A LoRA adapter as a GGUF file that llama.cpp loads beside its base model (`--lora`), laid out as
/// llama.cpp's convert_lora_to_gguf.py writes it:
/// - metadata `general.architecture` the base's (`llama`, `qwen2`, ...), `general.type` adapter, `adapter.type` lora,
///   `adapter.lora.alpha` (llama.cpp scales by alpha / r, r read off lora_a);
/// - per adapted linear `blk.N.<name>.weight.lora_a` with GGUF dimensions [in, r] (PEFT's A [r, in])
///   and `.lora_b` [r, out] (PEFT's B [out, r]), F32;
/// - tensor names from the family's layout; B's rows of q_proj and k_proj in llama.cpp's rotary
///   order where its converter permutes them (LLaMA), so the adapter matches a base GGUF made by
///   that converter (and `DecoderModel.saveGGUF`).
public enum GGUFAdapterFile {
    /// The name used when the target is a folder.
    public static let defaultFileName = "adapter.gguf"

    public static func save(_ adapter: LoRAAdapter, config: ModelConfig, to url: URL, name: String = "loramd adapter", rule: OutputRule = .ggufFile) throws {
        if adapter.lmHead != nil && config.tiedEmbeddings {
            throw FormatError(file: url.lastPathComponent, "an adapter on lm_head of a model with tied embeddings has no tensor to attach to in llama.cpp (its base GGUF has no output.weight)")
        }
        var writer = GGUFWriter()
        let family = config.family
        writer.set("general.architecture", .string(family.ggufArchitecture))
        writer.set("general.type", .string("adapter"))
        writer.set("general.name", .string(name))
        writer.set("adapter.type", .string("lora"))
        writer.set("adapter.lora.alpha", .float32(Float(adapter.alpha)))

        func add(_ base: String, _ pair: LoRAPair, permuteHeadDim: Int?) throws {
            let a = pair.a.toArray()
            var b = pair.b.toArray()
            if let headDim = permuteHeadDim {
                b = GGUFRotaryOrder.permutedRows(b, rows: pair.b.rows, cols: pair.b.cols, headDim: headDim, toGGUF: true)
            }
            try writer.addTensor(base + ".lora_a", dimensions: [pair.a.cols, pair.a.rows], values: a, as: .f32)
            try writer.addTensor(base + ".lora_b", dimensions: [pair.b.cols, pair.b.rows], values: b, as: .f32)
        }
        for (i, pairs) in adapter.layers.enumerated() {
            for target in LoRATarget.layerTargets {
                guard let pair = pairs[target] else { continue }
                try add(ModelLayout.ggufName(family.layout.layerSpec(.linear(target))!, layer: i), pair,
                        permuteHeadDim: family.ggufRotaryHeadDim(.linear(target), headDim: config.headDim))
            }
        }
        if let lmHead = adapter.lmHead { try add(family.layout.globalSpec(.outputHead)!.gguf, lmHead, permuteHeadDim: nil) }
        try writer.write(to: url, rule: rule)
    }

    /// What a GGUF LoRA file declares, read from its header: rank (lora_a's), alpha, the targets
    /// it adapts. Enough to charge the adapter before reading it.
    public struct Header {
        public let rank: Int
        public let alpha: Double
        public let targets: Set<LoRATarget>
        /// (layer or nil for lm_head, target) → the two tensors.
        let tensors: [(layer: Int?, target: LoRATarget, a: GGUFFile.TensorInfo, b: GGUFFile.TensorInfo)]
    }

    /// The header of an adapter for a model of `family` with `layerCount` layers.
    public static func header(_ file: GGUFFile, layerCount: Int, family: ModelFamily) throws -> Header {
        let name = file.fileName
        let keys = GGUFMetadataReader(metadata: file.metadata, file: name)
        guard try keys.optionalString("general.type") == "adapter", try keys.optionalString("adapter.type") == "lora" else {
            throw FormatError(file: name, "not a LoRA adapter (general.type must be adapter and adapter.type lora)")
        }
        let architecture = try keys.string("general.architecture")
        guard architecture == family.ggufArchitecture else {
            throw FormatError(file: name, "general.architecture is '\(architecture)'; the model is '\(family.ggufArchitecture)'")
        }
        guard let alpha = try keys.optionalPositiveDouble("adapter.lora.alpha") else {
            throw FormatError(file: name, "missing metadata key adapter.lora.alpha")
        }
        // "attn_q" → q: the layout's GGUF names of the linears, without `.weight`.
        let byGGUF = Dictionary(uniqueKeysWithValues: family.layout.layer.compactMap { spec -> (String, LoRATarget)? in
            guard case .linear(let target) = spec.role else { return nil }
            return (String(spec.gguf.dropLast(".weight".count)), target)
        })
        var found: [(Int?, LoRATarget, GGUFFile.TensorInfo, GGUFFile.TensorInfo)] = []
        var rank: Int?
        for tensor in file.tensorNames where tensor.hasSuffix(".lora_a") {
            let base = String(tensor.dropLast(".lora_a".count))
            let location: (Int?, LoRATarget)
            let parts = base.split(separator: ".")
            if base == family.layout.globalSpec(.outputHead)!.gguf {
                location = (nil, .lmHead)
            } else if parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]), layer >= 0, layer < layerCount, parts[3] == "weight",
                      let target = byGGUF[String(parts[2])] {
                location = (layer, target)
            } else {
                throw FormatError(file: name, "tensor \(tensor) is not a LoRA factor of a \(family.name) linear with \(layerCount) layers")
            }
            guard let a = file.tensors[tensor], let b = file.tensors[base + ".lora_b"] else {
                throw FormatError(file: name, "tensor \(tensor) has no \(base).lora_b")
            }
            guard a.dimensions.count == 2, b.dimensions.count == 2, a.dimensions[1] == b.dimensions[0] else {
                throw FormatError(file: name, "\(base): lora_a \(a.dimensions) and lora_b \(b.dimensions) do not share a rank (GGUF dimensions [in, r] and [r, out])")
            }
            guard rank == nil || rank == a.dimensions[1] else {
                throw FormatError(file: name, "\(base) has rank \(a.dimensions[1]), other tensors \(rank!); loramd needs one rank")
            }
            rank = a.dimensions[1]
            found.append((location.0, location.1, a, b))
        }
        for tensor in file.tensorNames where !tensor.hasSuffix(".lora_a") {
            guard tensor.hasSuffix(".lora_b"), file.tensors[String(tensor.dropLast(".lora_b".count)) + ".lora_a"] != nil else {
                throw FormatError(file: name, "tensor \(tensor) is not a LoRA factor (or has no lora_a)")
            }
        }
        guard let rank, rank > 0 else { throw FormatError(file: name, "holds no LoRA tensors") }
        let targets = Set(found.map(\.1))
        // loramd's adapters cover every layer for each target, as PEFT's target_modules do.
        for target in targets where target != .lmHead {
            let layers = found.filter { $0.1 == target }.count
            guard layers == layerCount else {
                throw FormatError(file: name, "adapts \(target.rawValue) in \(layers) of \(layerCount) layers; loramd adapters cover every layer of a target")
            }
        }
        return Header(rank: rank, alpha: alpha, targets: targets, tensors: found.map { (layer: $0.0, target: $0.1, a: $0.2, b: $0.3) })
    }

    /// Reads a GGUF LoRA adapter for `model` (B's q/k rows back from llama.cpp's rotary order).
    /// A factor whose model-side size differs from the model's is AdapterShapeMismatch.
    public static func load(_ file: GGUFFile, model: DecoderModel) throws -> LoRAAdapter {
        let header = try header(file, layerCount: model.config.layerCount, family: model.config.family)
        let adapter = LoRAAdapter(config: model.config, rank: header.rank, alpha: header.alpha, targets: header.targets)
        for entry in header.tensors {
            let pair = adapter.pair(entry.target, layer: entry.layer ?? 0)!
            for (info, weight) in [(entry.a, pair.a), (entry.b, pair.b)] {
                guard info.dimensions == [weight.cols, weight.rows] else {
                    throw AdapterShapeMismatch(tensor: info.name, expected: [weight.cols, weight.rows], found: info.dimensions)
                }
                guard info.type.isDequantizable else { throw FormatError(file: file.fileName, "tensor \(info.name) has type \(info.type.name), which loramd cannot read") }
                try file.dequantize(info, elements: 0..<info.elementCount, into: weight.float32!)
            }
            if let headDim = model.config.family.ggufRotaryHeadDim(.linear(entry.target), headDim: model.config.headDim) {
                let b = GGUFRotaryOrder.permutedRows(pair.b.toArray(), rows: pair.b.rows, cols: pair.b.cols, headDim: headDim, toGGUF: false)
                b.withUnsafeBufferPointer { pair.b.assign($0.baseAddress!) }
            }
        }
        return adapter
    }
}
