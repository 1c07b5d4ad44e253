import Foundation
import XCTest
@testable import MemoryPlanner

/// Best-fit placement on random lifetime sets and on hand-made training steps: always safe,
/// never below the lower bound, close to it, and fast.
final class PlacementPropertyTests: XCTestCase {
    /// Checks a placement independently of `verify()`: every pair of buffers, O(n²).
    private func assertSafe(_ placement: BestFitPlacement, file: StaticString = #filePath, line: UInt = #line) {
        let all = placement.placements
        for p in all {
            XCTAssertEqual(p.offset % placement.alignment, 0, "\(p.name) is unaligned", file: file, line: line)
            XCTAssertLessThanOrEqual(p.offset + p.size, placement.peak, file: file, line: line)
            XCTAssertGreaterThanOrEqual(p.size, p.bytes, file: file, line: line)
        }
        for i in all.indices where all[i].size > 0 {
            for j in all.indices[(i + 1)...] where all[j].size > 0 && all[i].lifetime.overlaps(all[j].lifetime) {
                let a = all[i], b = all[j]
                if a.offset < b.offset + b.size && b.offset < a.offset + a.size {
                    XCTFail("\(a.name) and \(b.name) share bytes while both live", file: file, line: line)
                    return
                }
            }
        }
        XCTAssertNoThrow(try placement.verify(), file: file, line: line)
        XCTAssertGreaterThanOrEqual(placement.peak, placement.lowerBound, file: file, line: line)
    }

    func testThousandsOfRandomLifetimeSets() throws {
        var random = SplitMix64(seed: 2025)
        var worst = 1.0, sum = 0.0
        let cases = 3000
        for _ in 0..<cases {
            let count = Int.random(in: 1...60, using: &random)
            let ops = Int.random(in: 1...40, using: &random)
            let program = TracePrograms.random(count: count, ops: ops, using: &random)
            let placement = try BestFitPlacement(program)
            assertSafe(placement)
            worst = max(worst, placement.ratio)
            sum += placement.ratio
        }
        print("random lifetime sets: \(cases) cases, peak / lower bound worst \(worst), mean \(sum / Double(cases))")
        XCTAssertLessThan(worst, 1.5, "best fit should stay near the lower bound")
    }

    func testLargerRandomSetsWithOtherAlignments() throws {
        var random = SplitMix64(seed: 7)
        for alignment in [1, 8, 4096] {
            for _ in 0..<50 {
                let program = TracePrograms.random(count: 300, ops: 200, using: &random)
                assertSafe(try BestFitPlacement(program, alignment: alignment))
            }
        }
    }

    func testATrainingStepWhoseActivationsStackReachesTheLowerBound() throws {
        for layers in [1, 4, 32] {
            let placement = try BestFitPlacement(TracePrograms.stackedTraining(layers: layers))
            assertSafe(placement)
            XCTAssertEqual(placement.peak, placement.lowerBound, "\(layers) layers, order: \(placement.order)")
            XCTAssertEqual(placement.ratio, 1.0)
        }
        // The peak is at the turn from forward to backward: every layer's activations, the logits
        // and their gradient are live.
        let placement = try BestFitPlacement(TracePrograms.stackedTraining(layers: 4))
        let live = Set(placement.liveAtPeak.map(\.name))
        XCTAssertTrue(live.isSuperset(of: ["layers.0.attn.scores", "layers.3.mlp.gate_up", "lm_head.logits", "lm_head.dlogits"]))
        XCTAssertEqual(placement.liveAtPeak.reduce(0) { $0 + $1.size }, placement.lowerBound)
        XCTAssertEqual(placement.liveAtPeak.first?.name, "weights", "largest first")
    }

    func testATrainingStepWithGradientTemporariesStaysNearTheLowerBound() throws {
        // Backward's temporaries outlive the activations they replace (the gradient of a layer's
        // output lives across the MLP backward), which leaves holes best fit cannot always close.
        for layers in [1, 4, 16] {
            let placement = try BestFitPlacement(TracePrograms.transformerTraining(layers: layers))
            assertSafe(placement)
            print("training step with gradient temporaries, \(layers) layers: peak / lower bound \(placement.ratio) (\(placement.order))")
            XCTAssertLessThan(placement.ratio, 1.02)
        }
    }

