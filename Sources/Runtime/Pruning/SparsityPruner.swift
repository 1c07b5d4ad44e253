import Foundation
import MemoryPlanner

/// Non-structured pruning (LoRAM-Semi, LoRAM-Unst): zeros by magnitude in every decoder linear,
/// shapes unchanged. Embeddings, norms and lm_head are untouched (shared with the original), as
/// the paper's accounting (`ModelShape.prunedParameterCount`) assumes.
///
/// - semi, 2:4: in each group of 4 consecutive weights along a row, the 2 smallest |w| become 0.
///   A row whose length is not a multiple of 4 ends in a shorter group of s weights, of which
///   s·2/4 (rounded down) become 0; LLaMA rows are always multiples of 4.
/// - magnitude: the int(n·ratio) smallest |w| of each matrix of n weights become 0 (the count the
///   planner charges). Ties at the threshold go to the lower index.
/// Magnitudes are compared in fp32; zeros are exact in every dtype, so the result keeps the
/// original's dtype.
public enum SparsityPruner {
    public static let semiZeros = 2
    public static let semiGroup = 4

    /// Throws `PruningError.ratioOutOfRange` for a sparsity outside [0, 1) (magnitude only).
    /// `checkpoint` runs before each layer; what it throws (a cancellation) ends the pruning.
    public static func prune(_ model: DecoderModel, method: PruningMethod, ratio: Double,
                             checkpoint: () throws -> Void = {}) throws -> DecoderModel {
        precondition(model.pruning == nil, "prune the original model, not a pruned one")
        let zeroing: (UnsafeMutableBufferPointer<Float>, Int) -> Void
        let sparsity: Double
        switch method {
        case .semi:
            sparsity = Double(semiZeros) / Double(semiGroup)
            zeroing = { values, cols in zeroSmallestInGroups(values, cols: cols) }
        case .magnitude:
            guard ratio.isFinite, ratio >= 0, ratio < 1 else { throw PruningError.ratioOutOfRange(ratio) }
            sparsity = ratio
            zeroing = { values, _ in zeroSmallest(values, count: Int(Double(values.count) * ratio)) }
        case .random, .l2, .taylor:
            preconditionFailure("\(method) is structured; use StructuredPruner")
        }
        func sparsified(_ weight: Weight) -> Weight {
            var values = weight.toArray()
            values.withUnsafeMutableBufferPointer { zeroing($0, weight.cols) }
            let result = Weight(rows: weight.rows, cols: weight.cols, dtype: weight.dtype)
            values.withUnsafeBufferPointer { result.assign($0.baseAddress!) }
            return result
        }
        let layers = try model.layers.map { layer in
            try checkpoint()
            return layer.mapLinears { sparsified($1) }
        }
        let manifest = PruningManifest(method: method, ratio: sparsity, pattern: method == .semi ? "\(semiZeros):\(semiGroup)" : nil,
                                       original: model.config.layers, kept: Array(repeating: nil, count: model.config.layerCount))
        return DecoderModel(config: model.config, embedding: model.embedding, layers: layers, finalNorm: model.finalNorm,
                          lmHead: model.config.tiedEmbeddings ? nil : model.lmHead, pruning: manifest)
    }

    /// 2:4 along each row of `cols` weights.
    static func zeroSmallestInGroups(_ values: UnsafeMutableBufferPointer<Float>, cols: Int) {
        let rows = values.count / cols
        var order = [Int](repeating: 0, count: semiGroup)
        for r in 0..<rows {
            var start = 0
            while start < cols {
                let size = min(semiGroup, cols - start), base = r * cols + start
                for i in 0..<size { order[i] = i }
                // Insertion sort by |w| (stable: ties keep the lower index first); at most 4 elements.
                for i in 1..<max(1, size) {
                    var j = i
                    while j > 0, abs(values[base + order[j]]) < abs(values[base + order[j - 1]]) {
                        order.swapAt(j, j - 1)
                        j -= 1
                    }
                }
                for i in 0..<(size * semiZeros / semiGroup) { values[base + order[i]] = 0 }
                start += size
            }
        }
    }

    /// Zeroes exactly the `count` smallest |w| (ties at the threshold: lower indices first).
    static func zeroSmallest(_ values: UnsafeMutableBufferPointer<Float>, count: Int) {
        guard count > 0 else { return }
        var magnitudes = values.map { abs($0) }
        magnitudes.sort()
        let threshold = magnitudes[count - 1]
        let below = magnitudes.prefix(count).reduce(0) { $0 + ($1 < threshold ? 1 : 0) }
        var atThreshold = count - below
        for i in values.indices {
            let m = abs(values[i])
            if m < threshold {
                values[i] = 0
            } else if m == threshold, atThreshold > 0 {
                values[i] = 0
                atThreshold -= 1
            }
        }
    }

    /// Bytes the pruned model holds: its decoder linears are new, the rest is shared with the
    /// original but counted, as it outlives the original's unloading.
    public static func plannedBytes(_ model: DecoderModel) -> Int { model.byteCount }
}
