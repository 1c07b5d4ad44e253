import Foundation
import MemoryPlanner

/// Turns text into token ids (the tokenizer conforms).
public protocol TextEncoding {
    func encode(_ text: String, addSpecialTokens: Bool) -> [Int]
}

/// A dataset as the contract defines it, read whole and validated before anything uses it:
/// `text` (JSONL with a `text` field, or a plain .txt file), `prompt_completion` (JSONL with
/// `prompt` and `completion`; loss on the completion only unless `trainOnInputs`), or `tokens`
/// (JSONL with `ids` and optional `labels`, -100 meaning no loss). A malformed line is a
/// FormatError naming the file and the line.
public struct Dataset: Sendable {
    public enum Format: String, Sendable, CaseIterable { case text, promptCompletion = "prompt_completion", tokens }

    /// One example: ids and, per position, the label the model should predict there (-100: none).
    /// labels[t] is the id at t, so the loss pairs logits[t-1] with labels[t].
    public struct Example: Equatable, Sendable {
        public var ids: [Int]
        public var labels: [Int]
        public init(ids: [Int], labels: [Int]) {
            self.ids = ids
            self.labels = labels
        }
    }

    public static let ignoreIndex = -100

    public let examples: [Example]
    public let url: URL
    public let format: Format

    public init(url: URL, format: Format, encoder: TextEncoding?, vocabSize: Int, trainOnInputs: Bool = false) throws {
        self.url = url
        self.format = format
        let file = url.lastPathComponent
        let data = try RegularFile.contents(url)
        guard let text = String(data: data, encoding: .utf8) else { throw FormatError(file: file, "not UTF-8 text") }
        func requireEncoder(_ line: Int) throws -> TextEncoding {
            guard let textEncoder = encoder else { throw FormatError(file: file, "line \(line): the model has no tokenizer to encode text with") }
            return textEncoder
        }
        var examples: [Example] = []
        if format == .text && url.pathExtension.lowercased() == "txt" {
            let ids = try requireEncoder(1).encode(text, addSpecialTokens: true)
            examples.append(Example(ids: ids, labels: ids))
        } else {
            for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
                if line.isEmpty { continue }
                let number = index + 1
                guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                    throw FormatError(file: file, "line \(number): not a JSON object")
                }
                switch format {
                case .text:
                    guard let text = object["text"] as? String else { throw FormatError(file: file, "line \(number): no string field \"text\"") }
                    let ids = try requireEncoder(number).encode(text, addSpecialTokens: true)
                    examples.append(Example(ids: ids, labels: ids))
                case .promptCompletion:
                    guard let prompt = object["prompt"] as? String else { throw FormatError(file: file, "line \(number): no string field \"prompt\"") }
                    guard let completion = object["completion"] as? String else { throw FormatError(file: file, "line \(number): no string field \"completion\"") }
                    let promptIds = try requireEncoder(number).encode(prompt, addSpecialTokens: true)
                    let completionIds = try requireEncoder(number).encode(completion, addSpecialTokens: false)
                    let labels = (trainOnInputs ? promptIds : Array(repeating: Self.ignoreIndex, count: promptIds.count)) + completionIds
                    examples.append(Example(ids: promptIds + completionIds, labels: labels))
                case .tokens:
                    guard let ids = Self.integers(object["ids"]) else { throw FormatError(file: file, "line \(number): \"ids\" must be a list of integers") }
                    if let bad = ids.first(where: { $0 < 0 || $0 >= vocabSize }) {
                        throw FormatError(file: file, "line \(number): id \(bad) is outside the vocabulary 0..<\(vocabSize)")
                    }
                    var labels = ids
                    if object["labels"] != nil && !(object["labels"] is NSNull) {
                        guard let given = Self.integers(object["labels"]), given.count == ids.count else {
                            throw FormatError(file: file, "line \(number): \"labels\" must be a list of integers as long as \"ids\" (\(ids.count))")
                        }
                        if let bad = given.first(where: { $0 != Self.ignoreIndex && ($0 < 0 || $0 >= vocabSize) }) {
                            throw FormatError(file: file, "line \(number): label \(bad) is neither -100 nor a token id")
                        }
                        labels = given
                    }
                    examples.append(Example(ids: ids, labels: labels))
                }
            }
        }
        guard !examples.isEmpty else { throw FormatError(file: file, "no examples") }
        // Text encodes to the tokenizer's ids; one it adds past the embedding (a GGUF gpt2 file's
        // "<|endoftext|>", as transformers adds it) has no row to train.
        if format != .tokens, let (index, bad) = examples.enumerated().lazy.compactMap({ i, e in e.ids.first { $0 >= vocabSize }.map { (i, $0) } }).first {
            throw FormatError(file: file, "example \(index + 1): the text encodes to id \(bad), past the model's vocabulary of \(vocabSize)")
        }
        self.examples = examples
    }

    /// Examples cut to at most `seqLen` tokens: JSONL examples are truncated; a plain-text
    /// document is split into consecutive windows.
    public func sequences(seqLen: Int) -> [Example] {
        if format == .text && url.pathExtension.lowercased() == "txt" {
            let example = examples[0]
            return stride(from: 0, to: example.ids.count, by: seqLen).map {
                let end = min($0 + seqLen, example.ids.count)
                return Example(ids: Array(example.ids[$0..<end]), labels: Array(example.labels[$0..<end]))
            }
        }
        return examples.map { Example(ids: Array($0.ids.prefix(seqLen)), labels: Array($0.labels.prefix(seqLen))) }
    }

    static func integers(_ value: Any?) -> [Int]? {
        guard let list = value as? [Any] else { return nil }
        var out: [Int] = []
        out.reserveCapacity(list.count)
        for item in list {
            guard let n = ConfigFields.integer(item) else { return nil }
            out.append(n)
        }
        return out
    }
}

