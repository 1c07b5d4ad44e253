import Foundation
import RPC

/// The bytes charged against `hbmCapBytes`: every loaded model, adapter and open job holds a
/// charge from creation until it is unloaded or closed. Charging first and allocating after is
/// what lets a request be refused with OverBudget before anything is allocated.
final class MemoryLedger: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var capBytes: Int64
    private var charges: [String: Int64] = [:]
    private var peak: Int64 = 0

    init(capBytes: Int64) { self.capBytes = capBytes }

    var usedBytes: Int64 { lock.lock(); defer { lock.unlock() }; return charges.values.reduce(0, +) }
    var peakBytes: Int64 { lock.lock(); defer { lock.unlock() }; return peak }

    func setCap(_ bytes: Int64) { lock.lock(); capBytes = bytes; lock.unlock() }

    /// Charges `bytes` to `owner`, or throws OverBudget and charges nothing.
    func charge(_ bytes: Int64, to owner: String, breakdown: JSONValue = .object([])) throws {
        lock.lock(); defer { lock.unlock() }
        let used = charges.values.reduce(0, +)
        guard used + bytes <= capBytes else {
            throw RPCError(.overBudget, "Over budget: \(owner) needs \(bytes) bytes, \(capBytes - used) of \(capBytes) are free",
                           hint: "Unload a model or close a job, or raise the memory cap (hbmCapBytes in 'initialize'; --cap on loram's command line).",
                           data: [("needBytes", .int(used + bytes)), ("capBytes", .int(capBytes)),
                                  ("breakdown", breakdown), ("suggestion", .null)])
        }
        charges[owner, default: 0] += bytes
        peak = max(peak, used + bytes)
    }

    func release(_ owner: String) { lock.lock(); charges[owner] = nil; lock.unlock() }

    var summary: JSONValue {
        .object([("capBytes", .int(capBytes)), ("usedBytes", .int(usedBytes)), ("peakBytes", .int(peakBytes))])
    }
}

extension MemoryLedger {
    /// Charges `bytes` to `handle`, runs `body`, and gives the charge back if it fails.
    func charged<T>(_ bytes: Int, to handle: String, kind: String, _ body: () throws -> T) throws -> T {
        try charge(Int64(bytes), to: handle, breakdown: .object([(kind, .int(Int64(bytes)))]))
        do { return try body() } catch {
            release(handle)
            throw error
        }
    }
}
