import Foundation
import MemoryPlanner

/// The weights of a LLaMA-family decoder: token embeddings, one `DecoderLayer` per layer, the
/// final RMSNorm and the output projection (the embedding matrix itself when tied). Layers carry
/// their own widths, so a structurally pruned model is the same type.
public final class DecoderModel: @unchecked Sendable {
    public struct DecoderLayer: LayerLinears {
        public var shape: ModelShape.Layer
        public var inputNorm: [Float]
        public var postAttentionNorm: [Float]
        public var q, k, v, o: Weight
        public var gate, up, down: Weight

        public var linears: [(name: String, weight: Weight)] {
            [("self_attn.q_proj", q), ("self_attn.k_proj", k), ("self_attn.v_proj", v), ("self_attn.o_proj", o),
             ("mlp.gate_proj", gate), ("mlp.up_proj", up), ("mlp.down_proj", down)]
        }
    }

    public let config: ModelConfig
    public let embedding: Weight
    public let layers: [DecoderLayer]
    public let finalNorm: [Float]
    /// The output projection [vocab, hidden]; the same object as `embedding` when tied.
    public let lmHead: Weight
    /// How this model was pruned from its original (nil for an original), saved beside
    /// config.json as `loram_pruning.json`.
    public let pruning: PruningManifest?

    public init(config: ModelConfig, embedding: Weight, layers: [DecoderLayer], finalNorm: [Float], lmHead: Weight?,
                pruning: PruningManifest? = nil) {
        self.config = config
        self.pruning = pruning
        self.embedding = embedding
        self.layers = layers
        self.finalNorm = finalNorm
        self.lmHead = lmHead ?? embedding
    }

    public var parameterCount: Int {
        var count = embedding.elementCount + finalNorm.count + (config.tiedEmbeddings ? 0 : lmHead.elementCount)
        for layer in layers {
            count += layer.inputNorm.count + layer.postAttentionNorm.count
            count += layer.linears.reduce(0) { $0 + $1.weight.elementCount }
        }
        return count
    }

    /// Bytes the weights occupy in memory (norms are always fp32).
    public var byteCount: Int {
        var bytes = embedding.byteCount + finalNorm.count * 4 + (config.tiedEmbeddings ? 0 : lmHead.byteCount)
        for layer in layers {
            bytes += (layer.inputNorm.count + layer.postAttentionNorm.count) * 4
            bytes += layer.linears.reduce(0) { $0 + $1.weight.byteCount }
        }
        return bytes
    }

    /// How the planner sees this model's weights: fp32 only when every weight is fp32 in place (then
    /// no weight needs widening); otherwise the decoder linears' storage.
    public var baseDType: Workload.BaseDType {
        if isQuantized { return .nf4 }
        if namedWeights().allSatisfy({ $0.weight.float32 != nil }) { return .f32 }
        switch layers.first?.q.dtype ?? embedding.dtype {
        case .bf16: return .bf16
        case .f16: return .f16
        default: return .bf16
        }
    }

    /// Every weight under its Hugging Face name, in the order transformers saves them.
    public func namedWeights() -> [(name: String, weight: Weight)] {
        var out: [(String, Weight)] = [("model.embed_tokens.weight", embedding)]
        for (i, layer) in layers.enumerated() {
            for (name, weight) in layer.linears { out.append(("model.layers.\(i).\(name).weight", weight)) }
        }
        if !config.tiedEmbeddings { out.append(("lm_head.weight", lmHead)) }
        return out
    }

    public func namedNorms() -> [(name: String, values: [Float])] {
        var out: [(String, [Float])] = []
        for (i, layer) in layers.enumerated() {
            out.append(("model.layers.\(i).input_layernorm.weight", layer.inputNorm))
            out.append(("model.layers.\(i).post_attention_layernorm.weight", layer.postAttentionNorm))
        }
        out.append(("model.norm.weight", finalNorm))
        return out
    }

