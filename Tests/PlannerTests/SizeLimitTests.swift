import Foundation
import XCTest
@testable import MemoryPlanner

/// Absurd shapes and workloads are typed errors, never traps (an overflow trap here would kill
/// the test process, as it killed the daemon); real models still plan, to the same numbers.
final class SizeLimitTests: XCTestCase {
    let huge = 1 << 62

    func expectSizeError(_ expected: SizeError, _ body: @autoclosure () throws -> Any, _ message: String = "", line: UInt = #line) {
        XCTAssertThrowsError(try body(), message, line: line) { error in
            XCTAssertEqual(error as? SizeError, expected, message, line: line)
        }
    }

    func testCheckedSizeRefusesWhatIntWouldTrapOn() throws {
        XCTAssertEqual(try (CheckedSize(3) * 4 + 5).value, 17)
        XCTAssertThrowsError(try CheckedSize(Int.max) + 1)
        XCTAssertThrowsError(try CheckedSize(1 << 32) * (1 << 32))
        XCTAssertThrowsError(try CheckedSize.sum([CheckedSize(Int.max), CheckedSize(1)]))
        // A value that counts but passes the plan limit is refused by name, as an overflow is.
        XCTAssertEqual(try CheckedSize(SizeLimits.planBytes).named("x"), SizeLimits.planBytes)
        expectSizeError(.overflow(what: "x"), try CheckedSize(SizeLimits.planBytes + 1).named("x"))
        expectSizeError(.overflow(what: "y"), try CheckedSize.named("y") { try CheckedSize(1 << 40) * (1 << 40) })
    }

    /// One width at a time past its limit: the error names the config.json field.
    func testAbsurdShapesAreRefusedByField() throws {
        let base = ModelShape.llama2_7B
        func with(_ change: (inout ModelShape) -> Void) -> ModelShape { var s = base; change(&s); return s }
        let layer = base.layers[0]
        let rows: [(ModelShape, String, Int)] = [
            (with { $0.hidden = huge }, "hidden_size", huge),
            (with { $0.hidden = 1_000_000_000_000_000 }, "hidden_size", 1_000_000_000_000_000),
            (with { $0.headDim = huge }, "head_dim", huge),
            (with { $0.vocab = huge }, "vocab_size", huge),
            (with { $0.layers[3].heads = 1_000_000_000_000_000 }, "num_attention_heads", 1_000_000_000_000_000),
            (with { $0.layers[0].kvHeads = huge }, "num_key_value_heads", huge),
            (with { $0.layers[31].intermediate = huge }, "intermediate_size", huge),
            (with { $0.layers = Array(repeating: layer, count: SizeLimits.layers + 1) }, "num_hidden_layers", SizeLimits.layers + 1),
            (with { $0.vocab = 0 }, "vocab_size", 0),
        ]
        for (shape, field, value) in rows {
            let limit: Int = ["hidden_size": SizeLimits.hidden, "head_dim": SizeLimits.headDim, "vocab_size": SizeLimits.vocab,
                              "num_attention_heads": SizeLimits.heads, "num_key_value_heads": SizeLimits.heads,
                              "intermediate_size": SizeLimits.intermediate, "num_hidden_layers": SizeLimits.layers][field]!
            let expected = SizeError.overLimit(field: field, value: value, limit: limit)
            expectSizeError(expected, try MemoryPlan(original: shape, workload: Workload(kind: .train, seqLen: 8)), field)
            expectSizeError(expected, try MemoryPlan(original: shape, workload: Workload(kind: .generate, seqLen: 8)), field)
            expectSizeError(expected, try ImportancePlan(original: shape), field)
        }
        // Every width within its limit, together past the parameter limit.
        let giant = ModelShape(hidden: SizeLimits.hidden, intermediate: SizeLimits.intermediate, layerCount: SizeLimits.layers,
                               heads: 8, kvHeads: 8, headDim: 128, vocab: SizeLimits.vocab)
        XCTAssertThrowsError(try giant.checkSizes()) { error in
            guard case .overLimit("parameters", _, SizeLimits.parameters)? = error as? SizeError else { return XCTFail("\(error)") }
        }
        // Widths at their limits whose parameters pass Int itself: an overflow, not a trap.
        let widest = ModelShape(hidden: SizeLimits.hidden, intermediate: SizeLimits.intermediate, layerCount: SizeLimits.layers,
                                heads: SizeLimits.heads, kvHeads: SizeLimits.heads, headDim: SizeLimits.headDim, vocab: SizeLimits.vocab)
        XCTAssertThrowsError(try widest.parameterCount) { XCTAssertNotNil($0 as? SizeError) }
        XCTAssertThrowsError(try MemoryPlan(original: widest, workload: Workload(kind: .train, seqLen: 8))) { XCTAssertNotNil($0 as? SizeError) }
    }

