/// Given a cap, the smallest change to a workload that fits: first layer checkpointing, then a
/// smaller micro-batch (gradient accumulation keeps the effective batch), then a 4-bit base, then
/// shorter training sequences (halved down to `minimumSeqLen`, gradient accumulation keeping the
/// tokens per optimizer step), then structured pruning at growing ratios. The first candidate in
/// that order that fits is the answer.
public enum PlanSearch {
    public struct Suggestion: Sendable {
        public let workload: Workload
        public let pruning: Pruning?
        public let plan: MemoryPlan
        /// What changed, by setting name, for people: ["checkpointing": "layer", "microBatch": "1", ...].
        public let changes: [(String, String)]
    }

    public static let pruneRatios = [0.5, 0.65, 0.75, 0.85, 0.95]
    /// Sequences are not shortened below this: shorter ones change what the model learns too much.
    public static let minimumSeqLen = 128

    /// One change `fit` weighs: the workload and pruning with it, and what changed, for people.
    public struct Candidate: Sendable {
        public let workload: Workload
        public let pruning: Pruning?
        public let changes: [(String, String)]
    }

    /// The changes `fit` weighs, in its order, for a caller that weighs them with a plan of its own
    /// (the daemon's, of a live job's arena). `workload` must be within SizeLimits.
    public static func candidates(pruning: Pruning?, workload: Workload) -> [Candidate] {
        var candidates: [Candidate] = []
        func add(_ w: Workload, _ p: Pruning?, _ changes: [(String, String)]) { candidates.append(Candidate(workload: w, pruning: p, changes: changes)) }
        var base = workload
        var changes: [(String, String)] = []
        if workload.kind == .train && !workload.checkpointing {
            base.checkpointing = true
            changes.append(("checkpointing", "layer"))
            add(base, pruning, changes)
        }
        var smaller = base
        var microChanges = changes
        while workload.kind == .train && smaller.microBatch > 1 {
            smaller.gradAccum *= 2
            smaller.microBatch = (smaller.microBatch + 1) / 2
            microChanges = changes.filter { $0.0 != "microBatch" && $0.0 != "gradAccum" } + [("microBatch", "\(smaller.microBatch)"), ("gradAccum", "\(smaller.gradAccum)")]
            add(smaller, pruning, microChanges)
        }
        var quantized = smaller
        var quantChanges = microChanges
        if quantized.baseDType != .nf4 && (workload.kind == .generate || workload.lora != nil) {
            quantized.baseDType = .nf4
            quantChanges.append(("baseDType", "nf4"))
            add(quantized, pruning, quantChanges)
        }
        var shorter = quantized
        var shortChanges = quantChanges
        while workload.kind == .train && shorter.seqLen / 2 >= minimumSeqLen {
            shorter.seqLen /= 2
            shorter.gradAccum *= 2
            shortChanges = shortChanges.filter { $0.0 != "seqLen" && $0.0 != "gradAccum" } + [("seqLen", "\(shorter.seqLen)"), ("gradAccum", "\(shorter.gradAccum)")]
            add(shorter, pruning, shortChanges)
        }
        let current: Double = {
            if case .structured(let r, _)? = pruning { return r }
            return 0
        }()
        if workload.lora != nil || workload.kind == .generate {
            for ratio in pruneRatios where ratio > current {
                add(quantized, .structured(ratio: ratio), quantChanges + [("prune", "structured \(ratio)")])
            }
        }
        return candidates
    }

    public static func fit(original: ModelShape, pruning: Pruning?, workload: Workload, capBytes: Int) -> Suggestion? {
        // Within SizeLimits, the doublings below stay far from overflow (gradAccum 2^20 · 2^35).
        guard (try? original.checkSizes()) != nil, (try? workload.checkSizes()) != nil else { return nil }
        for candidate in candidates(pruning: pruning, workload: workload) {
            let (w, p, c) = (candidate.workload, candidate.pruning, candidate.changes)
            guard let plan = try? MemoryPlan(original: original, pruning: p, workload: w), plan.peakBytes <= capBytes else { continue }
            return Suggestion(workload: w, pruning: p, plan: plan, changes: c)
        }
        return nil
    }
}
