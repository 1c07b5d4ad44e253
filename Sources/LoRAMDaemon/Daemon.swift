import Foundation
import RPC

/// The daemon's state shared by all handlers: the settings fixed by `initialize`, the registry of
/// live objects and the memory ledger. Handler families extend it with their `register…` methods.
final class Daemon: @unchecked Sendable {
    struct Settings {
        var debugMethods = false
    }

    let settings: Settings
    let registry = ObjectRegistry()
    let ledger: MemoryLedger
    let router = Router()
    /// The services the handlers (and `loram/run`) call.
    let training: TrainingService
    let inference: InferenceService
    let pruning: PruningService
    let planning: PlanningService
    let models: ModelService
    let adapters: AdapterService

    /// Default `hbmCapBytes`: this share of physical memory, leaving room for the OS and the client.
    static let defaultCapFraction = 0.8

    init(settings: Settings) {
        self.settings = settings
        self.ledger = MemoryLedger(capBytes: Int64(Double(ProcessInfo.processInfo.physicalMemory) * Self.defaultCapFraction))
        self.training = TrainingService(registry: registry, ledger: ledger)
        self.inference = InferenceService(registry: registry, ledger: ledger)
        self.pruning = PruningService(registry: registry, ledger: ledger)
        self.planning = PlanningService(registry: registry, ledger: ledger)
        self.models = ModelService(registry: registry, ledger: ledger)
        self.adapters = AdapterService(registry: registry, ledger: ledger)
        registerLifecycle()
        registerModels()
        registerTokenizer()
        registerInference()
        registerTraining()
        registerPlanning()
        registerAdapters()
        registerPruning()
        registerCompare()
        registerPipeline()
        if settings.debugMethods { registerDebug() }
    }
}
