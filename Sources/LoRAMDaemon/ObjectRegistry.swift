import Foundation
import RPC

/// A daemon object a client names by an opaque handle: a model, an adapter or a training job.
protocol LiveObject: AnyObject {
    var handle: String { get }
    /// What `model/list` shows of it.
    var listing: JSONValue { get }
}

/// The live models, adapters and jobs, by handle. Handles are never reused within a process, so
/// a stale handle is NotFound rather than silently naming something else.
final class ObjectRegistry: @unchecked Sendable {
    enum Kind: String { case model, adapter, job }

    private let lock = NSLock()
    private var objects: [Kind: [String: LiveObject]] = [:]
    private var counters: [Kind: Int] = [:]

    func newHandle(_ kind: Kind) -> String {
        lock.lock(); defer { lock.unlock() }
        counters[kind, default: 0] += 1
        return "\(kind.rawValue)-\(counters[kind]!)"
    }

    func insert(_ object: LiveObject, as kind: Kind) {
        lock.lock(); objects[kind, default: [:]][object.handle] = object; lock.unlock()
    }

    @discardableResult
    func remove(_ handle: String, kind: Kind) -> LiveObject? {
        lock.lock(); defer { lock.unlock() }
        return objects[kind]?.removeValue(forKey: handle)
    }

    func lookup(_ handle: String, kind: Kind) throws -> LiveObject {
        lock.lock(); defer { lock.unlock() }
        guard let object = objects[kind]?[handle] else {
            throw RPCError.notFound("\(kind.rawValue) '\(handle)'", hint: "'model/list' shows the \(kind.rawValue)s that are live.")
        }
        return object
    }

    /// The live objects of `kind`, by handle.
    func objects(_ kind: Kind) -> [LiveObject] {
        lock.lock(); defer { lock.unlock() }
        return (objects[kind] ?? [:]).values.sorted { $0.handle < $1.handle }
    }

    func listings(_ kind: Kind) -> [JSONValue] {
        lock.lock(); defer { lock.unlock() }
        return (objects[kind] ?? [:]).values.sorted { $0.handle < $1.handle }.map(\.listing)
    }
}

extension ObjectRegistry {
    /// Registers `object` unless model `modelId` is gone (or going: `model/unload` takes the same
    /// lock), so no adapter or derived model outlives the model it needs.
    func insert(_ object: LiveObject, as kind: Kind, whileModelLives modelId: String) throws {
        Daemon.adapterLifecycle.lock(); defer { Daemon.adapterLifecycle.unlock() }
        _ = try model(modelId)
        insert(object, as: kind)
    }

    /// The live adapters of model `modelId`.
    func adapters(of modelId: String) -> [LoadedAdapter] {
        objects(.adapter).compactMap { $0 as? LoadedAdapter }.filter { $0.modelId == modelId }
    }

    /// Runs `remove` (the unloading of model `modelId`) unless adapters still use the model.
    func removeModelUnlessAdapted(_ modelId: String, _ remove: () -> Void) throws {
        Daemon.adapterLifecycle.lock(); defer { Daemon.adapterLifecycle.unlock() }
        let live = adapters(of: modelId).map(\.handle)
        guard live.isEmpty else {
            throw RPCError.invalidParams(field: "modelId", "has live adapters: \(live.joined(separator: ", "))",
                                         hint: "Unload them first with 'adapter/unload' (save them with 'adapter/save' to keep them).")
                .with("adapters", .array(live.map { .string($0) }))
        }
        remove()
    }
}
