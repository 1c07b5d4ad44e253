import Foundation
import MemoryPlanner

/// What a pruned model remembers of its original: the method and ratio it was pruned with, the
/// original per-layer widths, and for structurally pruned layers which heads and neurons were
/// kept. Recovery (`LoRARecovery`) needs exactly this to put an adapter trained on the carrier
/// back onto the original. Saved as `loram_pruning.json` beside config.json; a model loaded with
/// one checks it against config.json first (`validate`).
///
/// Indices are into the original layer, sorted ascending: `qHeads` and `kvHeads` are head indices
/// (rows [h·D, (h+1)·D) of q_proj / k_proj), `neurons` are MLP intermediate indices. Layers the
/// pruning did not touch, and every layer of a semi-structured or unstructured pruning (its zeros
/// are in the weights), have no entry (null).
public struct PruningManifest: Codable, Equatable, Sendable {
    public static let fileName = "loram_pruning.json"
    static let formatName = "loramd-pruning"

    public var format = PruningManifest.formatName
    public var version = 1
    public var method: PruningMethod
    /// Structured: the ratio. semi: the sparsity 0.5. magnitude: the sparsity.
    public var ratio: Double
    /// Structured: the pruned layer window [start, end).
    public var layers: [Int]?
    /// random: the seed the scores were drawn from.
    public var seed: UInt64?
    /// semi: "2:4".
    public var pattern: String?
    /// The original model's widths, one per layer.
    public var original: [LayerWidths]
    /// Per layer, the kept heads and neurons; nil where the layer keeps its original shape.
    public var kept: [KeptIndices?]
    /// Full-parameter training the carrier has had since pruning (LoRAM's alignment); nil: none.
    public var alignment: Alignment?
    /// A tied original whose carrier was untied for alignment (its input embedding trained, its
    /// output head kept as the original's): recovery targets the tied original.
    public var originalTiedEmbeddings: Bool?

    public struct Alignment: Codable, Equatable, Sendable {
        public var steps: Int
        public var tokens: Int
        public init(steps: Int, tokens: Int) {
            self.steps = steps
            self.tokens = tokens
        }
    }

    public struct LayerWidths: Codable, Equatable, Sendable {
        public var heads: Int
        public var kvHeads: Int
        public var intermediate: Int

        public init(_ shape: ModelShape.Layer) {
            heads = shape.heads
            kvHeads = shape.kvHeads
            intermediate = shape.intermediate
        }

        public var shape: ModelShape.Layer {
            ModelShape.Layer(heads: heads, kvHeads: kvHeads, intermediate: intermediate)
        }
    }

    public struct KeptIndices: Codable, Equatable, Sendable {
        public var qHeads: [Int]
        public var kvHeads: [Int]
        public var neurons: [Int]

        public init(qHeads: [Int], kvHeads: [Int], neurons: [Int]) {
            self.qHeads = qHeads
            self.kvHeads = kvHeads
            self.neurons = neurons
        }
    }

    public init(method: PruningMethod, ratio: Double, layers: Range<Int>? = nil, seed: UInt64? = nil, pattern: String? = nil,
                original: [ModelShape.Layer], kept: [KeptIndices?]) {
        self.method = method
        self.ratio = ratio
        self.layers = layers.map { [$0.lowerBound, $0.upperBound] }
        self.seed = seed
        self.pattern = pattern
        self.original = original.map(LayerWidths.init)
        self.kept = kept
    }

    /// The original model's config: the pruned one with the original widths back.
    public func originalConfig(of pruned: ModelConfig) -> ModelConfig {
        var config = pruned
        config.layers = original.map(\.shape)
        if let tied = originalTiedEmbeddings { config.tiedEmbeddings = tied }
        return config
    }

    // MARK: Checking

