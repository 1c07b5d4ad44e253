import Foundation
import MemoryPlanner

/// A step's planned arena, handing out the runtime's buffers as views into the planned buffers:
/// each planned buffer (e.g. "layers.3.saved") is carved, in a fixed order, into the step's
/// sub-buffers, and must be used exactly to its last byte, so the plan and the code cannot drift.
public final class PlannedBuffers: @unchecked Sendable {
    public let placement: BestFitPlacement
    public let arena: PlanArena
    private let indexByName: [String: Int]
    private var used: [Int: Int] = [:]

    public convenience init(_ program: StepProgram) throws {
        try self.init(placement: try BestFitPlacement(program.transientOnly()))
    }

    /// An arena for a placement already made of a program's transient buffers (`transientOnly`).
    public init(placement: BestFitPlacement) throws {
        precondition(!placement.program.buffers.contains(where: \.persistent), "place the transient part of the program")
        self.placement = placement
        arena = try PlanArena(placement)
        indexByName = Dictionary(uniqueKeysWithValues: placement.program.buffers.enumerated().map { ($0.element.name, $0.offset) })
    }

    /// The transient peak the step runs in.
    public var peakBytes: Int { placement.peak }

    func take(_ name: String, floats count: Int) -> UnsafeMutablePointer<Float> {
        guard let index = indexByName[name] else { preconditionFailure("the plan has no buffer \(name)") }
        let offset = used[index, default: 0]
        let bytes = placement.program.buffers[index].bytes
        precondition(offset + count * 4 <= bytes, "\(name): the step uses more than the \(bytes) bytes planned")
        used[index] = offset + count * 4
        return (arena.pointer(for: index) + offset).assumingMemoryBound(to: Float.self)
    }

    func checkFullyUsed() {
        for (index, buffer) in placement.program.buffers.enumerated() {
            precondition(used[index, default: 0] == buffer.bytes, "\(buffer.name): planned \(buffer.bytes) bytes, the step uses \(used[index, default: 0])")
        }
    }
}
