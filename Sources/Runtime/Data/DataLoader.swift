import Foundation

/// Turns a dataset's examples into training micro-batches of `microBatch` rows × `seqLen`
/// positions (ids and labels, row-major), epoch after epoch, in an order fixed by the seed, and
/// remembers where it is so a resumed run draws exactly the batches it would have drawn.
///
/// Two ways to fill a row:
/// - `truncate`: one example per row, cut to `seqLen`; a shorter one is padded at the end with
///   `padId` (0 by default: always a valid id, and its value never matters) and label -100. Each
///   row's `length` says where padding starts; with right padding and causal attention, real
///   positions never see padded ones, so the padding changes no loss or gradient.
/// - `pack`: examples concatenated, labels with them, and cut into rows of exactly `seqLen`, as
///   transformers' `group_texts`: no padding; an example may continue on the next row (or the next
///   batch), and attention crosses example boundaries within a row (each example keeps its own
///   BOS, so the model sees where one starts). Labels are the examples' own; nothing is masked at
///   a boundary.
///
/// Order: epoch e visits every example once, in a permutation drawn from (seed, e) alone
/// (Fisher–Yates over xoshiro256**, with its own bounded draw, so it does not depend on the Swift
/// standard library's algorithms), or in file order with `shuffle: false`. The stream of examples
/// is epoch 0's order, then epoch 1's, …: a micro-batch that reaches the end of an epoch takes its
/// remaining rows from the next, so no row is wasted and every epoch still sees each example once.
///
/// ```swift
/// var loader = DataLoader(dataset: dataset, mode: .truncate, microBatch: 4, seqLen: 256, seed: 7)
/// let batch = loader.next()              // batch.ids, batch.labels: 4 × 256
/// let saved = loader.position            // save with the checkpoint …
/// var resumed = DataLoader(dataset: dataset, mode: .truncate, microBatch: 4, seqLen: 256, seed: 7, position: saved)
/// ```
public struct DataLoader: Sendable {
    public enum Mode: String, Sendable, CaseIterable { case truncate, pack }

    /// Where the next batch starts: the epoch, the index into that epoch's order, and (packing)
    /// how many tokens of that example earlier rows already took.
    public struct Position: Equatable, Hashable, Codable, Sendable {
        public var epoch: Int
        public var index: Int
        public var offset: Int

        public init(epoch: Int = 0, index: Int = 0, offset: Int = 0) {
            self.epoch = epoch
            self.index = index
            self.offset = offset
        }
    }

    /// One micro-batch: `rows` × `seqLen` ids and labels, row-major.
    public struct Batch: Equatable, Sendable {
        public let rows: Int
        public let seqLen: Int
        public var ids: [Int]
        /// labels[t] is the target at t (-100: none); the loss pairs logits[t − 1] with labels[t].
        public var labels: [Int]
        /// Per row, the positions before the padding (`seqLen` when packing).
        public var lengths: [Int]
        /// Labelled positions t ≥ 1 of each row: those a shifted causal-LM loss counts
        /// (transformers' `num_items_in_batch`). Sum over the micro-batches of a step to normalize.
        public var lossTokens: Int
        /// Per row, the index into the examples of the example its first position comes from
        /// (nil for a row of padding only).
        public var sources: [Int?]
    }

    public let examples: [Dataset.Example]
    public let mode: Mode
    public let microBatch: Int
    public let seqLen: Int
    public let seed: UInt64
    public let shuffle: Bool
    public let padId: Int
    public private(set) var position: Position
    /// The order of `position.epoch`.
    private var order: [Int]

    /// A loader over `examples` as given (truncation cuts each to `seqLen`).
    public init(examples: [Dataset.Example], mode: Mode, microBatch: Int, seqLen: Int, seed: UInt64 = 0,
                shuffle: Bool = true, padId: Int = 0, position: Position = Position()) {
        precondition(!examples.isEmpty, "a loader needs at least one example")
        precondition(microBatch > 0 && seqLen > 0)
        precondition(mode == .truncate || examples.contains { !$0.ids.isEmpty }, "packing needs at least one token")
        precondition(examples.allSatisfy { $0.ids.count == $0.labels.count })
        self.examples = examples
        self.mode = mode
        self.microBatch = microBatch
        self.seqLen = seqLen
        self.seed = seed
        self.shuffle = shuffle
        self.padId = padId
        self.position = position
        order = []
        order = permutation(epoch: position.epoch)
        precondition(position.index >= 0 && position.index < examples.count && position.offset >= 0
                     && (position.offset == 0 || position.offset < examples[order[position.index]].ids.count),
                     "position \(position) is not inside the dataset")
    }

    /// A loader over `dataset`: truncation takes `dataset.sequences(seqLen:)` (a plain-text
    /// document becomes consecutive windows); packing takes the examples whole.
    public init(dataset: Dataset, mode: Mode, microBatch: Int, seqLen: Int, seed: UInt64 = 0,
                shuffle: Bool = true, padId: Int = 0, position: Position = Position()) {
        self.init(examples: mode == .truncate ? dataset.sequences(seqLen: seqLen) : dataset.examples,
                  mode: mode, microBatch: microBatch, seqLen: seqLen, seed: seed, shuffle: shuffle,
                  padId: padId, position: position)
    }

