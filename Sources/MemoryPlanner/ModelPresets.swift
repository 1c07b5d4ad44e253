import Foundation

/// The LLaMA shapes the LoRAM paper counts with (its §3.2a table: head_dim 128, untied embeddings),
/// so a plan or a reduction ratio can be computed from a name alone, before any file exists.
extension ModelShape {
    public static let llama2_7B = ModelShape(hidden: 4096, intermediate: 11008, layerCount: 32, heads: 32, kvHeads: 32, vocab: 32000)
    public static let llama2_13B = ModelShape(hidden: 5120, intermediate: 13824, layerCount: 40, heads: 40, kvHeads: 40, vocab: 32000)
    public static let llama2_70B = ModelShape(hidden: 8192, intermediate: 28672, layerCount: 80, heads: 64, kvHeads: 8, vocab: 32000)
    public static let llama31_8B = ModelShape(hidden: 4096, intermediate: 14336, layerCount: 32, heads: 32, kvHeads: 8, vocab: 128256)
    public static let llama31_70B = ModelShape(hidden: 8192, intermediate: 28672, layerCount: 80, heads: 64, kvHeads: 8, vocab: 128256)

    /// Every preset by its lowercase name, in size order per family.
    public static let presets: [(name: String, shape: ModelShape)] = [
        ("llama-2-7b", llama2_7B), ("llama-2-13b", llama2_13B), ("llama-2-70b", llama2_70B),
        ("llama-3.1-8b", llama31_8B), ("llama-3.1-70b", llama31_70B),
    ]

    /// The preset called `name` ("LLaMA-2-13B" and "llama-2-13b" alike), or nil.
    public static func preset(named name: String) -> ModelShape? {
        let key = name.lowercased()
        return presets.first { $0.name == key }?.shape
    }
}

/// Why a config.json does not describe a shape: the field (a dotted path such as
/// `loram.layers[3].intermediate_size`) and what is wrong with it.
public struct ShapeError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Problem: Equatable, Sendable {
        case missing
        case wrongType(expected: String)
        /// Present and well typed, but not a usable value; the text says why.
        case invalid(String)
    }

    public var field: String
    public var problem: Problem

    public init(field: String, problem: Problem) {
        self.field = field
        self.problem = problem
    }

    public var description: String {
        switch problem {
        case .missing: return "config.json: required field '\(field)' is missing"
        case .wrongType(let expected): return "config.json: field '\(field)' must be \(expected)"
        case .invalid(let why): return "config.json: field '\(field)' \(why)"
        }
    }
}

extension ModelShape {
    /// Reads the widths from a Hugging Face LLaMA config.json: `hidden_size`, `intermediate_size`,
    /// `num_hidden_layers`, `num_attention_heads`, `vocab_size` (required); `num_key_value_heads`
    /// (default: the head count), `head_dim` (default: hidden / heads), `tie_word_embeddings`
    /// (default false, as transformers' ModelConfig). A pruned checkpoint written by loramd carries
    /// `loram.layers`, one `{num_attention_heads, num_key_value_heads, intermediate_size}` per
    /// layer, which replaces the uniform widths.
    public init(configJSON data: Data) throws {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ShapeError(field: "(document)", problem: .invalid("is not valid JSON: \(error.localizedDescription)"))
        }
        guard let config = object as? [String: Any] else {
            throw ShapeError(field: "(document)", problem: .wrongType(expected: "a JSON object"))
        }
        let hidden = try Self.positiveInt(config, "hidden_size")
        let intermediate = try Self.positiveInt(config, "intermediate_size")
        let layerCount = try Self.positiveInt(config, "num_hidden_layers")
        let heads = try Self.positiveInt(config, "num_attention_heads")
        let kvHeads = try Self.positiveInt(config, "num_key_value_heads", optional: true) ?? heads
        let vocab = try Self.positiveInt(config, "vocab_size")
        let tied = try Self.bool(config, "tie_word_embeddings") ?? false
        guard heads % kvHeads == 0 else {
            throw ShapeError(field: "num_key_value_heads", problem: .invalid("(\(kvHeads)) must divide num_attention_heads (\(heads))"))
        }
        let headDim: Int
        if let explicit = try Self.positiveInt(config, "head_dim", optional: true) {
            headDim = explicit
        } else {
            guard hidden % heads == 0 else {
                throw ShapeError(field: "head_dim", problem: .invalid("is absent and hidden_size (\(hidden)) is not a multiple of num_attention_heads (\(heads))"))
            }
            headDim = hidden / heads
        }

