import Foundation
@testable import Runtime

/// Small valid files the fuzz tests start from, made with the project's own writers.
enum FuzzModels {
    /// Two layers, hidden 16, GQA 2/1, head_dim 8, vocabulary 40: a whole checkpoint in ~20 kB.
    static var microConfig: ModelConfig {
        ModelConfig(hiddenSize: 16, intermediateSize: 24, layerCount: 2, headCount: 2, kvHeadCount: 1,
                    headDim: 8, vocabSize: 40, maxPositionEmbeddings: 64)
    }

    static func microModel(_ config: ModelConfig = microConfig, seed: UInt64 = 1) -> DecoderModel {
        ModelMaker.randomModel(config: config, initialization: .init(seed: seed))
    }

    /// A fresh directory under the temporary folder (the caller removes it).
    static func scratch(_ label: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("loramd-fuzz-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Every regular file of `directory`, by name.
    static func files(of directory: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
            out[name] = try Data(contentsOf: directory.appendingPathComponent(name))
        }
        return out
    }

    /// Replaces `directory`'s files by `files`.
    static func write(_ files: [String: Data], to directory: URL) throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
            try FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
        for (name, data) in files { try data.write(to: directory.appendingPathComponent(name)) }
    }
}
