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
}
