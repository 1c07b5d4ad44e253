import Foundation
import RPC
import Runtime

/// `dataset` params (`{path, format, trainOnInputs?}`) as requests give them.
struct DatasetParam: Decodable {
    var path: String
    var format: String
    var trainOnInputs: Bool?
}

extension DatasetParam {
    /// Back to a dataset param as a request would give it.
    var json: JSONValue {
        .object([("path", .string(path)), ("format", .string(format))] + (trainOnInputs.map { [("trainOnInputs", JSONValue.bool($0))] } ?? []))
    }
}

/// Reads a dataset param into examples for training, evaluation, calibration and the pipeline.
enum DatasetReader {
    /// The dataset `param` names, tokenized for `model`; FormatError (with the line) before any step,
    /// InvalidParams naming `field.format` or `field.path`.
    static func read(_ param: DatasetParam, field: String, model: LoadedModel) throws -> Dataset {
        guard let format = Dataset.Format(rawValue: param.format) else {
            throw RPCError.invalidParams(field: "\(field).format", "must be text, prompt_completion or tokens, got '\(param.format)'")
        }
        let url = try PathParam.existingFile(param.path, field: "\(field).path")
        return try ErrorMapping.translating {
            try Dataset(url: url, format: format, encoder: model.tokenizer, vocabSize: model.model.config.vocabSize,
                        trainOnInputs: param.trainOnInputs ?? false)
        }
    }
}
