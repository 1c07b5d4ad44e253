import Foundation

/// The BPE `model` of a tokenizer.json: the vocabulary, the ranked merges, and the merge loop that
/// turns one pre-token into ids, exactly as tokenizers' `BPE::tokenize` (byte fallback, unknown
/// tokens, `ignore_merges`, continuing-subword prefix and end-of-word suffix included; dropout is
/// ignored, as for inference). The merge loop is a priority queue over a linked list of symbols:
/// O(n log n) in the pre-token's length, so a SentencePiece-style file, which has no
/// pre-tokenizer and hands the whole text over as one word, stays fast.
final class BPEModel: @unchecked Sendable {
    let idByToken: [TokenBytes: Int]
    /// id → token bytes; nil for ids the vocabulary skips.
    let tokenById: [[UInt8]?]
    /// (left id, right id) → (rank, merged id), keyed as left << 32 | right; nil when every pair
    /// whose concatenation is a token merges into it, ranked by that token's id (see `init(vocabulary:)`).
    private let merges: [UInt64: (rank: Int32, id: Int32)]?
    /// Ids of single-scalar tokens, for the first step of every word.
    private let idByScalar: [UInt32: Int32]
    /// `<0xAB>` ids by byte, when `byte_fallback` is on.
    private let byteFallbackIds: [Int32]?
    private let unknownId: Int?
    private let fuseUnknown: Bool
    private let ignoreMerges: Bool
    private let continuingSubwordPrefix: [UInt8]?
    private let endOfWordSuffix: [UInt8]?
    private let cache = WordCache(capacity: 10_000, maxWordBytes: 256)

    /// Number of vocabulary entries (tokenizers' `get_vocab_size`).
    var size: Int { idByToken.count }

    private init(idByToken: [TokenBytes: Int], tokenById: [[UInt8]?], merges: [UInt64: (rank: Int32, id: Int32)]?,
                 unknownToken: [UInt8]?, byteFallback: Bool, fuseUnknown: Bool, ignoreMerges: Bool,
                 continuingSubwordPrefix: [UInt8]?, endOfWordSuffix: [UInt8]?) {
        self.idByToken = idByToken
        self.tokenById = tokenById
        self.merges = merges
        self.fuseUnknown = fuseUnknown
        self.ignoreMerges = ignoreMerges
        self.continuingSubwordPrefix = continuingSubwordPrefix
        self.endOfWordSuffix = endOfWordSuffix
        // tokenizers fails at encode time when `unk_token` is missing from the vocabulary; here an
        // unknown character without a usable unk token is dropped instead.
        unknownId = unknownToken.flatMap { idByToken[TokenBytes($0)] }
        byteFallbackIds = byteFallback ? (0..<256).map { b in
            Int32(idByToken[TokenBytes(String(format: "<0x%02X>", b))] ?? -1)
        } : nil
        // Tokens are valid UTF-8, so one whose lead byte spans it all is a single scalar.
        var idByScalar: [UInt32: Int32] = [:]
        for (token, id) in idByToken {
            let bytes = token.bytes
            guard let lead = bytes.first, ByteText.sequenceLength(lead: lead) == bytes.count else { continue }
            idByScalar[ByteText.decodeScalar(bytes, at: 0, length: bytes.count).value] = Int32(id)
        }
        self.idByScalar = idByScalar
    }

    /// A model from a vocabulary in id order (a repeated token keeps its last id, as in a JSON
    /// vocab) and merges of ids, best first: a GGUF's, already validated. Without merges, every
    /// split of a token into two tokens is a merge ranked by the token's id: the merges transformers
    /// derives for Gemma (ranked by file position), without listing half a million of them. Splits
    /// of one token rank alike here and by length there; that order never matters, since two
    /// such pairs side by side are either disjoint or of the same lengths.
    convenience init(vocabulary: [[UInt8]], idByToken: [TokenBytes: Int], merges mergeList: [GGUFTokenizerSpec.Merge]?,
                     unknownToken: [UInt8]?, byteFallback: Bool, fuseUnknown: Bool) {
        var tokenById = [[UInt8]?](repeating: nil, count: vocabulary.count)
        for (token, id) in idByToken { tokenById[id] = token.bytes }
        var merges: [UInt64: (rank: Int32, id: Int32)]? = nil
        if let mergeList {
            var table: [UInt64: (rank: Int32, id: Int32)] = [:]
            table.reserveCapacity(mergeList.count)
            for (rank, merge) in mergeList.enumerated() {
                table[BPEModel.key(Int(merge.left), Int(merge.right))] = (Int32(rank), merge.merged)
            }
            merges = table
        }
        self.init(idByToken: idByToken, tokenById: tokenById, merges: merges, unknownToken: unknownToken,
                  byteFallback: byteFallback, fuseUnknown: fuseUnknown, ignoreMerges: false,
                  continuingSubwordPrefix: nil, endOfWordSuffix: nil)
    }

