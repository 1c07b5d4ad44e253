import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// `ModelComparison` (perplexities and KL(original ‖ carrier)), `CarrierDiagnosis` (the verdict and
/// its suggestions), `DecoderModel.converted(to:)`, and alignment of a tied model untied.
final class CarrierDiagnosticsTests: XCTestCase {
    static func sessions(_ a: DecoderModel, _ b: DecoderModel, capacity: Int) throws -> (InferenceSession, InferenceSession) {
        (try InferenceSession(model: a, capacity: capacity, logitsRows: capacity), try InferenceSession(model: b, capacity: capacity, logitsRows: capacity))
    }

    /// A model against itself: KL 0, the same loss twice, every top-1 agreeing; each loss equals
    /// Perplexity.evaluate's on the same sequences.
    func testAModelAgainstItselfIsAtZeroDistance() throws {
        let model = PruningFixtures.gqaModel()
        let sequences = PruningFixtures.examples(count: 3, length: 12)
        let (a, b) = try Self.sessions(model, model, capacity: 12)
        let result = try ModelComparison.compare(reference: a, other: b, sequences: sequences)
        XCTAssertEqual(result.tokens, 3 * 11)
        XCTAssertEqual(result.klPerToken, 0, accuracy: 1e-12)
        XCTAssertEqual(result.top1Agreement, 1)
        XCTAssertEqual(result.referenceLoss, result.otherLoss)
        XCTAssertEqual(result.perplexityRatio, 1, accuracy: 1e-12)
        let ppl = try Perplexity.evaluate(try InferenceSession(model: model, capacity: 12), sequences: sequences)
        XCTAssertEqual(result.referenceLoss, ppl.loss, accuracy: 1e-9)
        XCTAssertEqual(result.tokens, ppl.tokens)
    }

    /// Against a pruned carrier: the losses are each model's perplexity loss, and KL equals a
    /// direct computation from both models' logits (softmax in double, per position, averaged).
    func testKLAgainstAPrunedCarrierEqualsADirectComputation() throws {
        let model = PruningFixtures.gqaModel()
        let carrier = try StructuredPruner.prune(model, ratio: 0.5, layers: 1..<4, importance: .l2)
        var sequences = PruningFixtures.examples(count: 2, length: 14)
        sequences[1].labels[5] = Dataset.ignoreIndex  // an unlabelled position does not count
        let (a, b) = try Self.sessions(model, carrier, capacity: 14)
        let result = try ModelComparison.compare(reference: a, other: b, sequences: sequences)
        XCTAssertEqual(result.tokens, 2 * 13 - 1)

        var kl = 0.0, lossP = 0.0, lossQ = 0.0
        let vocab = model.config.vocabSize
        for sequence in sequences {
            let p = try PruningFixtures.logits(model, ids: sequence.ids), q = try PruningFixtures.logits(carrier, ids: sequence.ids)
            for t in 0..<(sequence.ids.count - 1) where sequence.labels[t + 1] != Dataset.ignoreIndex {
                func logSoftmax(_ x: [Float]) -> [Double] {
                    let row = x[(t * vocab)..<((t + 1) * vocab)].map(Double.init)
                    let m = row.max()!
                    let z = log(row.reduce(0) { $0 + exp($1 - m) }) + m
                    return row.map { $0 - z }
                }
                let lp = logSoftmax(p), lq = logSoftmax(q)
                kl += zip(lp, lq).reduce(0) { $0 + exp($1.0) * ($1.0 - $1.1) }
                lossP -= lp[sequence.labels[t + 1]]
                lossQ -= lq[sequence.labels[t + 1]]
            }
        }
        let n = Double(result.tokens)
        XCTAssertGreaterThan(result.klPerToken, 1e-3, "the carrier differs")
        XCTAssertEqual(result.klPerToken, kl / n, accuracy: 1e-9 + 1e-6 * kl / n)
        XCTAssertEqual(result.referenceLoss, lossP / n, accuracy: 1e-6)
        XCTAssertEqual(result.otherLoss, lossQ / n, accuracy: 1e-6)
        XCTAssertEqual(result.perplexityRatio, exp(lossQ / n - lossP / n), accuracy: 1e-5)
    }

    func comparison(kl: Double) -> ModelComparison.Result {
        ModelComparison.Result(referenceLoss: 2.5, otherLoss: 2.5 + kl, klPerToken: kl, top1Agreement: 0.5, tokens: 100)
    }