    /// Loads config.json and the safetensors weights of `directory`. `dtype` is the storage type in
    /// memory (nil: as stored in the files). Nothing is kept if any tensor is missing or misshapen.
    public static func load(directory: URL, dtype: TensorDType? = nil) throws -> DecoderModel {
        let config = try ModelConfig(directory: directory)
        return try load(config: config, checkpoint: try CheckpointDirectory(url: directory), dtype: dtype)
    }

    /// Bytes the weights of `checkpoint` will occupy once loaded as `dtype` (nil: as stored),
    /// from the headers alone: what the memory budget is charged before anything is read.
    public static func plannedBytes(config: ModelConfig, checkpoint: CheckpointDirectory, dtype: TensorDType?) -> Int {
        var names = ["model.embed_tokens.weight", "model.norm.weight"]
        if !config.tiedEmbeddings { names.append("lm_head.weight") }
        for i in 0..<config.layerCount {
            names += ["input_layernorm", "post_attention_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                      "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"].map { "model.layers.\(i).\($0).weight" }
        }
        return names.reduce(0) { total, name in
            if NF4Checkpoint.isQuantized(name, in: checkpoint) { return total + NF4Checkpoint.plannedBytes(name, in: checkpoint) }
            guard let info = checkpoint.info(name) else { return total }
            let isNorm = name.hasSuffix("norm.weight")
            let size = isNorm ? 4 : (dtype ?? info.dtype).byteSize
            return total + info.elementCount * size
        }
    }

    /// Throws FormatError unless `checkpoint` holds every tensor `config` implies, of its shape
    /// (NF4-quantized ones are checked when read): from the headers alone, so a config whose widths
    /// the files do not have is refused before anything is charged or allocated for it.
    public static func checkTensorShapes(config: ModelConfig, checkpoint: CheckpointDirectory) throws {
        let c = config.hiddenSize, d = config.headDim
        func require(_ name: String, _ expected: [Int]) throws {
            if NF4Checkpoint.isQuantized(name, in: checkpoint) { return }
            guard let info = checkpoint.info(name) else { throw FormatError(file: checkpoint.fileName(of: name), "missing tensor \(name)") }
            guard info.shape == expected else {
                throw FormatError(file: checkpoint.fileName(of: name), "tensor \(name) has shape \(info.shape), the config implies \(expected)")
            }
        }
        try require("model.embed_tokens.weight", [config.vocabSize, c])
        for (i, shape) in config.layers.enumerated() {
            let p = "model.layers.\(i).", q = shape.heads * d, kv = shape.kvHeads * d, inter = shape.intermediate
            for (name, expected) in [("input_layernorm", [c]), ("post_attention_layernorm", [c]), ("self_attn.q_proj", [q, c]),
                                     ("self_attn.k_proj", [kv, c]), ("self_attn.v_proj", [kv, c]), ("self_attn.o_proj", [c, q]),
                                     ("mlp.gate_proj", [inter, c]), ("mlp.up_proj", [inter, c]), ("mlp.down_proj", [c, inter])] {
                try require(p + name + ".weight", expected)
            }
        }
        try require("model.norm.weight", [c])
        if !config.tiedEmbeddings { try require("lm_head.weight", [config.vocabSize, c]) }
    }

    /// A `loram_pruning.json` beside the weights is read and checked against `config` first.
    public static func load(config: ModelConfig, checkpoint: CheckpointDirectory, dtype: TensorDType?) throws -> DecoderModel {
        try checkTensorShapes(config: config, checkpoint: checkpoint)
        let pruning = try PruningManifest.load(directory: checkpoint.url, config: config)
        let c = config.hiddenSize, d = config.headDim
        func weight(_ name: String, _ rows: Int, _ cols: Int) throws -> Weight {
            try Weight.load(name, from: checkpoint, rows: rows, cols: cols, dtype: dtype)
        }
        func norm(_ name: String) throws -> [Float] {
            let w = try Weight.load(name, from: checkpoint, rows: 1, cols: c, dtype: .f32, isVector: true)
            return w.toArray()
        }
        let embedding = try weight("model.embed_tokens.weight", config.vocabSize, c)
        var layers: [DecoderLayer] = []
        for (i, shape) in config.layers.enumerated() {
            let p = "model.layers.\(i)."
            let h = shape.heads, kv = shape.kvHeads, inter = shape.intermediate
            layers.append(DecoderLayer(
                shape: shape,
                inputNorm: try norm(p + "input_layernorm.weight"),
                postAttentionNorm: try norm(p + "post_attention_layernorm.weight"),
                q: try weight(p + "self_attn.q_proj.weight", h * d, c),
                k: try weight(p + "self_attn.k_proj.weight", kv * d, c),
                v: try weight(p + "self_attn.v_proj.weight", kv * d, c),
                o: try weight(p + "self_attn.o_proj.weight", c, h * d),
                gate: try weight(p + "mlp.gate_proj.weight", inter, c),
                up: try weight(p + "mlp.up_proj.weight", inter, c),
                down: try weight(p + "mlp.down_proj.weight", c, inter)))
        }
        let finalNorm = try norm("model.norm.weight")
        let lmHead = config.tiedEmbeddings ? nil : try weight("lm_head.weight", config.vocabSize, c)
        return DecoderModel(config: config, embedding: embedding, layers: layers, finalNorm: finalNorm, lmHead: lmHead, pruning: pruning)
    }

    /// Writes config.json and model.safetensors (weights as `dtype`, norms fp32 as transformers does
    /// for fp32 models, or in `dtype` too so the file stays single-typed like HF's bf16 checkpoints),
    /// and for a pruned model loram_pruning.json (an original removes a stale one, which would
    /// otherwise be read back with it).
    public func save(to directory: URL, dtype: TensorDType? = nil) throws {
        try DurableFileSystem.makeDirectories(directory)
        var config = self.config
        let storeAs = dtype ?? embedding.dtype
        config.declaredDType = ["F32": "float32", "BF16": "bfloat16", "F16": "float16"][storeAs.rawValue]
        var entries: [SafetensorsWriter.Entry] = []
        for (name, weight) in namedWeights() {
            if weight.nf4 != nil {
                entries += NF4Checkpoint.entries(name, weight, dtype: config.declaredDType ?? "float32")
                continue
            }
            entries.append(SafetensorsWriter.Entry(name: name, dtype: storeAs, shape: [weight.rows, weight.cols]) { buffer in
                let values = weight.toArray()
                values.withUnsafeBufferPointer { DTypeConversion.fromFloat32($0.baseAddress!, count: values.count, to: storeAs, into: buffer.baseAddress!) }
            })
        }
        for (name, values) in namedNorms() {
            entries.append(.floats(name, values, shape: [values.count], as: storeAs))
        }
        entries.sort { $0.name < $1.name }
        try SafetensorsWriter().write(entries, to: directory.appendingPathComponent(CheckpointDirectory.singleFileName))
        var json = config.jsonObject()
        if let nf4 = layers.lazy.flatMap({ $0.linears }).compactMap({ $0.weight.nf4 }).first {
            json["quantization_config"] = NF4Checkpoint.quantizationConfig(doubleQuant: nf4.isDoubleQuantized,
                                                                            computeDType: config.declaredDType ?? "float32")
        }
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try Self.writeAtomically(data, to: directory.appendingPathComponent(ModelConfig.fileName))
        let manifestURL = directory.appendingPathComponent(PruningManifest.fileName)
        if let pruning {
            try Self.writeAtomically(try pruning.jsonData(), to: manifestURL)
        } else if unlink(manifestURL.path) != 0 && errno != ENOENT {
            throw FileWriteError.last("remove", manifestURL.path)
        }
    }

    /// Copies a file next to its destination under a temporary name, then renames it into place.
    public static func copyAtomically(_ source: URL, to destination: URL) throws {
        guard let data = FileManager.default.contents(atPath: source.path) else {
            throw FormatError(file: source.lastPathComponent, "cannot read \(source.path)")
        }
        try writeAtomically(data, to: destination)
    }

    static func writeAtomically(_ data: Data, to url: URL) throws {
        try AtomicFile.write(data, to: url)
    }
}