    /// Throws FormatError unless the manifest describes `config` (the pruned model's): one entry
    /// per layer; kept counts equal the config's widths; indices in range, sorted, unique; q heads
    /// exactly the heads their kept kv heads serve (whole GQA groups go together); untouched
    /// layers as wide as the original.
    public func validate(against config: ModelConfig) throws {
        func fail(_ problem: String) -> FormatError { FormatError(file: Self.fileName, problem) }
        guard format == Self.formatName, version == 1 else { throw fail("not a loramd pruning manifest of version 1") }
        guard ratio.isFinite, ratio >= 0, ratio < 1 else { throw fail("ratio \(ratio) is outside [0, 1)") }
        guard original.count == config.layerCount, kept.count == config.layerCount else {
            throw fail("describes \(original.count) layers (\(kept.count) kept entries); config.json has \(config.layerCount)")
        }
        if let layers {
            guard layers.count == 2, layers[0] >= 0, layers[0] <= layers[1], layers[1] <= config.layerCount else {
                throw fail("layers \(layers) is not a window [start, end) of \(config.layerCount) layers")
            }
        }
        for (i, widths) in original.enumerated() {
            guard widths.heads > 0, widths.kvHeads > 0, widths.intermediate > 0, widths.heads % widths.kvHeads == 0 else {
                throw fail("layer \(i): original widths \(widths) are not a decoder layer's")
            }
        }
        // The original widths within SizeLimits, before anything is sized by them (the GQA groups
        // below, recovery's adapters of the original's shapes).
        do { try originalConfig(of: config).modelShape.checkSizes() } catch let error as SizeError {
            throw fail("original widths: \(error)")
        }
        for (i, (widths, entry)) in zip(original, kept).enumerated() {
            let actual = config.layers[i]
            guard let entry else {
                guard actual == widths.shape else {
                    throw fail("layer \(i) has no kept indices but config.json gives it \(actual.heads) heads, \(actual.kvHeads) kv heads, \(actual.intermediate) neurons, not the original \(widths.heads), \(widths.kvHeads), \(widths.intermediate)")
                }
                continue
            }
            guard method.isStructured else { throw fail("layer \(i) has kept indices, but \(method.rawValue) pruning keeps shapes") }
            try Self.checkIndices(entry.qHeads, count: actual.heads, limit: widths.heads, what: "qHeads", layer: i)
            try Self.checkIndices(entry.kvHeads, count: actual.kvHeads, limit: widths.kvHeads, what: "kvHeads", layer: i)
            try Self.checkIndices(entry.neurons, count: actual.intermediate, limit: widths.intermediate, what: "neurons", layer: i)
            let group = widths.heads / widths.kvHeads
            // Counts first: the list below is as long as the file's own qHeads list only then.
            guard entry.qHeads.count == entry.kvHeads.count * group, entry.qHeads == entry.kvHeads.flatMap({ kv in (kv * group)..<(kv * group + group) }) else {
                throw fail("layer \(i): qHeads \(entry.qHeads) are not the heads kv heads \(entry.kvHeads) serve (\(group) per kv head)")
            }
        }
    }

    private static func checkIndices(_ indices: [Int], count: Int, limit: Int, what: String, layer: Int) throws {
        func fail(_ problem: String) -> FormatError { FormatError(file: fileName, "layer \(layer): \(what) \(problem)") }
        guard indices.count == count else { throw fail("has \(indices.count) entries; config.json says \(count)") }
        guard let first = indices.first, first >= 0, let last = indices.last, last < limit else {
            throw fail("must lie in 0..<\(limit)")
        }
        guard zip(indices, indices.dropFirst()).allSatisfy({ $0 < $1 }) else { throw fail("must be sorted ascending without repeats") }
    }

    // MARK: Files

    /// The manifest in `directory`, checked against `config`; nil when there is none.
    public static func load(directory: URL, config: ModelConfig) throws -> PruningManifest? {
        let url = directory.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let data = try RegularFile.contents(url)
        let manifest: PruningManifest
        do {
            manifest = try JSONDecoder().decode(PruningManifest.self, from: data)
        } catch {
            throw FormatError(file: fileName, "not a valid pruning manifest: \(Self.describe(error))")
        }
        try manifest.validate(against: config)
        return manifest
    }

    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// A decoding error in words: which key, what was wrong.
    private static func describe(_ error: Error) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        }
        switch error as? DecodingError {
        case .keyNotFound(let key, let context)?: return "missing \(path(context)).\(key.stringValue)"
        case .typeMismatch(_, let context)?, .valueNotFound(_, let context)?:
            return "\(path(context)): \(context.debugDescription)"
        case .dataCorrupted(let context)?: return "\(path(context)) \(context.debugDescription)"
        default: return "\(error)"
        }
    }
}
