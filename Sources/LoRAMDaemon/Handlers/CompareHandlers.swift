import Foundation
import RPC
import Runtime

/// `model/compare`: decoded here, measured by `InferenceService.compare`.
extension Daemon {
    struct CompareParams: Decodable {
        var modelId: String
        var otherModelId: String
        var dataset: DatasetParam
        @SizeIfGiven<SizeBounds.SeqLen> var seqLen: Int?
        @SizeIfGiven<SizeBounds.Samples> var maxSamples: Int?
    }

    /// A calibration sample's defaults: 8 rows of 128 tokens (about 2 s for SmolLM2 in a release build).
    static let compareDefaultSeqLen = 128
    static let compareDefaultSamples = 8
    /// Steps `align: true` runs (loram/run); the suggestions quote it.
    static let defaultAlignSteps = 80

    func registerCompare() {
        router.register("model/compare") { [unowned self] (params: CompareParams, context) -> CompareResult in
            let reference = try model(params.modelId)
            let other = try model(params.otherModelId, field: "otherModelId")
            return try inference.compare(reference: reference, other: other, dataset: params.dataset, seqLen: params.seqLen,
                                         maxSamples: params.maxSamples, alignedSteps: nil, context: context)
        }
    }
}