    convenience init(_ object: TokenizerJSONParser.Object, _ path: String, _ json: TokenizerJSON) throws {
        let vocabObject = try json.object(json.optional(object, "vocab"), "\(path).vocab")
        var idByToken: [TokenBytes: Int] = [:]
        idByToken.reserveCapacity(vocabObject.count)
        var largest = -1
        for (token, value) in vocabObject.entries {
            let id = try json.int(value, "\(path).vocab[\"\(token)\"]")
            guard id >= 0, id < Int(Int32.max) else { throw json.error("\(path).vocab[\"\(token)\"]", "id \(id) is out of range") }
            idByToken[TokenBytes(token)] = id
            largest = max(largest, id)
        }
        // The reverse map is an array; ids far sparser than any real vocabulary would make it huge.
        guard largest < 4 * idByToken.count + 65_536 else {
            throw json.error("\(path).vocab", "ids are too sparse (largest id \(largest) for \(idByToken.count) tokens)")
        }
        var tokenById = [[UInt8]?](repeating: nil, count: largest + 1)
        for (token, id) in idByToken { tokenById[id] = token.bytes }

        // An empty prefix or suffix (transformers writes "" for Qwen2) changes nothing: none, the fast path.
        let continuingSubwordPrefix = try json.optionalString(object, "continuing_subword_prefix", path).flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        let endOfWordSuffix = try json.optionalString(object, "end_of_word_suffix", path).flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        let fuseUnknown = try json.bool(object, "fuse_unk", path, default: false)
        let ignoreMerges = try json.bool(object, "ignore_merges", path, default: false)
        let unknownToken = try json.optionalString(object, "unk_token", path).map { Array($0.utf8) }
        let byteFallback = try json.bool(object, "byte_fallback", path, default: false)

        let mergeList = try json.array(json.optional(object, "merges") ?? [Any](), "\(path).merges")
        var merges: [UInt64: (rank: Int32, id: Int32)] = [:]
        merges.reserveCapacity(mergeList.count)
        let prefixLength = continuingSubwordPrefix?.count ?? 0
        for (rank, entry) in mergeList.enumerated() {
            let entryPath = "\(path).merges[\(rank)]"
            let left: String, right: String
            if let line = entry as? String {
                // The pre-0.20 form "a b", split at the first space byte (a Character search would
                // miss a space that a combining mark after it joins into one grapheme).
                let bytes = Array(line.utf8)
                guard let space = bytes.firstIndex(of: 0x20) else {
                    throw json.error(entryPath, "merge \"\(line)\" is not two tokens separated by a space")
                }
                left = String(decoding: bytes[..<space], as: UTF8.self)
                right = String(decoding: bytes[(space + 1)...], as: UTF8.self)
            } else if let pair = entry as? [Any], pair.count == 2 {
                left = try json.string(pair[0], "\(entryPath)[0]")
                right = try json.string(pair[1], "\(entryPath)[1]")
            } else {
                throw json.error(entryPath, "expected \"a b\" or [\"a\", \"b\"]")
            }
            guard let leftId = idByToken[TokenBytes(left)] else {
                throw json.error(entryPath, "merge token \"\(left)\" is not in the vocabulary")
            }
            guard let rightId = idByToken[TokenBytes(right)] else {
                throw json.error(entryPath, "merge token \"\(right)\" is not in the vocabulary")
            }
            let rightBytes = Array(right.utf8)
            guard rightBytes.count >= prefixLength else {
                throw json.error(entryPath, "merge token \"\(right)\" is shorter than the continuing-subword prefix")
            }
            let merged = Array(left.utf8) + rightBytes[prefixLength...]
            guard let mergedId = idByToken[TokenBytes(merged)] else {
                throw json.error(entryPath, "merged token \"\(String(decoding: merged, as: UTF8.self))\" is not in the vocabulary")
            }
            // A repeated pair takes its later rank, as when tokenizers collects its merge map.
            merges[BPEModel.key(leftId, rightId)] = (Int32(rank), Int32(mergedId))
        }
        self.init(idByToken: idByToken, tokenById: tokenById, merges: merges, unknownToken: unknownToken,
                  byteFallback: byteFallback, fuseUnknown: fuseUnknown, ignoreMerges: ignoreMerges,
                  continuingSubwordPrefix: continuingSubwordPrefix, endOfWordSuffix: endOfWordSuffix)
    }