    /// Levels at the documented thresholds, and concrete suggestions for a far, unaligned l2 carrier.
    func testVerdictLevelsAndSuggestions() throws {
        let manifest = try XCTUnwrap(StructuredPruner.prune(PruningFixtures.gqaModel(), ratio: 0.5, layers: 1..<4, importance: .l2).pruning)
        func diagnose(_ kl: Double, aligned: Int? = nil) -> CarrierDiagnosis {
            CarrierDiagnosis(comparison(kl: kl), pruning: manifest, alignedSteps: aligned, layerCount: 5, defaultAlignSteps: 80)
        }
        XCTAssertEqual(diagnose(0).level, .close)
        XCTAssertEqual(diagnose(CarrierDiagnosis.moderateKL).level, .close)
        XCTAssertEqual(diagnose(CarrierDiagnosis.moderateKL + 0.01).level, .moderate)
        XCTAssertEqual(diagnose(CarrierDiagnosis.farKL).level, .moderate)
        XCTAssertEqual(diagnose(CarrierDiagnosis.farKL + 0.01).level, .far)
        XCTAssertEqual(diagnose(.nan).level, .far, "an unmeasurable distance is not called close")
        XCTAssertEqual(diagnose(0.1).suggestions, [])

        let far = diagnose(5.2)
        XCTAssertTrue(far.summary.contains("far"), far.summary)
        XCTAssertEqual(far.suggestions.count, 4, "\(far.suggestions)")
        XCTAssertTrue(far.suggestions[0].contains("align: true (80 steps"), far.suggestions[0])
        XCTAssertTrue(far.suggestions[1].contains("ratio 0.25 instead of 0.50"), far.suggestions[1])
        XCTAssertTrue(far.suggestions[2].contains("layers [1, 4)") || far.suggestions[2].contains("narrower"), far.suggestions[2])
        XCTAssertTrue(far.suggestions[3].contains("taylor"), far.suggestions[3])
        // Aligned already: align longer, by 4×.
        XCTAssertTrue(diagnose(3, aligned: 80).suggestions[0].contains("steps: 320"))
    }

    /// bf16 conversion of an fp32 model: every linear and the embedding narrowed (bytes halved),
    /// values the bf16 rounding of the originals, norms rounded as saved, the manifest kept.
    func testConvertedToBF16() throws {
        let model = try StructuredPruner.prune(PruningFixtures.gqaModel(), ratio: 0.5, layers: 1..<4, importance: .l2)
        let narrow = model.converted(to: .bf16)
        XCTAssertEqual(narrow.parameterCount, model.parameterCount)
        XCTAssertEqual(narrow.storageDType, .bf16)
        XCTAssertEqual(narrow.pruning, model.pruning)
        let normBytes = model.namedNorms().reduce(0) { $0 + $1.values.count * 4 }
        XCTAssertEqual(narrow.byteCount - normBytes, (model.byteCount - normBytes) / 2)
        let bf16 = Weight(rows: model.layers[2].q.rows, cols: model.layers[2].q.cols, dtype: .bf16)
        model.layers[2].q.toArray().withUnsafeBufferPointer { bf16.assign($0.baseAddress!) }
        XCTAssertEqual(narrow.layers[2].q.toArray(), bf16.toArray())
        // Norms take bf16's values (as saved): within bf16's rounding, and rounding them again changes nothing.
        XCTAssertEqual(maxAbsDifference(narrow.finalNorm, model.finalNorm), 0, accuracy: 0.004 * (model.finalNorm.map(abs).max() ?? 1))
        XCTAssertNotEqual(narrow.finalNorm, model.finalNorm)
        XCTAssertEqual(narrow.converted(to: .bf16).finalNorm, narrow.finalNorm)
        XCTAssertTrue(narrow.converted(to: .bf16).layers[0].q === narrow.layers[0].q, "already bf16: shared")
    }