        // Within SizeLimits before anything is sized by them (the layer list, the plan).
        try Self.shapeError {
            try SizeLimits.checkWidths(hidden: hidden, intermediate: intermediate, layers: layerCount, heads: heads,
                                       kvHeads: kvHeads, headDim: headDim, vocab: vocab)
        }
        var layers = Array(repeating: Layer(heads: heads, kvHeads: kvHeads, intermediate: intermediate), count: layerCount)
        if let loram = config["loram"], !(loram is NSNull) {
            guard let loram = loram as? [String: Any] else { throw ShapeError(field: "loram", problem: .wrongType(expected: "an object")) }
            if let list = loram["layers"], !(list is NSNull) {
                guard let list = list as? [Any] else { throw ShapeError(field: "loram.layers", problem: .wrongType(expected: "an array")) }
                guard list.count == layerCount else {
                    throw ShapeError(field: "loram.layers", problem: .invalid("has \(list.count) entries but num_hidden_layers is \(layerCount)"))
                }
                layers = try list.enumerated().map { index, entry in
                    let prefix = "loram.layers[\(index)]"
                    guard let entry = entry as? [String: Any] else { throw ShapeError(field: prefix, problem: .wrongType(expected: "an object")) }
                    let h = try Self.positiveInt(entry, "num_attention_heads", prefix: prefix)
                    let kv = try Self.positiveInt(entry, "num_key_value_heads", prefix: prefix, optional: true) ?? h
                    guard h % kv == 0 else {
                        throw ShapeError(field: "\(prefix).num_key_value_heads", problem: .invalid("(\(kv)) must divide num_attention_heads (\(h))"))
                    }
                    return Layer(heads: h, kvHeads: kv, intermediate: try Self.positiveInt(entry, "intermediate_size", prefix: prefix))
                }
            }
        }
        self.init(hidden: hidden, headDim: headDim, vocab: vocab, tiedEmbeddings: tied, layers: layers)
        try Self.shapeError { try checkSizes() }
    }

    /// `body`'s SizeError as the ShapeError of the field it names.
    private static func shapeError(_ body: () throws -> Void) throws {
        do { try body() } catch let error as SizeError {
            switch error {
            case .overLimit(let field, _, _): throw ShapeError(field: field, problem: .invalid(error.detail))
            case .overflow: throw ShapeError(field: "(document)", problem: .invalid(error.detail))
            }
        }
    }

    private static func isBool(_ value: Any) -> Bool {
        // On Linux a JSON number also casts to Bool, and a JSON boolean to Int; only the dynamic type tells them apart.
        String(describing: type(of: value)).contains("Bool")
    }

    private static func positiveInt(_ object: [String: Any], _ key: String, prefix: String? = nil) throws -> Int {
        guard let value = try positiveInt(object, key, prefix: prefix, optional: false) else {
            throw ShapeError(field: prefix.map { "\($0).\(key)" } ?? key, problem: .missing)
        }
        return value
    }

    /// The field as a positive integer; nil when absent or null and `optional`.
    private static func positiveInt(_ object: [String: Any], _ key: String, prefix: String? = nil, optional: Bool) throws -> Int? {
        let field = prefix.map { "\($0).\(key)" } ?? key
        guard let value = object[key], !(value is NSNull) else {
            if optional { return nil }
            throw ShapeError(field: field, problem: .missing)
        }
        guard !isBool(value), let number = value as? NSNumber else {
            throw ShapeError(field: field, problem: .wrongType(expected: "an integer"))
        }
        let double = number.doubleValue
        guard double == double.rounded(), abs(double) < 0x1p53 else {
            throw ShapeError(field: field, problem: .wrongType(expected: "an integer"))
        }
        guard double > 0 else { throw ShapeError(field: field, problem: .invalid("must be positive, got \(Int(double))")) }
        return Int(double)
    }

    private static func bool(_ object: [String: Any], _ key: String) throws -> Bool? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard isBool(value), let flag = value as? Bool else { throw ShapeError(field: key, problem: .wrongType(expected: "true or false")) }
        return flag
    }
}
