import Foundation
import MemoryPlanner

/// The weights of a decoder of any family (`ModelRegistry`): token embeddings, one
/// `DecoderLayer` per layer, the final RMSNorm and the output projection (the embedding matrix
/// itself when tied). Layers carry their own widths, so a structurally pruned model is the same
/// type. Which tensors a layer has is the family's `layout`.
public final class DecoderModel: @unchecked Sendable {
    public struct DecoderLayer: LayerLinears {
        public var shape: ModelShape.Layer
        /// Every 1-D tensor of the layer (norms, biases, per-head norms) by role, fp32.
        public var vectors: [TensorSpec.Role: [Float]]
        public var q, k, v, o: Weight
        public var gate, up, down: Weight

        public init(shape: ModelShape.Layer, vectors: [TensorSpec.Role: [Float]], q: Weight, k: Weight, v: Weight, o: Weight,
                    gate: Weight, up: Weight, down: Weight) {
            self.shape = shape
            self.vectors = vectors
            (self.q, self.k, self.v, self.o, self.gate, self.up, self.down) = (q, k, v, o, gate, up, down)
        }

        /// The RMSNorm before attention and the one before the MLP, which every family has.
        public var inputNorm: [Float] { vectors[.norm(.attentionInput)]! }
        public var postAttentionNorm: [Float] { vectors[.norm(.mlpInput)]! }

        /// The linears by their path in transformers' layer (`self_attn.q_proj`), for `layout`'s names.
        public var linears: [(name: String, weight: Weight)] {
            LoRATarget.layerTargets.map { (LoRATarget.modulePath($0), weight($0)) }
        }

        /// The same layer with each linear replaced by `transform`'s (the vectors kept).
        public func mapLinears(_ transform: (LoRATarget, Weight) throws -> Weight) rethrows -> DecoderLayer {
            DecoderLayer(shape: shape, vectors: vectors, q: try transform(.q, q), k: try transform(.k, k), v: try transform(.v, v),
                         o: try transform(.o, o), gate: try transform(.gate, gate), up: try transform(.up, up),
                         down: try transform(.down, down))
        }

        public mutating func setWeight(_ weight: Weight, for target: LoRATarget) {
            switch target {
            case .q: q = weight
            case .k: k = weight
            case .v: v = weight
            case .o: o = weight
            case .gate: gate = weight
            case .up: up = weight
            case .down: down = weight
            case .lmHead: preconditionFailure("lm_head is not a decoder-layer linear")
            }
        }

        /// The same layer with each vector replaced by `transform`'s.
        public func mapVectors(_ transform: (TensorSpec.Role, [Float]) throws -> [Float]) rethrows -> DecoderLayer {
            var copy = self
            for (role, values) in vectors { copy.vectors[role] = try transform(role, values) }
            return copy
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
            count += layer.vectors.values.reduce(0) { $0 + $1.count }
            count += layer.linears.reduce(0) { $0 + $1.weight.elementCount }
        }
        return count
    }