    /// The merge of two adjacent symbols, if there is one.
    @inline(__always)
    private func merge(_ left: Int32, _ right: Int32) -> (rank: Int32, id: Int32)? {
        if let merges { return merges[BPEModel.key(Int(left), Int(right))] }
        guard let a = tokenById[Int(left)], let b = tokenById[Int(right)], let id = idByToken[TokenBytes(a + b)] else { return nil }
        return (Int32(id), Int32(id))
    }

    @inline(__always)
    private static func key(_ left: Int, _ right: Int) -> UInt64 {
        UInt64(UInt32(truncatingIfNeeded: left)) << 32 | UInt64(UInt32(truncatingIfNeeded: right))
    }

    /// Appends the ids of one pre-token (non-empty, valid UTF-8).
    func tokenize(_ word: [UInt8], into ids: inout [Int], workspace: inout BPEWorkspace) {
        guard !word.isEmpty else { return }
        if ignoreMerges, let id = idByToken[TokenBytes(word)] {
            ids.append(id)
            return
        }
        let key = TokenBytes(word)
        if let cached = cache.get(key) {
            for id in cached { ids.append(Int(id)) }
            return
        }
        workspace.reset()
        addInitialSymbols(word, to: &workspace)
        mergeAll(&workspace)
        let start = ids.count
        var k = workspace.symbols.isEmpty ? -1 : 0
        while k >= 0 {
            ids.append(Int(workspace.symbols[k].id))
            k = Int(workspace.symbols[k].next)
        }
        cache.put(key, ids[start...].map { Int32($0) })
    }

    /// One symbol per Unicode scalar: its token, else its `<0xAB>` byte tokens, else the unknown
    /// token (fused with a preceding one when `fuse_unk`), else nothing.
    private func addInitialSymbols(_ word: [UInt8], to workspace: inout BPEWorkspace) {
        var pendingUnknown: (id: Int32, length: Int32)? = nil
        var i = 0
        let plain = continuingSubwordPrefix == nil && endOfWordSuffix == nil
        while i < word.count {
            let length = min(ByteText.sequenceLength(lead: word[i]), word.count - i)
            let end = i + length
            var id: Int32? = nil
            var piece: [UInt8] = []
            if plain {
                let scalar = ByteText.decodeScalar(word, at: i, length: length)
                id = idByScalar[scalar.value]
            } else {
                if i > 0, let prefix = continuingSubwordPrefix { piece += prefix }
                piece += word[i..<end]
                if end == word.count, let suffix = endOfWordSuffix { piece += suffix }
                id = idByToken[TokenBytes(piece)].map { Int32($0) }
            }
            if let id {
                if let unknown = pendingUnknown {
                    workspace.add(unknown.id, length: unknown.length)
                    pendingUnknown = nil
                }
                workspace.add(id, length: Int32(length))
            } else {
                if plain { piece = Array(word[i..<end]) }
                if let fallback = byteFallbackIds, piece.allSatisfy({ fallback[Int($0)] >= 0 }) {
                    // As in tokenizers, a pending unknown token is not flushed before byte tokens.
                    for b in piece { workspace.add(fallback[Int(b)], length: 1) }
                } else if let unknownId {
                    if let unknown = pendingUnknown {
                        if fuseUnknown {
                            pendingUnknown = (unknown.id, unknown.length + Int32(length))
                        } else {
                            workspace.add(unknown.id, length: unknown.length)
                            pendingUnknown = (Int32(unknownId), Int32(length))
                        }
                    } else {
                        pendingUnknown = (Int32(unknownId), Int32(length))
                    }
                }
            }
            i = end
        }
        if let unknown = pendingUnknown { workspace.add(unknown.id, length: unknown.length) }
    }

