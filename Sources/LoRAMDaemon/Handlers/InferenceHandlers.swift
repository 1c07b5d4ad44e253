import Foundation
import RPC
import Runtime

/// `model/forward`, `generate` and `eval/perplexity`: decoded here, run by `InferenceService`.
extension Daemon {
    func registerInference() {
        router.register("model/forward") { [unowned self] (params: InferenceService.ForwardParams, context) in
            try inference.forward(params, context: context)
        }
        router.register("generate") { [unowned self] (params: InferenceService.GenerateParams, context) in
            try inference.generate(params, context: context)
        }
        router.register("eval/perplexity") { [unowned self] (params: InferenceService.PerplexityParams, context) in
            try inference.perplexity(params, context: context)
        }
    }

    /// A session charged while `body` runs (model/compare's two).
    func withSession<T>(_ loaded: LoadedModel, adapter: LoRAAdapter? = nil, capacity: Int, logitsRows: Int = 1, request: RequestContext,
                        ownerTag: String = "", _ body: (InferenceSession) throws -> T) throws -> T {
        try inference.withSession(loaded, adapter: adapter, capacity: capacity, logitsRows: logitsRows, request: request, ownerTag: ownerTag, body)
    }
}