    func testPersistentBuffersSitContiguouslyAtTheBottom() throws {
        let program = TracePrograms.transformerTraining(layers: 2)
        let placement = try BestFitPlacement(program)
        var next = 0
        for p in placement.placements where p.persistent {
            XCTAssertEqual(p.offset, next, p.name)
            next += p.size
        }
        XCTAssertEqual(next, placement.persistentBytes)
        for p in placement.placements where !p.persistent {
            XCTAssertGreaterThanOrEqual(p.offset, placement.persistentBytes, p.name)
        }
    }

    func testLifetimesFollowCreationReleaseAndLastRead() throws {
        var p = StepProgram()
        let w = p.buffer("w", kind: .weight, bytes: 100, persistent: true)
        let a = p.buffer("a", kind: .activation, bytes: 64)
        let b = p.buffer("b", kind: .activation, bytes: 64)
        let c = p.buffer("c", kind: .activation, bytes: 1)
        p.op("0", creates: [a], reads: [w])
        p.op("1", creates: [b], reads: [a])
        p.op("2", creates: [c], reads: [b], releases: [a])
        p.op("3")
        let lifetimes = try Lifetimes(p, alignment: 64)
        XCTAssertEqual(lifetimes.intervals, [.init(start: 0, end: 3), .init(start: 0, end: 2), .init(start: 1, end: 2),
                                             .init(start: 2, end: 3)])
        XCTAssertEqual(lifetimes.liveBytes, [128 + 64, 128 + 128, 128 + 192, 128 + 64])
        XCTAssertEqual(lifetimes.lowerBound, 320)
        XCTAssertEqual(lifetimes.peakOp, 2)
        XCTAssertEqual(lifetimes.live(at: 2), [w, a, b, c])
    }

    func testAProgramWithoutOpsStillCountsItsPersistentBuffers() throws {
        var p = StepProgram()
        p.buffer("w", kind: .weight, bytes: 1000, persistent: true)
        let placement = try BestFitPlacement(p)
        XCTAssertEqual(placement.peak, 1024)
        XCTAssertEqual(placement.lowerBound, 1024)
        XCTAssertEqual(try BestFitPlacement(StepProgram()).peak, 0)
    }

    func testPlanningTwoAndAHalfThousandBuffersIsFast() throws {
        // 125 layers of 20 buffers each (the count of 80 layers of ~30), shaped like a 70B model.
        let program = TracePrograms.transformerTraining(layers: 125, T: 4096, C: 8192, F: 28672, H: 64, R: 16, V: 128_256)
        XCTAssertGreaterThanOrEqual(program.buffers.count, 2500)
        let clock = ContinuousClock()
        var placement: BestFitPlacement?
        // The best of three runs each: a shared 2-core VM stalls a single run now and then.
        var elapsed = Duration.seconds(3600), everyOrder = Duration.seconds(3600)
        for _ in 0..<3 {
            elapsed = min(elapsed, try clock.measure { placement = try BestFitPlacement(program) })
            // Every order, without stopping at the lower bound: the slow case.
            everyOrder = min(everyOrder, try clock.measure { _ = try BestFitPlacement(program, stopAtLowerBound: false) })
        }
        let placed = try XCTUnwrap(placement)
        print("planning \(program.buffers.count) buffers, \(program.ops.count) ops: \(elapsed) (order \(placed.order), "
              + "ratio \(placed.ratio)); trying all 8 orders: \(everyOrder)")
        // Not speed bounds (a busy machine is many times slower): idle, in a debug build, the best of
        // three took under 0.1 s and every order 0.26-0.36 s (2026-12-02); 3 s and 8 s catch only a
        // change in how placement scales (quadratic in 2,500 buffers is ~100x).
        XCTAssertLessThan(elapsed, .seconds(3))
        XCTAssertLessThan(everyOrder, .seconds(8))
        assertSafe(placed)
    }
}