    /// One workload setting at a time past its limit: the error names the setting.
    func testAbsurdWorkloadsAreRefusedBySetting() throws {
        let lora = Workload.LoRA(r: 8, targets: LoRATarget.decoder)
        let rows: [(Workload, SizeError)] = [
            (Workload(kind: .train, seqLen: huge, lora: lora), .overLimit(field: "seqLen", value: huge, limit: SizeLimits.seqLen)),
            (Workload(kind: .train, seqLen: 1_000_000_000, lora: lora), .overLimit(field: "seqLen", value: 1_000_000_000, limit: SizeLimits.seqLen)),
            (Workload(kind: .train, microBatch: huge, seqLen: 8), .overLimit(field: "microBatch", value: huge, limit: SizeLimits.microBatch)),
            (Workload(kind: .train, seqLen: 8, gradAccum: huge), .overLimit(field: "gradAccum", value: huge, limit: SizeLimits.gradAccum)),
            (Workload(kind: .train, seqLen: 8, lora: .init(r: huge, targets: [.q])), .overLimit(field: "lora.r", value: huge, limit: SizeLimits.loraRank)),
            (Workload(kind: .generate, seqLen: 8, newTokens: huge), .overLimit(field: "newTokens", value: huge, limit: SizeLimits.seqLen - 8)),
            (Workload(kind: .generate, seqLen: 8, newTokens: -1), .overLimit(field: "newTokens", value: -1, limit: SizeLimits.seqLen - 8)),
            (Workload(kind: .train, microBatch: 0, seqLen: 8), .overLimit(field: "microBatch", value: 0, limit: SizeLimits.microBatch)),
        ]
        for (workload, expected) in rows {
            expectSizeError(expected, try MemoryPlan(original: .llama31_70B, workload: workload), "\(expected)")
            XCTAssertNil(PlanSearch.fit(original: .llama31_70B, pruning: nil, workload: workload, capBytes: 1 << 40))
        }
        expectSizeError(.overLimit(field: "seqLen", value: huge, limit: SizeLimits.seqLen), try ImportancePlan(original: .llama2_7B, seqLen: huge))
    }

    /// Settings each within their limits whose buffers overflow together: the seqLen 1e6 ×
    /// microBatch 1000 on the 70B preset (its attention scores alone pass 2^62 bytes), and others.
    func testCombinationsThatOverflowAreTypedErrors() throws {
        let lora = Workload.LoRA(r: 8, targets: LoRATarget.decoder)
        let rows: [(ModelShape, Workload)] = [
            (.llama31_70B, Workload(kind: .train, microBatch: 1000, seqLen: 1_000_000, lora: lora)),
            (.llama31_70B, Workload(kind: .train, microBatch: 1000, seqLen: 1_000_000, lora: lora, checkpointing: true)),
            (.llama2_7B, Workload(kind: .train, microBatch: SizeLimits.microBatch, seqLen: SizeLimits.seqLen)),
            (.llama2_7B, Workload(kind: .generate, microBatch: SizeLimits.microBatch, seqLen: SizeLimits.seqLen / 2, newTokens: SizeLimits.seqLen / 2)),
        ]
        for (shape, workload) in rows {
            XCTAssertThrowsError(try MemoryPlan(original: shape, workload: workload), "\(workload)") { error in
                guard case .overflow(let what)? = error as? SizeError else { return XCTFail("\(error)") }
                XCTAssertFalse(what.isEmpty, "the error names what overflowed")
            }
        }
        XCTAssertThrowsError(try ImportancePlan(original: .llama31_70B, microBatch: SizeLimits.microBatch, seqLen: SizeLimits.seqLen)) {
            XCTAssertNotNil($0 as? SizeError)
        }
        // The search shrinks what does not fit, from a workload it can count, to one that fits.
        let suggestion = PlanSearch.fit(original: .llama31_70B, pruning: nil,
                                        workload: Workload(kind: .train, microBatch: 1000, seqLen: 1_000_000, lora: lora), capBytes: 1 << 40)
        XCTAssertLessThanOrEqual(try XCTUnwrap(suggestion).plan.peakBytes, 1 << 40)
    }

