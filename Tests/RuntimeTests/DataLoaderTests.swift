import XCTest
@testable import Runtime

final class DataLoaderTests: XCTestCase {
    /// Example i has `lengths[i]` ids 1000·i + 1, 1000·i + 2, … so every token names its source.
    static func examples(_ lengths: [Int]) -> [Dataset.Example] {
        lengths.enumerated().map { i, n in
            let ids = (0..<n).map { 1000 * i + $0 + 1 }
            return Dataset.Example(ids: ids, labels: ids.map { $0 % 3 == 0 ? Dataset.ignoreIndex : $0 })
        }
    }

    func draw(_ loader: inout DataLoader, _ count: Int) -> [DataLoader.Batch] { (0..<count).map { _ in loader.next() } }

    func testTheOrderIsFixedBySeedAndEpoch() {
        let examples = Self.examples(Array(repeating: 3, count: 50))
        let a = DataLoader(examples: examples, mode: .truncate, microBatch: 2, seqLen: 4, seed: 7)
        let b = DataLoader(examples: examples, mode: .truncate, microBatch: 5, seqLen: 8, seed: 7)
        XCTAssertEqual(a.permutation(epoch: 0), b.permutation(epoch: 0))
        XCTAssertEqual(a.permutation(epoch: 3), b.permutation(epoch: 3))
        XCTAssertNotEqual(a.permutation(epoch: 0), a.permutation(epoch: 1))
        XCTAssertNotEqual(a.permutation(epoch: 0), DataLoader(examples: examples, mode: .truncate, microBatch: 2, seqLen: 4, seed: 8).permutation(epoch: 0))
        XCTAssertNotEqual(a.permutation(epoch: 0), Array(0..<50))
        XCTAssertEqual(DataLoader(examples: examples, mode: .truncate, microBatch: 2, seqLen: 4, shuffle: false).permutation(epoch: 4), Array(0..<50))
        // Pinned: a change to the shuffle would silently change every resumed run's data.
        XCTAssertEqual(Array(DataLoader(examples: Self.examples(Array(repeating: 1, count: 10)), mode: .truncate, microBatch: 1, seqLen: 1, seed: 0).permutation(epoch: 0)),
                       Self.pinnedOrder)
        var first = a, second = a
        XCTAssertEqual(draw(&first, 40), draw(&second, 40))
    }

    static let pinnedOrder = [7, 4, 2, 9, 0, 1, 6, 3, 8, 5]

    func testEveryExampleOncePerEpochAcrossBatchBoundaries() {
        // 7 examples, 3 rows per batch: batches straddle epochs, each epoch still sees all 7 once.
        let examples = Self.examples([1, 2, 3, 4, 5, 6, 7])
        var loader = DataLoader(examples: examples, mode: .truncate, microBatch: 3, seqLen: 8, seed: 1)
        let sources = draw(&loader, 7).flatMap(\.sources).map { $0! }
        XCTAssertEqual(sources.count, 21)
        for epoch in 0..<3 {
            let seen = Array(sources[(7 * epoch)..<(7 * epoch + 7)])
            XCTAssertEqual(seen.sorted(), Array(0..<7), "epoch \(epoch)")
            XCTAssertEqual(seen, loader.permutation(epoch: epoch))
        }
        XCTAssertEqual(loader.position, DataLoader.Position(epoch: 3, index: 0, offset: 0))
    }

    func testTruncationPadsWithNoLabelAndCutsLongExamples() {
        let examples = Self.examples([3, 9])
        var loader = DataLoader(examples: examples, mode: .truncate, microBatch: 2, seqLen: 5, shuffle: false, padId: 2)
        let batch = loader.next()
        XCTAssertEqual(batch.rows, 2)
        XCTAssertEqual(batch.seqLen, 5)
        XCTAssertEqual(batch.lengths, [3, 5])
        XCTAssertEqual(batch.ids, [1, 2, 3, 2, 2, 1001, 1002, 1003, 1004, 1005])
        // Multiples of 3 carry no label (see `examples`); padding carries none either.
        XCTAssertEqual(batch.labels, [1, 2, -100, -100, -100, 1001, -100, 1003, 1004, -100])
        // Positions t ≥ 1 with a label: row 0 has 2 (t = 1), row 1 has 1003 and 1004.
        XCTAssertEqual(batch.lossTokens, 1 + 2)
        XCTAssertEqual(batch.sources, [0, 1])
        // The cut-off rest of the long example is dropped: the next batch starts the next epoch.
        XCTAssertEqual(loader.position, DataLoader.Position(epoch: 1, index: 0, offset: 0))
        XCTAssertEqual(loader.next().ids, batch.ids)
    }