    /// Alignment of a tied carrier untied: the input embedding trains, the output head stays the
    /// original's; the result is untied, remembers its tied original, and an adapter trained on it
    /// recovers onto the tied original.
    func testUntiedAlignmentTrainsTheEmbeddingAndKeepsTheHead() throws {
        var config = PruningFixtures.config(heads: 8, kvHeads: 4)
        config.tiedEmbeddings = true
        let original = ModelMaker.randomModel(config: config, initialization: .init(seed: 4, std: 0.1))
        let carrier = try StructuredPruner.prune(original, ratio: 0.5, layers: 1..<4, importance: .l2)
        var settings = TrainingJob.Settings(seqLen: 12, microBatch: 2, steps: 2, lr: 1e-2)
        settings.frozen = ["lm_head"]
        settings.untieEmbeddings = true
        let job = try TrainingJob(model: carrier, adapter: nil, examples: PruningFixtures.examples(count: 4, length: 12), settings: settings)
        XCTAssertTrue(job.gradients.entries.contains { $0.name == "model.embed_tokens.weight" }, "the embedding trains")
        XCTAssertFalse(job.gradients.entries.contains { $0.name == "lm_head.weight" }, "the head does not")
        _ = job.runStep()
        _ = job.runStep()
        let aligned = job.weights.snapshot(alignment: .init(steps: 2, tokens: 48))
        XCTAssertFalse(aligned.config.tiedEmbeddings)
        XCTAssertEqual(aligned.lmHead.toArray(), original.embedding.toArray(), "the head is the original's")
        XCTAssertNotEqual(aligned.embedding.toArray(), original.embedding.toArray(), "the input embedding moved")
        XCTAssertEqual(aligned.pruning?.originalTiedEmbeddings, true)
        XCTAssertEqual(aligned.pruning?.alignment, .init(steps: 2, tokens: 48))
        XCTAssertEqual(aligned.pruning.map { $0.originalConfig(of: aligned.config).modelShape }, original.config.modelShape)

        // Without untying, lm_head frozen freezes the one tied tensor: nothing of it trains.
        var tiedSettings = settings
        tiedSettings.untieEmbeddings = false
        let tiedJob = try TrainingJob(model: carrier, adapter: nil, examples: PruningFixtures.examples(count: 4, length: 12), settings: tiedSettings)
        XCTAssertFalse(tiedJob.gradients.entries.contains { $0.name == "model.embed_tokens.weight" })

        // Recovery onto the tied original.
        let adapter = LoRAAdapter(config: aligned.config, rank: 2, alpha: 4, targets: Set(LoRATarget.decoder))
        let recovered = try LoRARecovery.recover(adapter: adapter, manifest: try XCTUnwrap(aligned.pruning), target: original.config, fill: .zero)
        XCTAssertEqual(recovered.layers.count, original.config.layerCount)
    }
}

/// `GeneralText`: the default alignment data, from plain-text files under the given roots.
final class GeneralTextTests: XCTestCase {
    func testCollectsPlainTextInPathOrderUpToTheLimit() throws {
        let root = try temporaryDirectory()
        let docs = root.appendingPathComponent("doc/pkg")
        try FileManager.default.createDirectory(at: docs, withIntermediateDirectories: true)
        let a = String(repeating: "alpha beta gamma. ", count: 300)  // 5,400 bytes: three documents
        try Data(a.utf8).write(to: docs.appendingPathComponent("a.txt"))
        try Data(String(repeating: "z", count: 5000).utf8).write(to: docs.appendingPathComponent("b.gz"))  // compressed: skipped
        try Data("short".utf8).write(to: docs.appendingPathComponent("c.txt"))  // under 2 KB: skipped
        try Data([0xFF, 0xFE] + [UInt8](repeating: 0x41, count: 4000)).write(to: docs.appendingPathComponent("d.bin"))  // not UTF-8
        let out = root.appendingPathComponent("out/alignment-text.jsonl")
        let written = try GeneralText.write(to: out, roots: [root.appendingPathComponent("doc").path, "/no/such/root"])
        XCTAssertEqual(written.documents, 3)
        XCTAssertEqual(written.bytes, a.utf8.count)
        XCTAssertEqual(written.sources, [root.appendingPathComponent("doc").path])
        let lines = try String(contentsOf: out, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: String]
        XCTAssertEqual(first["text"]?.count, 2000)
        // The limit cuts after the document that reaches it.
        XCTAssertEqual(try GeneralText.write(to: out, roots: [root.path], maxBytes: 100).documents, 1)
        XCTAssertThrowsError(try GeneralText.write(to: out, roots: ["/no/such/root"]))
    }
}
