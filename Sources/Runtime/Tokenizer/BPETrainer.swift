/// Learns BPE merges from word counts: repeatedly merge the most frequent adjacent pair (ties go
/// to the smaller pair of ids), updating the counts of only the words that contain it. Used by
/// `TokenizerBuilder` to make tokenizers for the random models the project builds itself.
struct BPETrainer {
    /// Token bytes by id; merges append new ones.
    private(set) var tokens: [[UInt8]]
    /// Learned merges, in rank order, as (left id, right id).
    private(set) var merges: [(Int32, Int32)] = []

    private var idByToken: [TokenBytes: Int32] = [:]
    private var words: [[Int32]]
    private var wordCounts: [Int]
    private var pairCounts: [UInt64: Int] = [:]
    private var pairWords: [UInt64: Set<Int32>] = [:]
    private var heap = BinaryHeap<PairCount>()

    /// `words` are initial-token id sequences with their corpus counts.
    init(tokens: [[UInt8]], words: [(symbols: [Int32], count: Int)]) {
        self.tokens = tokens
        for (id, token) in tokens.enumerated() { idByToken[TokenBytes(token)] = Int32(id) }
        self.words = words.map(\.symbols)
        self.wordCounts = words.map(\.count)
        for (index, word) in self.words.enumerated() where word.count > 1 {
            for k in 0..<(word.count - 1) {
                let pair = BPETrainer.key(word[k], word[k + 1])
                pairCounts[pair, default: 0] += wordCounts[index]
                pairWords[pair, default: []].insert(Int32(index))
            }
        }
        for (pair, count) in pairCounts { heap.push(PairCount(count: count, pair: pair)) }
    }

    @inline(__always)
    private static func key(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    /// Merges until there are `vocabularySize` tokens; false if the pairs ran out first.
    mutating func train(until vocabularySize: Int) -> Bool {
        while tokens.count < vocabularySize {
            guard let top = heap.pop() else { return false }
            let (count, pair) = (top.count, top.pair)
            let current = pairCounts[pair] ?? 0
            if current != count {
                if current > 0 { heap.push(PairCount(count: current, pair: pair)) }
                continue
            }
            guard current > 0 else { continue }
            merge(pair)
        }
        return true
    }

    private mutating func merge(_ pair: UInt64) {
        let left = Int32(bitPattern: UInt32(truncatingIfNeeded: pair >> 32))
        let right = Int32(bitPattern: UInt32(truncatingIfNeeded: pair))
        let merged = tokens[Int(left)] + tokens[Int(right)]
        let newId: Int32
        if let existing = idByToken[TokenBytes(merged)] {
            newId = existing
        } else {
            newId = Int32(tokens.count)
            tokens.append(merged)
            idByToken[TokenBytes(merged)] = newId
        }
        merges.append((left, right))

        var created: Set<UInt64> = []
        for index in (pairWords.removeValue(forKey: pair) ?? []).sorted() {
            let word = words[Int(index)]
            let count = wordCounts[Int(index)]
            for k in 0..<(word.count - 1) { pairCounts[BPETrainer.key(word[k], word[k + 1])]! -= count }
            var rewritten: [Int32] = []
            rewritten.reserveCapacity(word.count)
            var k = 0
            while k < word.count {
                if k + 1 < word.count && word[k] == left && word[k + 1] == right {
                    rewritten.append(newId)
                    k += 2
                } else {
                    rewritten.append(word[k])
                    k += 1
                }
            }
            if rewritten.count > 1 {
                for k in 0..<(rewritten.count - 1) {
                    let p = BPETrainer.key(rewritten[k], rewritten[k + 1])
                    pairCounts[p, default: 0] += count
                    pairWords[p, default: []].insert(index)
                    if rewritten[k] == newId || rewritten[k + 1] == newId { created.insert(p) }
                }
            }
            words[Int(index)] = rewritten
        }
        for p in created.sorted() where pairCounts[p, default: 0] > 0 { heap.push(PairCount(count: pairCounts[p]!, pair: p)) }
    }
}

/// A pair and how often it occurs: the largest count comes out of the heap first, the smaller
/// pair key on ties.
private struct PairCount: HeapOrdered {
    var count: Int
    var pair: UInt64

    @inline(__always)
    func precedes(_ other: PairCount) -> Bool {
        count != other.count ? count > other.count : pair < other.pair
    }
}
