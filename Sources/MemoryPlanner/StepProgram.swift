/// What a buffer holds; plans break memory down by it and pictures colour by it.
public enum BufferKind: String, Codable, CaseIterable, Sendable {
    case weight, adapter, gradient, optimizer, activation, kvCache, workspace
}

/// One step (a training step, a prefill, a decode step) as data: an ordered list of ops, each
/// naming the buffers it creates, reads and releases. The planner reads this description and the
/// runtime walks the same ops, so a buffer the program does not name is never allocated.
///
/// ```swift
/// var program = StepProgram()
/// let x = program.buffer("embed.out", kind: .activation, bytes: 4 * T * C)
/// let w = program.buffer("layers.0.attn.q.weight", kind: .weight, bytes: 4 * C * C, persistent: true)
/// let q = program.buffer("layers.0.attn.q", kind: .activation, bytes: 4 * T * C)
/// program.op("embed", creates: [x])
/// program.op("layers.0.attn.q", creates: [q], reads: [x, w], releases: [x])
/// try program.validate()
/// ```
///
/// Rules (`validate()` checks them): the buffers' bytes together stay within `SizeLimits.planBytes`;
/// a transient buffer is created by exactly one op, read only
/// from its creating op on, and released at most once, at or after its creation (a buffer never
/// released lives until the last op that reads it, or to the end when nothing reads it).
/// Persistent buffers live for the whole step: ops may read them but never create or release them.
public struct StepProgram: Codable, Equatable, Sendable {
    /// A named region of memory with a byte size.
    public struct Buffer: Codable, Equatable, Sendable {
        /// llm.c-style, e.g. "layers.3.attn.scores".
        public var name: String
        public var kind: BufferKind
        public var bytes: Int
        /// Lives for the whole step (weights, adapters, optimizer moments, a session's KV cache).
        public var persistent: Bool

        public init(name: String, kind: BufferKind, bytes: Int, persistent: Bool = false) {
            self.name = name
            self.kind = kind
            self.bytes = bytes
            self.persistent = persistent
        }
    }

    /// One operation; buffers are indices into `buffers`.
    public struct Op: Codable, Equatable, Sendable {
        public var name: String
        public var creates: [Int]
        public var reads: [Int]
        public var releases: [Int]
        /// What the runtime runs at this op; nil for programs only planned, never run.
        public var task: StepTask?

        public init(name: String, creates: [Int] = [], reads: [Int] = [], releases: [Int] = [], task: StepTask? = nil) {
            self.name = name
            self.creates = creates
            self.reads = reads
            self.releases = releases
            self.task = task
        }
    }

    public var buffers: [Buffer]
    public var ops: [Op]

    public init(buffers: [Buffer] = [], ops: [Op] = []) {
        self.buffers = buffers
        self.ops = ops
    }

    /// Adds a buffer and returns its index, for use in `op(_:creates:reads:releases:)`.
    @discardableResult
    public mutating func buffer(_ name: String, kind: BufferKind, bytes: Int, persistent: Bool = false) -> Int {
        buffers.append(Buffer(name: name, kind: kind, bytes: bytes, persistent: persistent))
        return buffers.count - 1
    }

    /// Appends an op; it runs after every op appended before it.
    public mutating func op(_ name: String, creates: [Int] = [], reads: [Int] = [], releases: [Int] = [], task: StepTask? = nil) {
        ops.append(Op(name: name, creates: creates, reads: reads, releases: releases, task: task))
    }

    /// Why a program cannot be planned, naming the op and buffer at fault.
    public struct ValidationError: Error, Equatable, CustomStringConvertible {
        public enum Problem: Equatable, Sendable {
            case negativeBytes
            case duplicateName
            case indexOutOfRange(Int)
            case createdTwice(firstBy: String)
            case neverCreated
            case readBeforeCreation
            case readAfterRelease(releasedBy: String)
            case releasedBeforeCreation
            case releasedTwice(firstBy: String)
            case persistentCreatedOrReleased
        }

        public let problem: Problem
        /// The buffer's name (or "#index" when the index itself is bad).
        public let buffer: String
        /// The op's index and name, nil for problems of the buffer list itself.
        public let op: (index: Int, name: String)?

        public static func == (a: ValidationError, b: ValidationError) -> Bool {
            a.problem == b.problem && a.buffer == b.buffer && a.op?.index == b.op?.index && a.op?.name == b.op?.name
        }

