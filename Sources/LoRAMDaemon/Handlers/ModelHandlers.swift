import RPC

/// `model/list` (and, as the runtime grows, the rest of the `model/…` family).
extension Daemon {
    struct ModelListResult: Encodable {
        var models: [JSONValue]
        var adapters: [JSONValue]
        var jobs: [JSONValue]
        var memory: JSONValue
    }

    func registerModels() {
        router.register("model/list") { [unowned self] (_: NoParams, _) -> ModelListResult in
            ModelListResult(models: registry.listings(.model), adapters: registry.listings(.adapter),
                            jobs: registry.listings(.job), memory: ledger.summary)
        }
    }
}
