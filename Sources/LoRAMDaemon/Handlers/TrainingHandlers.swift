import Foundation
import RPC

/// `train/create`, `train/step`, `train/run`, `train/save`, `train/resume`, `train/close`: decoded
/// here, done by `TrainingService`.
extension Daemon {
    struct JobRef: Decodable { var jobId: String }
    /// `keepModel` (loramd's): a full-parameter job's trained weights stay as a new model.
    /// `dtype` (with keepModel): the kept model's storage (f32, bf16, f16); absent: as trained (f32).
    struct TrainCloseParams: Decodable { var jobId: String; var keepModel: Bool?; var dtype: String? }
    struct TrainStepParams: Decodable { var jobId: String; @SizeIfGiven<SizeBounds.Steps> var steps: Int? }
    struct TrainRunParams: Decodable {
        var jobId: String
        @SizeIfGiven<SizeBounds.Steps> var evalEvery: Int?
        @SizeIfGiven<SizeBounds.Steps> var saveEvery: Int?
        var outDir: String?
    }
    struct TrainSaveParams: Decodable { var jobId: String; var path: String }
    struct TrainResumeParams: Decodable { var path: String; var modelId: String?; var adapterId: String? }

    func job(_ id: String) throws -> TrainingJobObject { try registry.job(id) }

    func registerTraining() {
        router.register("train/create") { [unowned self] (params: TrainingService.Request, context) in
            try training.create(params, context: context).result
        }
        router.register("train/step") { [unowned self] (params: TrainStepParams, context) in
            try training.step(try job(params.jobId), count: params.steps ?? 1, context: context)
        }
        router.register("train/run") { [unowned self] (params: TrainRunParams, context) in
            try training.run(try job(params.jobId), evalEvery: params.evalEvery, saveEvery: params.saveEvery, outDir: params.outDir, context: context)
        }
        router.register("train/save") { [unowned self] (params: TrainSaveParams, _) in
            try training.save(try job(params.jobId), path: params.path)
        }
        router.register("train/resume") { [unowned self] (params: TrainResumeParams, _) in
            try training.resume(path: params.path, modelId: params.modelId)
        }
        router.register("train/close") { [unowned self] (params: TrainCloseParams, _) in
            try training.close(params.jobId, keepModel: params.keepModel == true, dtype: params.dtype)
        }
    }
}