        public var description: String {
            let at = op.map { " (op \($0.index) \"\($0.name)\")" } ?? ""
            switch problem {
            case .negativeBytes: return "buffer \"\(buffer)\" has a negative byte size"
            case .duplicateName: return "two buffers are named \"\(buffer)\"; names identify buffers in plans"
            case .indexOutOfRange(let i): return "op names buffer index \(i), outside the program's buffers\(at)"
            case .createdTwice(let first): return "buffer \"\(buffer)\" is created again\(at); op \"\(first)\" created it first"
            case .neverCreated: return "transient buffer \"\(buffer)\" is never created by any op"
            case .readBeforeCreation: return "buffer \"\(buffer)\" is read before any op creates it\(at)"
            case .readAfterRelease(let by): return "buffer \"\(buffer)\" is read after op \"\(by)\" released it\(at)"
            case .releasedBeforeCreation: return "buffer \"\(buffer)\" is released before any op creates it\(at)"
            case .releasedTwice(let first): return "buffer \"\(buffer)\" is released again\(at); op \"\(first)\" released it first"
            case .persistentCreatedOrReleased:
                return "persistent buffer \"\(buffer)\" is created or released\(at); persistent buffers live for the whole step"
            }
        }
    }

    /// Throws the first broken rule, in op order; a `SizeError` when the buffers' bytes together
    /// pass `SizeLimits.planBytes`, which keeps every offset and sum of a placement from overflowing.
    public func validate() throws {
        var names = Set<String>()
        for buffer in buffers {
            if buffer.bytes < 0 { throw ValidationError(problem: .negativeBytes, buffer: buffer.name, op: nil) }
            if !names.insert(buffer.name).inserted { throw ValidationError(problem: .duplicateName, buffer: buffer.name, op: nil) }
        }
        _ = try CheckedSize.named("the step's buffers together") { try CheckedSize.sum(buffers.map { CheckedSize($0.bytes) }) }
        var createdBy = [Int?](repeating: nil, count: buffers.count)
        var releasedBy = [Int?](repeating: nil, count: buffers.count)
        for (index, op) in ops.enumerated() {
            func fail(_ problem: ValidationError.Problem, _ buffer: Int) -> ValidationError {
                ValidationError(problem: problem, buffer: buffers.indices.contains(buffer) ? buffers[buffer].name : "#\(buffer)",
                                op: (index, op.name))
            }
            for b in op.creates + op.reads + op.releases where !buffers.indices.contains(b) {
                throw fail(.indexOutOfRange(b), b)
            }
            for b in op.creates {
                if buffers[b].persistent { throw fail(.persistentCreatedOrReleased, b) }
                if let first = createdBy[b] { throw fail(.createdTwice(firstBy: ops[first].name), b) }
                createdBy[b] = index
            }
            for b in op.reads where !buffers[b].persistent {
                if createdBy[b] == nil { throw fail(.readBeforeCreation, b) }
                if let by = releasedBy[b] { throw fail(.readAfterRelease(releasedBy: ops[by].name), b) }
            }
            for b in op.releases {
                if buffers[b].persistent { throw fail(.persistentCreatedOrReleased, b) }
                if createdBy[b] == nil { throw fail(.releasedBeforeCreation, b) }
                if let first = releasedBy[b] { throw fail(.releasedTwice(firstBy: ops[first].name), b) }
                releasedBy[b] = index
            }
        }
        for (b, buffer) in buffers.enumerated() where !buffer.persistent && createdBy[b] == nil {
            throw ValidationError(problem: .neverCreated, buffer: buffer.name, op: nil)
        }
    }
}

extension StepProgram {
    /// The program without its persistent buffers (weights, adapter, optimizer state live outside
    /// the step's arena); op references to them are dropped, the rest renumbered.
    public func transientOnly() -> StepProgram {
        var newIndex: [Int: Int] = [:]
        var out = StepProgram()
        for (index, buffer) in buffers.enumerated() where !buffer.persistent {
            newIndex[index] = out.buffer(buffer.name, kind: buffer.kind, bytes: buffer.bytes, persistent: false)
        }
        for op in ops {
            out.op(op.name, creates: op.creates.compactMap { newIndex[$0] }, reads: op.reads.compactMap { newIndex[$0] },
                   releases: op.releases.compactMap { newIndex[$0] }, task: op.task)
        }
        return out
    }
}
