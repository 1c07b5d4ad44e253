import Foundation
import MemoryPlanner

/// Recovery of an adapter trained on a pruned carrier to the original model's shapes (paper
/// §1.4, the official `3_recovered_low_rank_matrix_generation.py`): the factors that sit on a
/// pruned axis are expanded, learned values copied to the kept coordinates in ascending order,
/// the pruned coordinates filled:
///
/// | linear | factor | axis | kept |
/// |---|---|---|---|
/// | q_proj | B [out, r] | rows | the kept q heads' D rows each |
/// | k_proj, v_proj | B | rows | the kept kv heads' rows |
/// | o_proj | A [r, in] | columns | the kept q heads' columns |
/// | gate_proj, up_proj | B | rows | the kept neurons |
/// | down_proj | A | columns | the kept neurons |
///
/// B rows are always filled with zeros; A columns with zeros (`.zero`, the code's `zeroA`, used
/// in its evaluation) or N(0, (1/r)²) (`.normal`, its `normA`, which hard-codes r = 8). Either
/// way ΔW = B·A is zero on every pruned row (B is zero there) and, with `.zero`, on every pruned
/// column, and equals the carrier's ΔW on kept coordinates. The other factors (q/k/v/gate/up A,
/// o/down B: the hidden axis is never pruned), layers outside the window and lm_head are copied
/// unchanged. A semi-structured or unstructured carrier has the original's shapes: its adapter
/// is copied as it is, the dense update applied on the dense original (docs/loram-decisions.md).
///
///     let recovered = try LoRARecovery.recover(adapter: trained, manifest: carrier.pruning!, target: original.config)
///     try PEFTAdapterFile.save(recovered, to: out)
public enum LoRARecovery {
    public enum Fill: Equatable, Sendable {
        case zero
        case normal(seed: UInt64)
    }

    /// Why an adapter cannot be recovered onto a target.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// The target's widths are not the manifest's original ones (it is not the original model).
        case targetMismatch(String)
        /// The adapter does not have the carrier's shapes the manifest implies.
        case adapterMismatch(String)

        public var description: String {
            switch self {
            case .targetMismatch(let detail): return "the target model is not the carrier's original: \(detail)"
            case .adapterMismatch(let detail): return "the adapter does not fit the pruned model: \(detail)"
            }
        }
    }

    /// A new adapter on `target` (the original's config) carrying `adapter` (trained on the
    /// carrier `manifest` describes).
    public static func recover(adapter: LoRAAdapter, manifest: PruningManifest, target: ModelConfig, fill: Fill = .zero) throws -> LoRAAdapter {
        let original = manifest.original.map(\.shape)
        guard target.layers == original else {
            let layer = zip(target.layers, original).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            throw Failure.targetMismatch(layer.map { "layer \($0) has \(target.layers[$0].heads) heads, \(target.layers[$0].kvHeads) kv heads, \(target.layers[$0].intermediate) neurons; the original had \(original[$0].heads), \(original[$0].kvHeads), \(original[$0].intermediate)" }
                                         ?? "\(target.layerCount) layers, the original had \(original.count)")
        }
        guard adapter.layers.count == target.layerCount else {
            throw Failure.adapterMismatch("\(adapter.layers.count) layers, the model has \(target.layerCount)")
        }
        let d = target.headDim, rank = adapter.rank
        let recovered = LoRAAdapter(config: target, rank: rank, alpha: adapter.alpha, dropout: adapter.dropout, targets: adapter.targets)
        var random: Xoshiro256StarStar?
        if case .normal(let seed) = fill { random = Xoshiro256StarStar(seed: seed) }
        let std = 1 / Float(rank)

        for (l, pairs) in recovered.layers.enumerated() {
            let kept = manifest.kept[l]
            for target in LoRATarget.layerTargets {
                guard let into = pairs[target], let from = adapter.layers[l][target] else { continue }
                let path = target.modulePath(layer: l)
                guard let kept else {
                    try copy(from.a, into: into.a, path: path)
                    try copy(from.b, into: into.b, path: path)
                    continue
                }
                switch target {
                case .q, .k, .v, .gate, .up:
                    let rows = target == .q ? contiguousRanges(kept.qHeads, width: d)
                        : target == .gate || target == .up ? contiguousRanges(kept.neurons)
                        : contiguousRanges(kept.kvHeads, width: d)
                    try copy(from.a, into: into.a, path: path)
                    try scatterRows(from.b, into: into.b, rows: rows, path: path)
                case .o, .down:
                    let columns = target == .o ? contiguousRanges(kept.qHeads, width: d) : contiguousRanges(kept.neurons)
                    try copy(from.b, into: into.b, path: path)
                    try scatterColumns(from.a, into: into.a, columns: columns, path: path, fill: random.map { _ in std }) {
                        LoRAAdapter.standardNormal(&random!)
                    }
                case .lmHead:
                    preconditionFailure("lm_head is not a decoder-layer linear")
                }
            }
        }
        if let from = adapter.lmHead, let into = recovered.lmHead {
            try copy(from.a, into: into.a, path: "lm_head")
            try copy(from.b, into: into.b, path: "lm_head")
        }
        return recovered
    }

    private static func copy(_ from: Weight, into: Weight, path: String) throws {
        guard from.rows == into.rows, from.cols == into.cols else {
            throw Failure.adapterMismatch("\(path) factor is [\(from.rows), \(from.cols)], the carrier needs [\(into.rows), \(into.cols)]")
        }
        into.float32!.update(from: from.float32!, count: from.elementCount)
    }

    /// B's learned rows into the kept `rows` of the zero-filled `into`.
    private static func scatterRows(_ from: Weight, into: Weight, rows: [Range<Int>], path: String) throws {
        let keptRows = rows.reduce(0) { $0 + $1.count }
        guard from.rows == keptRows, from.cols == into.cols else {
            throw Failure.adapterMismatch("\(path) lora_B is [\(from.rows), \(from.cols)], the carrier needs [\(keptRows), \(into.cols)]")
        }
        var source = from.float32!
        for block in rows {
            (into.float32! + block.lowerBound * into.cols).update(from: source, count: block.count * into.cols)
            source += block.count * into.cols
        }
    }

    /// A's learned columns into the kept `columns`; the others stay zero, or get `fill` · N(0, 1).
    private static func scatterColumns(_ from: Weight, into: Weight, columns: [Range<Int>], path: String,
                                       fill std: Float?, normal: () -> Float) throws {
        let keptColumns = columns.reduce(0) { $0 + $1.count }
        guard from.cols == keptColumns, from.rows == into.rows else {
            throw Failure.adapterMismatch("\(path) lora_A is [\(from.rows), \(from.cols)], the carrier needs [\(into.rows), \(keptColumns)]")
        }
        let target = into.float32!, source = from.float32!, width = into.cols
        if let std {
            var isKept = [Bool](repeating: false, count: width)
            for block in columns { for c in block { isKept[c] = true } }
            for r in 0..<into.rows { for c in 0..<width where !isKept[c] { target[r * width + c] = std * normal() } }
        }
        for r in 0..<into.rows {
            var offset = 0
            for block in columns {
                (target + r * width + block.lowerBound).update(from: source + r * keptColumns + offset, count: block.count)
                offset += block.count
            }
        }
    }
}
