import Foundation
import RPC
import Runtime

/// What training needs of a live adapter object.
protocol TrainableAdapterObject: LiveObject {
    var adapter: LoRAAdapter { get }
    var modelId: String { get }
}

/// A training job the client created, with what the daemon needs around it.
final class TrainingJobObject: LiveObject, @unchecked Sendable {
    let handle: String
    let job: TrainingJob
    let model: LoadedModel
    let adapterId: String?
    let dataset: TrainingJob.SavedState.DatasetReference
    let evalExamples: [Dataset.Example]?
    let plannedBytes: Int
    private let lock = NSLock()
    private var busy = false

    init(handle: String, job: TrainingJob, model: LoadedModel, adapterId: String?, dataset: TrainingJob.SavedState.DatasetReference,
         evalExamples: [Dataset.Example]?, plannedBytes: Int) {
        self.handle = handle
        self.job = job
        self.model = model
        self.adapterId = adapterId
        self.dataset = dataset
        self.evalExamples = evalExamples
        self.plannedBytes = plannedBytes
    }

    /// Runs `body` unless another request is using the job (then InvalidParams: it is busy).
    func exclusively<T>(_ body: () throws -> T) throws -> T {
        lock.lock()
        guard !busy else {
            lock.unlock()
            throw RPCError.invalidParams(field: "jobId", "is busy with another request (a train/run or train/step in progress)",
                                         hint: "Wait for it to finish, or cancel it with $/cancelRequest.")
        }
        busy = true
        lock.unlock()
        defer { lock.lock(); busy = false; lock.unlock() }
        return try body()
    }

    /// The step's arena as planned and as jemalloc made it.
    var arenaReport: ArenaReport {
        let arena = job.step.arena
        return ArenaReport(plannedBytes: arena.peakBytes, lowerBoundBytes: arena.placement.lowerBound, measuredBytes: arena.arena.usableSize)
    }

    var listing: JSONValue {
        .object([("jobId", .string(handle)), ("modelId", .string(model.handle)), ("adapterId", adapterId.map(JSONValue.string) ?? .null),
                 ("mode", .string(job.adapter == nil ? "full" : "lora")), ("step", .int(Int64(job.completedSteps))),
                 ("steps", .int(Int64(job.settings.steps))), ("bytes", .int(Int64(plannedBytes)))])
    }
}
extension LoadedAdapter: TrainableAdapterObject {}