    /// The largest real models and contexts plan: 405B's widths, Gemma's vocabulary, a 10M-token
    /// generation; the presets' numbers are PaperNumbersTests' and MemoryPlanTests'.
    func testRealModelsAreWithinTheLimits() throws {
        let llama405B = ModelShape(hidden: 16384, intermediate: 53248, layerCount: 126, heads: 128, kvHeads: 8, vocab: 128_256)
        XCTAssertNoThrow(try llama405B.checkSizes())
        XCTAssertEqual(try llama405B.parameterCount, 405_853_388_800)
        let gemmaVocab = ModelShape(hidden: 3072, intermediate: 24576, layerCount: 28, heads: 16, kvHeads: 16, headDim: 256, vocab: 256_000, tiedEmbeddings: true)
        XCTAssertNoThrow(try MemoryPlan(original: gemmaVocab, workload: Workload(kind: .train, seqLen: 8192, lora: .init(r: 16, targets: LoRATarget.decoder))))
        let longContext = try MemoryPlan(original: llama405B, workload: Workload(kind: .generate, seqLen: 10_000_000, baseDType: .nf4, newTokens: 1000))
        // KV cache: 2 × 126 layers × 8 kv heads × 128 dims × 4 bytes per position.
        let kvBytesPerPosition = 2 * 126 * 8 * 128 * 4
        XCTAssertEqual(longContext.breakdown[.kvCache], kvBytesPerPosition * 10_001_000)
        for (name, shape) in ModelShape.presets {
            XCTAssertNoThrow(try shape.checkSizes(), name)
            XCTAssertNoThrow(try MemoryPlan(original: shape, workload: Workload(kind: .train, microBatch: 8, seqLen: 131_072,
                                                                              lora: .init(r: 64, targets: LoRATarget.decoder), checkpointing: true)), name)
        }
    }

    /// Placement stays exact near the plan limit (size × lifetime passed Int in one of its orders),
    /// and a program past the limit is refused by `validate`.
    func testPlacementNearThePlanLimit() throws {
        var program = StepProgram()
        let a = program.buffer("a", kind: .activation, bytes: 1 << 60)
        let b = program.buffer("b", kind: .activation, bytes: 1 << 60)
        let c = program.buffer("c", kind: .workspace, bytes: 1 << 61)
        program.op("one", creates: [a, b])
        program.op("two", creates: [c], reads: [a], releases: [a, b])
        program.op("three", reads: [c])
        program.op("four", reads: [c])
        program.op("five", reads: [c], releases: [c])
        let placement = try BestFitPlacement(program, stopAtLowerBound: false)
        try placement.verify()
        XCTAssertEqual(placement.peak, (1 << 61) + (1 << 61))
        program.buffers[c].bytes = (1 << 62) - (1 << 61) + 1
        XCTAssertThrowsError(try program.validate()) { XCTAssertEqual($0 as? SizeError, .overflow(what: "the step's buffers together")) }
    }

    /// Random shapes and workloads, sizes log-uniform from 1 to a little (widths) or far (up to 2^62)
    /// past their limits: every one plans or throws a
    /// SizeError (or a PruningError for a ratio the shape cannot take); none traps.
    func testRandomSizesPlanOrThrowTypedErrors() throws {
        var random = SplitMix64(seed: 14)
        func size(_ bits: Int = 62) -> Int { let b = Int(random.next() % UInt64(bits + 1)); return 1 + Int(random.next() % (UInt64(1) << UInt64(b))) }
        var planned = 0, refused = 0
        for _ in 0..<1500 {
            let wide = random.next() % 4 == 0
            let heads = size(wide ? 62 : 15), kvHeads = random.next() % 2 == 0 ? heads : 1
            let shape = ModelShape(hidden: size(wide ? 62 : 21), intermediate: size(wide ? 62 : 23), layerCount: 1 + Int(random.next() % 4),
                                   heads: heads, kvHeads: kvHeads, headDim: size(wide ? 62 : 15), vocab: size(wide ? 62 : 25),
                                   tiedEmbeddings: random.next() % 2 == 0)
            let kind: Workload.Kind = random.next() % 2 == 0 ? .train : .generate
            let lora = random.next() % 2 == 0 ? Workload.LoRA(r: size(wide ? 62 : 17), targets: Set(LoRATarget.allCases)) : nil
            let workload = Workload(kind: kind, microBatch: size(wide ? 62 : 17), seqLen: size(wide ? 62 : 27), gradAccum: size(wide ? 62 : 21), lora: lora,
                                    baseDType: [.f32, .bf16, .nf4][Int(random.next() % 3)], checkpointing: random.next() % 2 == 0,
                                    newTokens: kind == .generate ? size(wide ? 62 : 27) : 0)
            let pruning: Pruning? = random.next() % 3 == 0 ? .structured(ratio: 0.5) : nil
            do {
                let plan = try MemoryPlan(original: shape, pruning: pruning, workload: workload)
                XCTAssertGreaterThanOrEqual(plan.peakBytes, plan.lowerBoundBytes)
                XCTAssertLessThanOrEqual(plan.peakBytes, SizeLimits.planBytes + 64 * plan.program.buffers.count)
                _ = PlanSearch.fit(original: shape, pruning: pruning, workload: workload, capBytes: 1 << 34)
                planned += 1
            } catch is SizeError {
                refused += 1
            } catch is PruningError {
                refused += 1
            }
        }
        print("SizeLimitTests: \(planned) random plans, \(refused) refused")
        XCTAssertGreaterThan(planned, 100, "many random sizes are plannable")
        XCTAssertGreaterThan(refused, 500, "many random sizes are absurd")
    }
}