    /// Bytes the weights occupy in memory (norms and biases are always fp32).
    public var byteCount: Int {
        var bytes = embedding.byteCount + finalNorm.count * 4 + (config.tiedEmbeddings ? 0 : lmHead.byteCount)
        for layer in layers {
            bytes += layer.vectors.values.reduce(0) { $0 + $1.count } * 4
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
        var out: [(String, Weight)] = [(config.family.layout.globalSpec(.embedding)!.hf, embedding)]
        for (i, layer) in layers.enumerated() {
            for spec in config.family.layout.layer {
                if case .linear(let target) = spec.role { out.append((ModelLayout.hfName(spec, layer: i), layer.weight(target))) }
            }
        }
        if !config.tiedEmbeddings { out.append((config.family.layout.globalSpec(.outputHead)!.hf, lmHead)) }
        return out
    }

    /// Every 1-D tensor (norms, biases, per-head norms) under its Hugging Face name, with the
    /// values transformers' files hold (Gemma's norms as w, not 1 + w).
    public func namedNorms() -> [(name: String, values: [Float])] {
        let family = config.family
        var out: [(String, [Float])] = []
        for (i, layer) in layers.enumerated() {
            for spec in family.layout.layer where spec.isVector {
                out.append((ModelLayout.hfName(spec, layer: i), family.hfValues(spec.role, layer.vectors[spec.role]!)))
            }
        }
        out.append((family.layout.globalSpec(.finalNorm)!.hf, family.hfValues(.finalNorm, finalNorm)))
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
        config.tensors.reduce(0) { total, tensor in
            let name = ModelLayout.hfName(tensor.spec, layer: tensor.layer)
            if NF4Checkpoint.isQuantized(name, in: checkpoint) { return total + NF4Checkpoint.plannedBytes(name, in: checkpoint) }
            guard let info = checkpoint.info(name) else { return total }
            return total + info.elementCount * (tensor.spec.isVector ? 4 : (dtype ?? info.dtype).byteSize)
        }
    }

    /// Throws FormatError unless `checkpoint` holds every tensor `config` implies, of its shape
    /// (NF4-quantized ones are checked when read): from the headers alone, so a config whose widths
    /// the files do not have is refused before anything is charged or allocated for it.
    public static func checkTensorShapes(config: ModelConfig, checkpoint: CheckpointDirectory) throws {
        for (spec, layer, expected) in config.tensors {
            let name = ModelLayout.hfName(spec, layer: layer)
            if NF4Checkpoint.isQuantized(name, in: checkpoint) { continue }
            guard let info = checkpoint.info(name) else { throw FormatError(file: checkpoint.fileName(of: name), "missing tensor \(name)") }
            guard info.shape == expected else {
                throw FormatError(file: checkpoint.fileName(of: name), "tensor \(name) has shape \(info.shape), the config implies \(expected)")
            }
        }
    }

    /// A `loram_pruning.json` beside the weights is read and checked against `config` first.
    public static func load(config: ModelConfig, checkpoint: CheckpointDirectory, dtype: TensorDType?) throws -> DecoderModel {
        try checkTensorShapes(config: config, checkpoint: checkpoint)
        let pruning = try PruningManifest.load(directory: checkpoint.url, config: config)
        return try assemble(config: config, pruning: pruning, matrix: { spec, layer, rows, cols in
            try Weight.load(ModelLayout.hfName(spec, layer: layer), from: checkpoint, rows: rows, cols: cols, dtype: dtype)
        }, vector: { spec, layer, count in
            let values = try Weight.load(ModelLayout.hfName(spec, layer: layer), from: checkpoint, rows: 1, cols: count, dtype: .f32,
                                         isVector: true)
            return config.family.runtimeValues(spec.role, values.toArray())
        })
    }

    /// A model of `config` from its tensors: `matrix` reads a [rows, cols] weight, `vector` a 1-D
    /// tensor (fp32), each given the layout's entry and its layer (nil: global). The one walk of
    /// the layout every loader (safetensors, GGUF) shares.
    static func assemble(config: ModelConfig, pruning: PruningManifest? = nil,
                         matrix: (_ spec: TensorSpec, _ layer: Int?, _ rows: Int, _ cols: Int) throws -> Weight,
                         vector: (_ spec: TensorSpec, _ layer: Int?, _ count: Int) throws -> [Float]) throws -> DecoderModel {
        let layout = config.family.layout
        func read(_ spec: TensorSpec, _ layer: Int?, _ shape: [Int]) throws -> Weight { try matrix(spec, layer, shape[0], shape[1]) }
        let embeddingSpec = layout.globalSpec(.embedding)!
        let embedding = try read(embeddingSpec, nil, config.shape(of: embeddingSpec, layer: config.layers[0]))
        let layers = try config.layers.enumerated().map { i, shape in
            var linears: [LoRATarget: Weight] = [:]
            var vectors: [TensorSpec.Role: [Float]] = [:]
            for spec in layout.layer {
                let dims = config.shape(of: spec, layer: shape)
                if case .linear(let target) = spec.role { linears[target] = try read(spec, i, dims) } else { vectors[spec.role] = try vector(spec, i, dims[0]) }
            }
            return DecoderLayer(shape: shape, vectors: vectors, q: linears[.q]!, k: linears[.k]!, v: linears[.v]!, o: linears[.o]!,
                                gate: linears[.gate]!, up: linears[.up]!, down: linears[.down]!)
        }
        let finalNorm = try vector(layout.globalSpec(.finalNorm)!, nil, config.hiddenSize)
        let head = layout.globalSpec(.outputHead)!
        let lmHead = config.tiedEmbeddings ? nil : try read(head, nil, config.shape(of: head, layer: config.layers[0]))
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