    func testPackingFillsEveryRowWithTheStreamOfExamples() {
        let examples = Self.examples([3, 9, 2])
        var loader = DataLoader(examples: examples, mode: .pack, microBatch: 2, seqLen: 4, shuffle: false)
        let batches = draw(&loader, 3)
        let stream = (examples + examples).flatMap(\.ids)
        let labelStream = (examples + examples).flatMap(\.labels)
        XCTAssertEqual(batches.flatMap(\.ids), Array(stream.prefix(24)))
        XCTAssertEqual(batches.flatMap(\.labels), Array(labelStream.prefix(24)))
        XCTAssertTrue(batches.allSatisfy { $0.lengths == [4, 4] })
        XCTAssertEqual(batches[0].sources, [0, 1])  // row 1 starts inside example 1 (its 2nd token)
        XCTAssertEqual(batches[0].ids, [1, 2, 3, 1001, 1002, 1003, 1004, 1005])
        // 24 tokens: epoch 0's 14, then 3 of example 0 and 7 of example 1's 9.
        XCTAssertEqual(loader.position, DataLoader.Position(epoch: 1, index: 1, offset: 7))
    }

    func testAResumedLoaderDrawsTheSameBatches() {
        for mode in DataLoader.Mode.allCases {
            let examples = Self.examples((0..<23).map { 1 + ($0 * 7) % 13 })
            var straight = DataLoader(examples: examples, mode: mode, microBatch: 3, seqLen: 6, seed: 42)
            var expected: [DataLoader.Batch] = []
            var positions: [DataLoader.Position] = []
            for _ in 0..<40 {
                positions.append(straight.position)
                expected.append(straight.next())
            }
            for cut in [0, 1, 7, 13, 29, 39] {
                var resumed = DataLoader(examples: examples, mode: mode, microBatch: 3, seqLen: 6, seed: 42, position: positions[cut])
                XCTAssertEqual(draw(&resumed, 40 - cut), Array(expected[cut...]), "\(mode) resumed at batch \(cut)")
            }
            // The position survives JSON (checkpoints store it as such).
            let data = try! JSONEncoder().encode(positions[29])
            XCTAssertEqual(try! JSONDecoder().decode(DataLoader.Position.self, from: data), positions[29])
        }
    }

    func testPackingCoversEveryTokenOncePerEpoch() {
        let examples = Self.examples([5, 1, 8, 3, 2, 6])  // 25 tokens
        var loader = DataLoader(examples: examples, mode: .pack, microBatch: 1, seqLen: 5, seed: 3)
        let tokens = draw(&loader, 10).flatMap(\.ids)  // 50 tokens: exactly two epochs
        XCTAssertEqual(Array(tokens[..<25]).sorted(), examples.flatMap(\.ids).sorted())
        XCTAssertEqual(Array(tokens[25...]).sorted(), examples.flatMap(\.ids).sorted())
        XCTAssertEqual(Array(tokens[..<25]), loader.permutation(epoch: 0).flatMap { examples[$0].ids })
        XCTAssertEqual(loader.position, DataLoader.Position(epoch: 2, index: 0, offset: 0))
    }

    func testSinglePassPadsTheLastBatch() {
        let examples = Self.examples([2, 3, 4, 5, 6])
        let batches = DataLoader.singlePass(examples: examples, mode: .truncate, microBatch: 2, seqLen: 4)
        XCTAssertEqual(batches.count, 3)
        XCTAssertEqual(batches.flatMap(\.sources), [0, 1, 2, 3, 4, nil])
        XCTAssertEqual(batches[2].lengths, [4, 0])
        XCTAssertEqual(Array(batches[2].labels[4...]), [-100, -100, -100, -100])
        let packed = DataLoader.singlePass(examples: examples, mode: .pack, microBatch: 2, seqLen: 4)
        XCTAssertEqual(packed.count, 3)  // 20 tokens: 5 full rows and one of padding
        XCTAssertEqual(packed.flatMap(\.lengths), [4, 4, 4, 4, 4, 0])
        XCTAssertEqual(packed.flatMap(\.ids).prefix(20).map { $0 }, examples.flatMap(\.ids))
    }

    func testLoaderOverADatasetWindowsPlainText() throws {
        let directory = try temporaryDirectory()
        let url = directory.appendingPathComponent("data.jsonl")
        try "{\"ids\": [1, 2, 3, 4, 5, 6, 7]}\n{\"ids\": [8, 9], \"labels\": [-100, 9]}\n".write(to: url, atomically: false, encoding: .utf8)
        let dataset = try Dataset(url: url, format: .tokens, encoder: nil, vocabSize: 16)
        var loader = DataLoader(dataset: dataset, mode: .truncate, microBatch: 2, seqLen: 4, shuffle: false)
        let batch = loader.next()
        XCTAssertEqual(batch.ids, [1, 2, 3, 4, 8, 9, 0, 0])
        XCTAssertEqual(batch.labels, [1, 2, 3, 4, -100, 9, -100, -100])
        XCTAssertEqual(batch.lossTokens, 4)
    }