extension Dataset.Example {
    /// The bytes `lists` of examples hold together (`TrainingData`): every distinct ids and labels
    /// storage as allocated, at its real capacity, counted once however many examples share it (a
    /// text example's labels are its ids; a row cut from an example no longer than the cut is that
    /// example's), each list's array of examples, and, with `loaderOrders`, the epoch order of a
    /// loader over each list.
    public static func heldBytes(_ lists: [[Dataset.Example]], loaderOrders: Int = 0) -> Int {
        var seen = Set<UnsafeRawPointer>()
        var capacities: [Int] = []
        func distinct(_ array: [Int]) {
            array.withUnsafeBufferPointer { buffer in
                if let base = buffer.baseAddress, array.capacity > 0, seen.insert(UnsafeRawPointer(base)).inserted { capacities.append(array.capacity) }
            }
        }
        for list in lists { for example in list { distinct(example.ids); distinct(example.labels) } }
        // The lists themselves, each distinct one once (the job's rows may be the dataset's examples).
        let arrays = lists.reduce(0) { total, list in
            list.withUnsafeBufferPointer { buffer in
                guard let base = buffer.baseAddress, seen.insert(UnsafeRawPointer(base)).inserted else { return total }
                return total + Jemalloc.arrayBytes(capacity: list.capacity, stride: MemoryLayout<Dataset.Example>.stride)
            }
        }
        let orders = lists.prefix(loaderOrders).reduce(0) { $0 + 2 * Jemalloc.arrayBytes(capacity: $1.count, stride: 8) }
        return TrainingData.tokenBytes(capacities: capacities) + arrays + orders
    }

    /// `evaluate`'s transient batches over `examples` (one pass, every micro-batch at once) as
    /// `DataLoader.singlePass` makes them, with its loader's order.
    public static func evaluationBytes(_ examples: [Dataset.Example], microBatch: Int, seqLen: Int) -> Int {
        let batches = (examples.count + microBatch - 1) / microBatch
        let batch = 2 * Jemalloc.arrayBytes(capacity: microBatch * seqLen, stride: 8) + Jemalloc.arrayBytes(capacity: microBatch, stride: 8)
            + Jemalloc.arrayBytes(capacity: microBatch, stride: 9)
        return batches * batch + Jemalloc.arrayBytes(capacity: batches, stride: MemoryLayout<DataLoader.Batch>.stride) + 2 * Jemalloc.arrayBytes(capacity: examples.count, stride: 8)
    }
}