    /// Why `examples` cannot feed training rows of `seqLen`, or nil. Callers check this (and
    /// `problem(position:)` for a saved position) first: the initializer traps on what it names.
    /// A step also needs a label a shifted loss can count (some label at a row position t ≥ 1),
    /// or every step would "succeed" with loss 0.
    public static func problem(examples: [Dataset.Example], mode: Mode, seqLen: Int) -> String? {
        guard !examples.isEmpty else { return "has no example" }
        guard examples.allSatisfy({ $0.ids.count == $0.labels.count }) else { return "has an example whose labels are not as long as its ids" }
        let tokens = examples.reduce(0) { $0 + $1.ids.count }
        guard tokens > 0 else { return "has no token: every example is empty" }
        let labelled: Bool
        switch mode {
        case .truncate:
            labelled = examples.contains { $0.labels.prefix(seqLen).dropFirst().contains { $0 != Dataset.ignoreIndex } }
        case .pack:
            // Where an example lands in a packed row depends on the epoch's order; any label in a
            // stream of two or more tokens reaches a position t ≥ 1 in some row.
            labelled = tokens >= 2 && examples.contains { $0.labels.contains { $0 != Dataset.ignoreIndex } }
        }
        return labelled ? nil : "has no token with a label to predict (every label is -100, or falls on a row's first position)"
    }

    /// Why `position` (read back from a saved state) is not a place in this loader's examples, or nil.
    public func problem(position: Position) -> String? {
        guard position.epoch >= 0, position.index >= 0, position.index < examples.count, position.offset >= 0 else {
            return "position \(position) is outside the dataset's \(examples.count) examples"
        }
        let example = examples[permutation(epoch: position.epoch)[position.index]]
        guard position.offset == 0 || position.offset < example.ids.count else {
            return "position \(position) is past the end of its example (\(example.ids.count) tokens)"
        }
        return nil
    }

    /// The order in which epoch `epoch` visits the examples.
    public func permutation(epoch: Int) -> [Int] {
        var order = Array(examples.indices)
        guard shuffle, order.count > 1 else { return order }
        var random = Xoshiro256StarStar(seed: Self.mix(seed ^ Self.mix(UInt64(truncatingIfNeeded: epoch))))
        for i in stride(from: order.count - 1, to: 0, by: -1) {
            let j = Int(Self.below(UInt64(i + 1), using: &random))
            order.swapAt(i, j)
        }
        return order
    }

    /// The next micro-batch; the stream never ends (epochs follow one another).
    public mutating func next() -> Batch {
        draw(stoppingAtEpochEnd: false)!
    }

    /// One pass over `examples` in file order (evaluation): the last batch is completed with rows
    /// of padding only (length 0, no labels), and packing pads the last row.
    public static func singlePass(examples: [Dataset.Example], mode: Mode, microBatch: Int, seqLen: Int,
                                  padId: Int = 0) -> [Batch] {
        var loader = DataLoader(examples: examples, mode: mode, microBatch: microBatch, seqLen: seqLen,
                                shuffle: false, padId: padId)
        var batches: [Batch] = []
        while loader.position.epoch == 0, let batch = loader.draw(stoppingAtEpochEnd: true) { batches.append(batch) }
        return batches
    }

    // MARK: Drawing

    /// Fills a batch from `position`. With `stoppingAtEpochEnd`, rows past the end of the epoch
    /// are padding only; nil when the epoch was already over.
    private mutating func draw(stoppingAtEpochEnd: Bool) -> Batch? {
        let startEpoch = position.epoch
        var ids = [Int](repeating: padId, count: microBatch * seqLen)
        var labels = [Int](repeating: Dataset.ignoreIndex, count: microBatch * seqLen)
        var lengths = [Int](repeating: 0, count: microBatch)
        var sources = [Int?](repeating: nil, count: microBatch)
        var anything = false
        for row in 0..<microBatch {
            let base = row * seqLen
            var filled = 0
            while filled < seqLen && !(stoppingAtEpochEnd && position.epoch != startEpoch) {
                let source = order[position.index]
                let example = examples[source]
                if filled == 0 { sources[row] = source }
                let take = min(example.ids.count - position.offset, seqLen - filled)
                for k in 0..<take {
                    ids[base + filled + k] = example.ids[position.offset + k]
                    labels[base + filled + k] = example.labels[position.offset + k]
                }
                filled += take
                anything = true
                if mode == .pack && position.offset + take < example.ids.count {
                    position.offset += take
                } else {
                    advance()  // truncation drops the rest of a long example, as transformers does
                }
                if mode == .truncate { break }
            }
            lengths[row] = filled
        }
        guard anything else { return nil }
        var lossTokens = 0
        for row in 0..<microBatch {
            for t in 1..<seqLen where labels[row * seqLen + t] != Dataset.ignoreIndex { lossTokens += 1 }
        }
        return Batch(rows: microBatch, seqLen: seqLen, ids: ids, labels: labels, lengths: lengths,
                     lossTokens: lossTokens, sources: sources)
    }

    /// Moves to the next example, and to the next epoch's order after the last one.
    private mutating func advance() {
        position.offset = 0
        position.index += 1
        if position.index == examples.count {
            position.epoch += 1
            position.index = 0
            order = permutation(epoch: position.epoch)
        }
    }

    // MARK: Randomness

    /// SplitMix64's finalizer: spreads (seed, epoch) over the generator's seed space.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in 0..<bound (Lemire's multiply-and-reject), defined here so the order is the same
    /// under every toolchain.
    static func below(_ bound: UInt64, using random: inout Xoshiro256StarStar) -> UInt64 {
        var product = random.next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold { product = random.next().multipliedFullWidth(by: bound) }
        }
        return product.high
    }
}