    /// tokenizers' `Word::merge_all`: repeatedly merge the lowest-ranked adjacent pair (leftmost
    /// on ties), skipping queue entries made stale by earlier merges.
    private func mergeAll(_ w: inout BPEWorkspace) {
        let count = w.symbols.count
        guard count > 1 else { return }
        for pos in 0..<(count - 1) {
            if let found = merge(w.symbols[pos].id, w.symbols[pos + 1].id) {
                w.queue.push(BPEWorkspace.Candidate(rank: found.rank, position: Int32(pos), id: found.id))
            }
        }
        while let top = w.queue.pop() {
            let pos = Int(top.position)
            if w.symbols[pos].length == 0 { continue }
            let nextPos = Int(w.symbols[pos].next)
            if nextPos < 0 { continue }
            let right = w.symbols[nextPos]
            guard let current = merge(w.symbols[pos].id, right.id), current.id == top.id else { continue }

            w.symbols[pos].id = top.id
            w.symbols[pos].length += right.length
            w.symbols[pos].next = right.next
            w.symbols[nextPos].length = 0
            if right.next >= 0 { w.symbols[Int(right.next)].previous = Int32(pos) }

            let previous = Int(w.symbols[pos].previous)
            if previous >= 0, let found = merge(w.symbols[previous].id, top.id) {
                w.queue.push(BPEWorkspace.Candidate(rank: found.rank, position: Int32(previous), id: found.id))
            }
            let next = Int(w.symbols[pos].next)
            if next >= 0, let found = merge(top.id, w.symbols[next].id) {
                w.queue.push(BPEWorkspace.Candidate(rank: found.rank, position: Int32(pos), id: found.id))
            }
        }
    }
}

/// Scratch space for the merge loop, reused across the words of one encode call.
struct BPEWorkspace {
    struct Symbol {
        var id: Int32
        var length: Int32  // bytes covered; 0 once merged into its left neighbour
        var previous: Int32
        var next: Int32
    }

    struct Candidate: HeapOrdered {
        var rank: Int32
        var position: Int32
        var id: Int32

        /// Lower rank first, then the leftmost position.
        @inline(__always)
        func precedes(_ other: Candidate) -> Bool {
            rank != other.rank ? rank < other.rank : position < other.position
        }
    }

    var symbols: [Symbol] = []
    /// Merge candidates, lowest rank (then leftmost) first.
    var queue = BinaryHeap<Candidate>()

    mutating func reset() {
        symbols.removeAll(keepingCapacity: true)
        queue.removeAll()
    }

    mutating func add(_ id: Int32, length: Int32) {
        let index = Int32(symbols.count)
        if index > 0 { symbols[Int(index) - 1].next = index }
        symbols.append(Symbol(id: id, length: length, previous: index - 1, next: -1))
    }
}

/// A bounded, thread-safe cache of word → ids. Like tokenizers' cache it stops admitting entries
/// once full rather than evicting, which keeps memory fixed and lookups lock-cheap.
final class WordCache: @unchecked Sendable {
    private var entries: [TokenBytes: [Int32]] = [:]
    private let lock = NSLock()
    private let capacity: Int
    private let maxWordBytes: Int

    init(capacity: Int, maxWordBytes: Int) {
        self.capacity = capacity
        self.maxWordBytes = maxWordBytes
    }

    func get(_ key: TokenBytes) -> [Int32]? {
        guard key.bytes.count <= maxWordBytes else { return nil }
        lock.lock()
        defer { lock.unlock() }
        return entries[key]
    }

    func put(_ key: TokenBytes, _ ids: [Int32]) {
        guard key.bytes.count <= maxWordBytes else { return }
        lock.lock()
        defer { lock.unlock() }
        if entries.count < capacity { entries[key] = ids }
    }
}