    // MARK: EOS in completions

    struct CharacterEncoder: TextEncoding {
        /// One id per character; "$" is EOS (2), a leading BOS (1) with special tokens.
        func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
            (addSpecialTokens ? [1] : []) + text.unicodeScalars.map { $0 == "$" ? 2 : Int($0.value % 200) + 3 }
        }
    }

    func testCompletionsContainingEOS() throws {
        let directory = try temporaryDirectory()
        func dataset(_ lines: [String], format: Dataset.Format = .promptCompletion) throws -> Dataset {
            let url = directory.appendingPathComponent("\(UUID().uuidString).jsonl")
            try lines.joined(separator: "\n").write(to: url, atomically: false, encoding: .utf8)
            return try Dataset(url: url, format: format, encoder: CharacterEncoder(), vocabSize: 256)
        }
        let without = try dataset([#"{"prompt": "Q$", "completion": "answer"}"#, #"{"prompt": "Q", "completion": "more"}"#])
        XCTAssertEqual(without.examplesTeachingEOS(eosIds: [2]), 0)  // the prompt's EOS carries no loss
        XCTAssertFalse(without.completionsContainEOS(eosIds: [2]))
        let with = try dataset([#"{"prompt": "Q", "completion": "answer$"}"#, #"{"prompt": "Q", "completion": "more"}"#])
        XCTAssertEqual(with.examplesTeachingEOS(eosIds: [2]), 1)
        XCTAssertTrue(with.completionsContainEOS(eosIds: [2]))
        XCTAssertTrue(with.completionsContainEOS(eosIds: [2, 99]))
        // Truncated away: BOS Q a n s w e r $ is 9 positions.
        XCTAssertFalse(with.completionsContainEOS(eosIds: [2], seqLen: 8))
        XCTAssertTrue(with.completionsContainEOS(eosIds: [2], seqLen: 9))
        // Other formats never warn.
        XCTAssertTrue(try dataset([#"{"text": "plain"}"#], format: .text).completionsContainEOS(eosIds: [2]))
    }

    /// What the initializer would trap on is named first, so callers can refuse it.
    func testProblemsAreNamedBeforeTheLoaderIsBuilt() {
        let masked = Dataset.Example(ids: [1, 2, 3], labels: [-100, -100, -100])
        let firstOnly = Dataset.Example(ids: [1, 2, 3], labels: [1, -100, -100])
        let lateLabel = Dataset.Example(ids: [1, 2, 3], labels: [-100, -100, 3])
        let empty = Dataset.Example(ids: [], labels: [])
        XCTAssertEqual(DataLoader.problem(examples: [], mode: .truncate, seqLen: 4), "has no example")
        XCTAssertNotNil(DataLoader.problem(examples: [empty, empty], mode: .pack, seqLen: 4))
        XCTAssertNotNil(DataLoader.problem(examples: [empty], mode: .truncate, seqLen: 4))
        XCTAssertNotNil(DataLoader.problem(examples: [masked], mode: .truncate, seqLen: 4))
        XCTAssertNotNil(DataLoader.problem(examples: [masked], mode: .pack, seqLen: 4))
        XCTAssertNotNil(DataLoader.problem(examples: [firstOnly], mode: .truncate, seqLen: 4))
        // Truncation to 2 cuts the only label at position 2 away.
        XCTAssertNotNil(DataLoader.problem(examples: [lateLabel], mode: .truncate, seqLen: 2))
        XCTAssertNil(DataLoader.problem(examples: [lateLabel], mode: .truncate, seqLen: 3))
        XCTAssertNil(DataLoader.problem(examples: [empty, lateLabel], mode: .pack, seqLen: 2))
        XCTAssertNotNil(DataLoader.problem(examples: [Dataset.Example(ids: [1, 2], labels: [1])], mode: .pack, seqLen: 4))

        let loader = DataLoader(examples: Self.examples([3, 5]), mode: .pack, microBatch: 1, seqLen: 4, seed: 1)
        XCTAssertNil(loader.problem(position: .init(epoch: 7, index: 1, offset: 0)))
        XCTAssertNotNil(loader.problem(position: .init(epoch: 0, index: 2, offset: 0)))
        XCTAssertNotNil(loader.problem(position: .init(epoch: -1, index: 0, offset: 0)))
        XCTAssertNotNil(loader.problem(position: .init(epoch: 0, index: 0, offset: 5)), "no example has 6 tokens")
        let order = loader.permutation(epoch: 0)
        let longer = order.firstIndex(of: 1)!
        XCTAssertNil(loader.problem(position: .init(epoch: 0, index: longer, offset: 4)))
        XCTAssertNotNil(loader.problem(position: .init(epoch: 0, index: 1 - longer, offset: 3)))
    }
}
