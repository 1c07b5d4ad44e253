import Foundation
import MemoryPlanner

/// A step program placed in its arena: every planned buffer (e.g. "layers.3.attn.q") is a view at
/// its planned offset, taken by the name the program gives it, so the runtime holds no size or
/// buffer of its own and buffers whose lifetimes do not meet share memory.
public final class PlannedBuffers: @unchecked Sendable {
    public let placement: BestFitPlacement
    public let arena: PlanArena
    private let indexByName: [String: Int]

    /// Places the transient part of `program`.
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

    public var program: StepProgram { placement.program }

    /// The transient peak the step runs in.
    public var peakBytes: Int { placement.peak }

    /// The buffer `name` as floats, nil when the program has none by that name.
    public func floats(_ name: String) -> UnsafeMutablePointer<Float>? {
        indexByName[name].map { arena.pointer(for: $0).assumingMemoryBound(to: Float.self) }
    }

    /// The buffer `name`, which the program must have: a missing one means the runtime and the
    /// builder disagree, a bug, not an input error.
    func require(_ name: String) -> UnsafeMutablePointer<Float> {
        guard let pointer = floats(name) else { preconditionFailure("the step program has no buffer \(name)") }
        return pointer
    }

    /// The buffer `name` as 16-bit values (bf16 activations), which the program must have, and
    /// how many it holds.
    func requireHalves(_ name: String) -> (pointer: UnsafeMutablePointer<UInt16>, count: Int) {
        guard let index = indexByName[name] else { preconditionFailure("the step program has no buffer \(name)") }
        return (arena.pointer(for: index).assumingMemoryBound(to: UInt16.self), placement.program.buffers[index].bytes / 2)
    }

    /// How many floats the program gives `name` (0 when it has none).
    public func floatCount(_ name: String) -> Int {
        indexByName[name].map { placement.program.buffers[$0].bytes / 4 } ?? 0
    }
}
