import Foundation
import MemoryPlanner

/// How structured pruning scores a layer's prunable groups (higher: more important, kept first).
///
/// Groups, as LLM-Pruner couples them:
/// - MHA (heads == kv heads): head h = rows [h·D, (h+1)·D) of q, k and v, and the same columns of o.
/// - GQA: kv group j = k and v head j, the g = H/KV q heads j·g … j·g+g−1 it serves (HF
///   `repeat_kv`), and their o columns. The decision is taken on k_proj, as the paper's code does
///   ("GQA, LLM-Pruner is based on k_proj"): a group's score is the importance of k_proj's rows
///   [j·D, (j+1)·D) alone, for l2 and taylor alike.
/// - MLP neuron n = gate row n, up row n and down column n (root gate_proj).
///
/// Per group, l2 sums w² and taylor sums |w · ∂L/∂w| over every element of the group's rows and
/// columns in every coupled module (LLM-Pruner's channel importance with group_reduction "sum";
/// for GQA only k_proj's rows). random draws one uniform score per group from the seed, layer
/// by layer in order (attention groups, then neurons), so a seed always picks the same groups.
public enum StructuredImportance {
    case random(seed: UInt64)
    case l2
    /// Gradients from a calibration set (`TaylorCalibration`) of the same model.
    case taylor(TaylorCalibration)

    /// Scores of a layer's attention groups (one per head for MHA, per kv head for GQA) and of
    /// its MLP neurons.
    struct LayerScores {
        var attention: [Double]
        var neurons: [Double]
    }

    /// Draws for `random`; kept across layers so each layer gets fresh scores.
    final class RandomScores {
        var random: Xoshiro256StarStar
        init(seed: UInt64) { random = Xoshiro256StarStar(seed: seed) }
        func draw(_ count: Int) -> [Double] { (0..<count).map { _ in random.nextUnitDouble() } }
    }

    func scores(layer l: Int, of model: DecoderModel, random: RandomScores?) -> LayerScores {
        let layer = model.layers[l], shape = layer.shape, d = model.config.headDim
        let isMHA = shape.heads == shape.kvHeads
        let groups = isMHA ? shape.heads : shape.kvHeads
        func salience(_ target: LoRATarget) -> GroupSalience {
            switch self {
            case .l2, .random: return GroupSalience(layer.weight(target), gradient: nil)
            case .taylor(let calibration):
                let (weight, gradient) = calibration.tensors(layer: l, target)
                return GroupSalience(weight, gradient: gradient)
            }
        }
        if case .random = self, let random {
            return LayerScores(attention: random.draw(groups), neurons: random.draw(shape.intermediate))
        }
        var attention: [Double]
        if isMHA {
            let q = salience(.q), k = salience(.k), v = salience(.v), o = salience(.o)
            attention = (0..<groups).map { h in
                q.rowSum(h * d, d) + k.rowSum(h * d, d) + v.rowSum(h * d, d) + o.columnSum(h * d, d)
            }
        } else {
            let k = salience(.k)
            attention = (0..<groups).map { j in k.rowSum(j * d, d) }
        }
        let gate = salience(.gate), up = salience(.up), down = salience(.down)
        let neurons = (0..<shape.intermediate).map { n in gate.rows[n] + up.rows[n] + down.columns[n] }
        return LayerScores(attention: attention, neurons: neurons)
    }

    /// The `count` highest-scoring indices, ascending; ties go to the lower index.
    static func top(_ count: Int, of scores: [Double]) -> [Int] {
        let order = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
        return order.prefix(count).sorted()
    }
}

/// Per-row and per-column sums of one linear's element salience: w² (no gradient) or |w·g|.
struct GroupSalience {
    var rows: [Double]
    var columns: [Double]

    init(_ weight: Weight, gradient: UnsafePointer<Float>?) {
        let n = weight.rows, k = weight.cols
        var rows = [Double](repeating: 0, count: n)
        var columns = [Double](repeating: 0, count: k)
        let blockRows = max(1, min(n, (1 << 18) / max(1, k)))
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * k)
        defer { scratch.deallocate() }
        columns.withUnsafeMutableBufferPointer { columnSums in
            var start = 0
            while start < n {
                let count = min(blockRows, n - start)
                let w = weight.rows(start..<(start + count), scratch: scratch)
                for r in 0..<count {
                    let row = w + r * k
                    var sum = 0.0
                    if let gradient {
                        let g = gradient + (start + r) * k
                        for c in 0..<k {
                            let s = Double(abs(row[c] * g[c]))
                            sum += s
                            columnSums[c] += s
                        }
                    } else {
                        for c in 0..<k {
                            let s = Double(row[c] * row[c])
                            sum += s
                            columnSums[c] += s
                        }
                    }
                    rows[start + r] = sum
                }
                start += count
            }
        }
        self.rows = rows
        self.columns = columns
    }

    func rowSum(_ start: Int, _ count: Int) -> Double { rows[start..<(start + count)].reduce(0, +) }
    func columnSum(_ start: Int, _ count: Int) -> Double { columns[start..<(start + count)].reduce(0, +) }
}
