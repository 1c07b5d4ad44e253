import MemoryPlanner

/// A LoRA tensor that does not fit the model it is meant for: which tensor, the shape the model
/// implies and the shape found. `expected` is nil when the model has no such linear at all (an
/// adapter for a deeper model). The daemon answers it with the contract's ShapeMismatch (-31011).
public struct AdapterShapeMismatch: Error, Equatable, CustomStringConvertible {
    public let tensor: String
    public let expected: [Int]?
    public let found: [Int]

    public init(tensor: String, expected: [Int]?, found: [Int]) {
        self.tensor = tensor
        self.expected = expected
        self.found = found
    }

    public var description: String {
        guard let expected else { return "tensor \(tensor) \(found) belongs to a linear the model does not have" }
        return "tensor \(tensor) has shape \(found), the model needs \(expected)"
    }
}

/// Whether an adapter fits a model, and what one costs before it exists.
extension LoRAAdapter {
    /// Parameters of an adapter of `rank` on `targets` of a model shaped by `config`, before any
    /// is allocated (what the memory budget is charged).
    public static func parameterCount(config: ModelConfig, rank: Int, targets: Set<LoRATarget>) -> Int {
        var count = 0
        for layer in config.layers {
            for target in LoRATarget.layerTargets where targets.contains(target) {
                let (out, inFeatures) = shape(of: target, layer: layer, hidden: config.hiddenSize, headDim: config.headDim, vocab: config.vocabSize)
                count += rank * (out + inFeatures)
            }
        }
        if targets.contains(.lmHead) { count += rank * (config.vocabSize + config.hiddenSize) }
        return count
    }

    /// Throws `AdapterShapeMismatch` unless every pair fits the linear it sits on in `model`
    /// (same layer count, A [r, in], B [out, r]).
    public func checkFits(_ model: DecoderModel) throws {
        if layers.count > model.layers.count, let (target, pair) = layers[model.layers.count].first {
            throw AdapterShapeMismatch(tensor: PEFTAdapterFile.tensorName(target.modulePath(layer: model.layers.count), .a),
                                       expected: nil, found: [pair.a.rows, pair.a.cols])
        }
        if layers.count < model.layers.count, let target = LoRATarget.layerTargets.first(where: targets.contains) {
            let weight = model.layers[layers.count].weight(target)
            throw AdapterShapeMismatch(tensor: PEFTAdapterFile.tensorName(target.modulePath(layer: layers.count), .a),
                                       expected: [rank, weight.cols], found: [])
        }
        func check(_ pair: LoRAPair, on weight: Weight, path: String) throws {
            if pair.a.cols != weight.cols {
                throw AdapterShapeMismatch(tensor: PEFTAdapterFile.tensorName(path, .a), expected: [rank, weight.cols], found: [pair.a.rows, pair.a.cols])
            }
            if pair.b.rows != weight.rows {
                throw AdapterShapeMismatch(tensor: PEFTAdapterFile.tensorName(path, .b), expected: [weight.rows, rank], found: [pair.b.rows, pair.b.cols])
            }
        }
        for (i, pairs) in layers.enumerated() {
            for target in LoRATarget.layerTargets {
                if let pair = pairs[target] { try check(pair, on: model.layers[i].weight(target), path: target.modulePath(layer: i)) }
            }
        }
        if let lmHead { try check(lmHead, on: model.lmHead, path: LoRATarget.lmHead.modulePath(layer: 0)) }
    }
}
