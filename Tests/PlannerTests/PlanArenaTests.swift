import XCTest
@testable import MemoryPlanner

/// Placements hold on real memory: a program run in its arena never sees one buffer's bytes
/// overwritten by another's while it is live.
final class PlanArenaTests: XCTestCase {
    private func pattern(_ buffer: Int) -> UInt8 { UInt8(truncatingIfNeeded: buffer &* 131 &+ 17) }

    /// Walks the program as the runtime would: fills each buffer with its own byte when created
    /// (persistent ones before the first op), and checks the byte everywhere in it on every read
    /// and on release.
    private func simulate(_ program: StepProgram, in memory: PlanArena, file: StaticString = #filePath, line: UInt = #line) {
        func fill(_ b: Int) {
            memory.pointer(for: b).initializeMemory(as: UInt8.self, repeating: pattern(b), count: program.buffers[b].bytes)
        }
        func intact(_ b: Int, at op: Int) -> Bool {
            let bytes = UnsafeRawBufferPointer(start: memory.pointer(for: b), count: program.buffers[b].bytes)
            if bytes.allSatisfy({ $0 == pattern(b) }) { return true }
            XCTFail("\"\(program.buffers[b].name)\" was overwritten before op \(op) \"\(program.ops[op].name)\"", file: file, line: line)
            return false
        }
        for (b, buffer) in program.buffers.enumerated() where buffer.persistent { fill(b) }
        for (index, op) in program.ops.enumerated() {
            for b in op.creates { fill(b) }
            for b in op.reads + op.releases where !intact(b, at: index) { return }
        }
    }

    func testTrainingStepsRunInTheirArenaWithoutClobbering() throws {
        for program in [TracePrograms.stackedTraining(layers: 3), TracePrograms.transformerTraining(layers: 3)] {
            let memory = try PlanArena(try BestFitPlacement(program), arena: try JemallocArena())
            try memory.checkOverlap()
            simulate(program, in: memory)
        }
    }

    func testRandomProgramsRunInTheirArenaWithoutClobbering() throws {
        var random = SplitMix64(seed: 99)
        let arena = try JemallocArena()
        for _ in 0..<200 {
            let program = TracePrograms.random(count: Int.random(in: 1...40, using: &random), ops: Int.random(in: 1...30, using: &random),
                                               largestLog2: 16, outliers: false, using: &random)
            for alignment in [1, 64] {
                let memory = try PlanArena(try BestFitPlacement(program, alignment: alignment), arena: arena)
                try memory.checkOverlap()
                simulate(program, in: memory)
            }
        }
    }

    func testTheArenaHoldsExactlyTheRegion() throws {
        let arena = try JemallocArena()
        let placement = try BestFitPlacement(TracePrograms.stackedTraining(layers: 2))
        do {
            let memory = try PlanArena(placement, arena: arena)
            XCTAssertGreaterThanOrEqual(memory.usableSize, placement.peak)
            XCTAssertEqual(arena.allocatedBytes, memory.usableSize)
            XCTAssertEqual(Int(bitPattern: memory.pointer(for: 0)) % 64, 0)
            XCTAssertEqual(memory.pointer(for: 1) - memory.base, placement.offsets[1])
        }
        XCTAssertEqual(arena.allocatedBytes, 0, "the region goes back to jemalloc with the PlanArena")
    }

    func testAnEmptyPlanStillHasARegion() throws {
        let memory = try PlanArena(try BestFitPlacement(StepProgram()), arena: try JemallocArena())
        XCTAssertEqual(memory.placement.peak, 0)
        XCTAssertNoThrow(try memory.checkOverlap())
    }
}
