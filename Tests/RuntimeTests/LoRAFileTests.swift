import MemoryPlanner
import XCTest
@testable import Runtime

/// PEFT's adapter directory: the golden adapter round trip, the names and dtypes PEFT writes, and
/// every file loramd must refuse (with the error a person can act on).
final class LoRAFileTests: XCTestCase {
    static let golden = LoRAGoldenTests.adapterDirectory

    func tinyModel() throws -> DecoderModel { try DecoderModel.load(directory: Fixtures.tinyModel) }

    func goldenConfig() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: Self.golden.appendingPathComponent("adapter_config.json"))) as! [String: Any]
    }

    /// The golden tensors by name, as fp32.
    func goldenTensors() throws -> [String: (shape: [Int], values: [Float])] {
        let file = try SafetensorsFile(url: Self.golden.appendingPathComponent("adapter_model.safetensors"))
        return file.tensors.mapValues { info in
            var values = [Float](repeating: 0, count: info.elementCount)
            values.withUnsafeMutableBufferPointer { DTypeConversion.toFloat32(file.bytes(of: info).baseAddress!, dtype: info.dtype, count: info.elementCount, into: $0.baseAddress!) }
            return (info.shape, values)
        }
    }

    /// An adapter directory with `config` and `tensors` (stored as `dtype`).
    func writeAdapter(config: [String: Any], tensors: [String: (shape: [Int], values: [Float])], dtype: TensorDType = .f32) throws -> URL {
        let directory = try temporaryDirectory()
        try JSONSerialization.data(withJSONObject: config).write(to: directory.appendingPathComponent("adapter_config.json"))
        let entries = tensors.keys.sorted().map { SafetensorsWriter.Entry.floats($0, tensors[$0]!.values, shape: tensors[$0]!.shape, as: dtype) }
        try SafetensorsWriter().write(entries, to: directory.appendingPathComponent("adapter_model.safetensors"))
        return directory
    }

    func assertFormatError(_ directory: URL, mentions text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try tinyModel()
        XCTAssertThrowsError(try PEFTAdapterFile.load(directory: directory, model: model), file: file, line: line) { error in
            guard let error = error as? FormatError else { return XCTFail("\(error) is not a FormatError", file: file, line: line) }
            XCTAssertTrue(error.problem.contains(text), "\(error) does not mention \(text)", file: file, line: line)
        }
    }

    func configWith(_ changes: [String: Any]) throws -> [String: Any] {
        var config = try goldenConfig()
        for (key, value) in changes { config[key] = value }
        return config
    }

    // MARK: Round trip

    func testTheGoldenAdapterSavesAndLoadsBackIdentically() throws {
        let model = try tinyModel()
        let adapter = try PEFTAdapterFile.load(directory: Self.golden, model: model)
        let out = try temporaryDirectory()
        let files = try PEFTAdapterFile.save(adapter, to: out, baseModelNameOrPath: Fixtures.tinyModel.path)
        XCTAssertEqual(files.map(\.lastPathComponent), ["adapter_config.json", "adapter_model.safetensors"])
        let again = try PEFTAdapterFile.load(directory: out, model: model)
        XCTAssertEqual([again.rank, again.parameterCount], [adapter.rank, adapter.parameterCount])
        XCTAssertEqual(again.alpha, adapter.alpha)
        XCTAssertEqual(again.dropout, adapter.dropout)
        XCTAssertEqual(again.targets, adapter.targets)
        for ((path, pair), (path2, pair2)) in zip(adapter.namedPairs, again.namedPairs) {
            XCTAssertEqual(path, path2)
            XCTAssertEqual(pair.a.toArray(), pair2.a.toArray(), path)
            XCTAssertEqual(pair.b.toArray(), pair2.b.toArray(), path)
        }

        // The same tensor names, shapes and values as PEFT's file, stored F32 with PEFT's metadata.
        let saved = try SafetensorsFile(url: out.appendingPathComponent("adapter_model.safetensors"))
        let original = try goldenTensors()
        XCTAssertEqual(Set(saved.tensors.keys), Set(original.keys))
        XCTAssertEqual(saved.metadata, ["format": "pt"])
        for (name, info) in saved.tensors {
            XCTAssertEqual(info.dtype, .f32)
            XCTAssertEqual(info.shape, original[name]!.shape, name)
        }

        // adapter_config.json has every key PEFT 0.21 writes, with PEFT's values for a causal-LM LoRA.
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(Set(config.keys), Set(try goldenConfig().keys))
        XCTAssertEqual(config["peft_type"] as? String, "LORA")
        XCTAssertEqual(config["task_type"] as? String, "CAUSAL_LM")
        XCTAssertEqual(config["r"] as? Int, 8)
        XCTAssertEqual(config["lora_alpha"] as? Int, 16)
        XCTAssertEqual(config["lora_dropout"] as? Double, 0)
        XCTAssertEqual(config["bias"] as? String, "none")
        XCTAssertEqual(config["target_modules"] as? [String], ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        XCTAssertEqual(config["base_model_name_or_path"] as? String, Fixtures.tinyModel.path)
        for key in ["fan_in_fan_out", "use_rslora", "use_dora", "lora_bias"] { XCTAssertEqual(config[key] as? Bool, false, key) }
        for key in ["inference_mode", "init_lora_weights"] { XCTAssertEqual(config[key] as? Bool, true, key) }
        for key in ["modules_to_save", "layers_to_transform", "revision", "auto_mapping"] { XCTAssertTrue(config[key] is NSNull, key) }
        for key in ["rank_pattern", "alpha_pattern"] { XCTAssertEqual((config[key] as? [String: Any])?.count, 0, key) }
        XCTAssertFalse(out.path.isEmpty)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted(), ["adapter_config.json", "adapter_model.safetensors"],
                       "no temporary files are left behind")
    }

    func testPEFTsInMemoryNamesAndHalfPrecisionLoad() throws {
        var tensors: [String: (shape: [Int], values: [Float])] = [:]
        for (name, tensor) in try goldenTensors() {
            tensors[name.replacingOccurrences(of: ".weight", with: ".default.weight")] = tensor
        }
        let model = try tinyModel()
        let reference = try PEFTAdapterFile.load(directory: Self.golden, model: model)
        for dtype in [TensorDType.bf16, .f16, .f32] {
            let directory = try writeAdapter(config: try goldenConfig(), tensors: tensors, dtype: dtype)
            let adapter = try PEFTAdapterFile.load(directory: directory, model: model)
            let a = adapter.pair(.down, layer: 1)!.a.toArray(), expected = reference.pair(.down, layer: 1)!.a.toArray()
            XCTAssertLessThanOrEqual(maxAbsDifference(a, expected), dtype == .f32 ? 0 : 4e-3 * expected.map(abs).max()!, "\(dtype)")
        }
    }

    // MARK: Files that do not fit the model

    func testAFactorOfTheWrongShapeIsAShapeMismatch() throws {
        var tensors = try goldenTensors()
        let name = "base_model.model.model.layers.1.mlp.up_proj.lora_A.weight"
        tensors[name] = ([8, 65], [Float](repeating: 0.1, count: 8 * 65))
        let model = try tinyModel()
        XCTAssertThrowsError(try PEFTAdapterFile.load(directory: try writeAdapter(config: try goldenConfig(), tensors: tensors), model: model)) { error in
            XCTAssertEqual(error as? AdapterShapeMismatch, AdapterShapeMismatch(tensor: name, expected: [8, 64], found: [8, 65]))
        }
    }

    func testAnAdapterForAnotherModelIsAShapeMismatch() throws {
        // The golden adapter on a model with another MLP width.
        let other = ModelMaker.randomModel(config: ModelConfig(hiddenSize: 64, intermediateSize: 128, layerCount: 2, headCount: 4,
                                                               kvHeadCount: 2, headDim: 16, vocabSize: 512))
        XCTAssertThrowsError(try PEFTAdapterFile.load(directory: Self.golden, model: other)) { error in
            XCTAssertEqual(error as? AdapterShapeMismatch,
                           AdapterShapeMismatch(tensor: "base_model.model.model.layers.0.mlp.gate_proj.lora_B.weight", expected: [128, 8], found: [176, 8]))
        }
        // ... and on a model with fewer layers: tensors for layers it does not have.
        let shallow = ModelMaker.randomModel(config: ModelConfig(hiddenSize: 64, intermediateSize: 176, layerCount: 1, headCount: 4,
                                                                 kvHeadCount: 2, headDim: 16, vocabSize: 512))
        XCTAssertThrowsError(try PEFTAdapterFile.load(directory: Self.golden, model: shallow)) { error in
            let mismatch = error as? AdapterShapeMismatch
            XCTAssertEqual(mismatch?.expected, nil)
            XCTAssertTrue(mismatch?.tensor.contains("model.layers.1.") == true, "\(error)")
        }
        // An adapter built in memory for one model does not fit the other.
        let adapter = try PEFTAdapterFile.load(directory: Self.golden, model: try tinyModel())
        XCTAssertThrowsError(try adapter.checkFits(other)) { XCTAssertTrue($0 is AdapterShapeMismatch) }
        XCTAssertNoThrow(try adapter.checkFits(try tinyModel()))
    }

    func testARankOtherThanTheConfigsIsAFormatError() throws {
        var tensors = try goldenTensors()
        tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"] = ([64, 4], [Float](repeating: 0, count: 256))
        try assertFormatError(try writeAdapter(config: try goldenConfig(), tensors: tensors), mentions: "r = 8")
    }

    // MARK: Missing and surplus tensors, missing files

    func testAMissingTensorIsAFormatErrorNamingIt() throws {
        var tensors = try goldenTensors()
        tensors["base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight"] = nil
        try assertFormatError(try writeAdapter(config: try goldenConfig(), tensors: tensors),
                              mentions: "missing tensor base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight")
        // Targeting lm_head too, with no lm_head tensors in the file.
        try assertFormatError(try writeAdapter(config: try configWith(["target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]]),
                                               tensors: try goldenTensors()),
                              mentions: "missing tensor base_model.model.lm_head.lora_A.weight")
    }

    func testTensorsOutsideTheTargetsAreAFormatError() throws {
        // The config targets q_proj and v_proj only; the file has all seven.
        try assertFormatError(try writeAdapter(config: try configWith(["target_modules": ["q_proj", "v_proj"]]), tensors: try goldenTensors()),
                              mentions: "does not target")
        var tensors = try goldenTensors()
        tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector"] = ([64], [Float](repeating: 1, count: 64))
        try assertFormatError(try writeAdapter(config: try goldenConfig(), tensors: tensors), mentions: "is not a LoRA factor")
    }

    func testMissingFilesAreFormatErrors() throws {
        try assertFormatError(try temporaryDirectory(), mentions: "missing from")
        let noWeights = try temporaryDirectory()
        try FileManager.default.copyItem(at: Self.golden.appendingPathComponent("adapter_config.json"), to: noWeights.appendingPathComponent("adapter_config.json"))
        try assertFormatError(noWeights, mentions: "missing from")
        try Data([0x80, 0x02]).write(to: noWeights.appendingPathComponent("adapter_model.bin"))
        try assertFormatError(noWeights, mentions: "safe_serialization")
    }

    // MARK: adapter_config.json

    func testConfigFieldsLoramdDoesNotImplementAreRefused() throws {
        let cases: [(String, Any, String)] = [
            ("use_dora", true, "DoRA"), ("use_rslora", true, "rsLoRA"), ("rank_pattern", ["q_proj": 4], "per-module ranks"),
            ("alpha_pattern", ["v_proj": 32], "per-module alphas"), ("layers_to_transform", [0], "subset of layers"),
            ("bias", "all", "bias"), ("bias", "lora_only", "bias"), ("fan_in_fan_out", true, "fan_in_fan_out"),
            ("modules_to_save", ["lm_head"], "modules_to_save"), ("lora_bias", true, "lora_B"),
            ("exclude_modules", ["o_proj"], "exclude_modules"), ("peft_type", "IA3", "IA3"), ("task_type", "SEQ_CLS", "SEQ_CLS"),
            ("init_lora_weights", "pissa", "pissa"), ("lora_dropout", 1.0, "lora_dropout"), ("r", 0, "r must be"),
            ("lora_alpha", -1, "lora_alpha"),
        ]
        for (key, value, mention) in cases {
            try assertFormatError(try writeAdapter(config: try configWith([key: value]), tensors: try goldenTensors()), mentions: mention)
        }
        // PEFT's defaults for what it leaves out (null patterns, empty lists) are accepted.
        let lenient = try configWith(["layers_to_transform": [Int](), "rank_pattern": NSNull(), "init_lora_weights": "gaussian", "task_type": "CAUSAL_LM"])
        XCTAssertNoThrow(try PEFTAdapterFile.load(directory: try writeAdapter(config: lenient, tensors: try goldenTensors()), model: try tinyModel()))
    }

    func testTargetModulesResolveAsPEFTResolvesThem() throws {
        func resolve(_ targets: Any?) throws -> Set<LoRATarget> {
            var object: [String: Any] = ["peft_type": "LORA", "r": 4, "lora_alpha": 8]
            if let targets { object["target_modules"] = targets }
            return try PEFTAdapterConfig(json: JSONSerialization.data(withJSONObject: object)).resolveTargets(layerCount: 3)
        }
        XCTAssertEqual(try resolve(["q_proj", "self_attn.v_proj", "lm_head"]), [.q, .v, .lmHead])
        XCTAssertEqual(try resolve(nil), [.q, .v], "PEFT's default for llama")
        XCTAssertEqual(try resolve("all-linear"), Set(LoRATarget.layerTargets), "PEFT's shorthand leaves the output layer out")
        XCTAssertEqual(try resolve(#".*\.(q|v)_proj"#), [.q, .v])
        XCTAssertEqual(try resolve(#"model\.layers\.\d+\.mlp\.\w+_proj|lm_head"#), [.gate, .up, .down, .lmHead])
        XCTAssertEqual(try resolve(".*_proj"), Set(LoRATarget.layerTargets))
        // A full match: the bare name does not match a whole module path (as in PEFT).
        let refused: [(Any, String)] = [
            ("q_proj", "matches no module"),
            (#"model\.layers\.0\..*_proj"#, "in layers [0] only"),
            (".*", "not one of the linears"),
            (#"model\.layers\.\d+\.mlp\..*"#, "act_fn"),
            (#".*(?P<x>q)_proj"#, "not a regular expression"),
            (["q_proj", "embed_tokens"], "embed_tokens"),
            (["q_proj", "mlp"], "not one of the linears"),
            (["wq"], "not a module of the model"),
            ([String](), "empty"),
        ]
        for (targets, mention) in refused {
            XCTAssertThrowsError(try resolve(targets), "\(targets)") { error in
                XCTAssertTrue((error as? FormatError)?.problem.contains(mention) == true, "\(targets): \(error)")
            }
        }
    }

    func testAPathologicalTargetModulesPatternIsRefusedQuicklyOrCancelled() throws {
        func config(_ pattern: String) throws -> PEFTAdapterConfig {
            try PEFTAdapterConfig(json: JSONSerialization.data(withJSONObject: ["peft_type": "LORA", "r": 4, "target_modules": pattern]))
        }
        // Nested repetition that cannot match: ICU backtracks for minutes on a 30-character name.
        for pattern in ["(.*.*)*Q", "((.+)+)+Q", #"(\w|\.|\d)*(.*)*X"#] {
            let start = Date()
            XCTAssertThrowsError(try config(pattern).resolveTargets(layerCount: 28), pattern) { error in
                XCTAssertEqual((error as? FormatError)?.file, "adapter_config.json")
                XCTAssertTrue((error as? FormatError)?.problem.contains("takes over 0.5 s") == true, "\(error)")
            }
            // Uncut, these run for minutes; the cut-off is 0.5 s of matching, so 60 s is a hang, not slowness.
            XCTAssertLessThan(Date().timeIntervalSince(start), 60, pattern)
        }
        // A cancellation stops it at once, with the canceller's error.
        // (The canceller's error, not the 0.5 s cut-off's FormatError, shows it stopped at the checkpoint.)
        struct Cancelled: Error {}
        XCTAssertThrowsError(try config("(.*.*)*Q").resolveTargets(layerCount: 28, checkpoint: { throw Cancelled() })) {
            XCTAssertTrue($0 is Cancelled, "\($0)")
        }
        // Ordinary patterns are unaffected, checkpoint or not; an absurdly long one is refused unread.
        XCTAssertEqual(try config(#".*\.(q|v)_proj"#).resolveTargets(layerCount: 28, checkpoint: {}), [.q, .v])
        XCTAssertThrowsError(try config(String(repeating: "q_proj|", count: 200) + "v_proj").resolveTargets(layerCount: 2)) {
            XCTAssertTrue(($0 as? FormatError)?.problem.contains("up to 1024") == true, "\($0)")
        }
    }

    func testPEFTsSavedOutputLayerIsAcceptedWhenItIsTheModelsOwn() throws {
        // PEFT saves lm_head.base_layer.weight beside lm_head's factors.
        let model = try tinyModel()
        var tensors = try goldenTensors()
        tensors["base_model.model.lm_head.lora_A.weight"] = ([8, 64], (0..<512).map { Float($0 % 7) * 0.01 })
        tensors["base_model.model.lm_head.lora_B.weight"] = ([512, 8], (0..<4096).map { Float($0 % 5) * 0.01 })
        tensors["base_model.model.lm_head.base_layer.weight"] = ([512, 64], model.lmHead.toArray())
        let config = try configWith(["target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]])
        let adapter = try PEFTAdapterFile.load(directory: try writeAdapter(config: config, tensors: tensors), model: model)
        XCTAssertEqual(adapter.lmHead?.b.toArray(), tensors["base_model.model.lm_head.lora_B.weight"]!.values)
        // In bf16 (as a bf16 PEFT model saves it), compared at bf16.
        XCTAssertNoThrow(try PEFTAdapterFile.load(directory: try writeAdapter(config: config, tensors: tensors, dtype: .bf16), model: model))

        var changed = tensors["base_model.model.lm_head.base_layer.weight"]!.values
        changed[100] += 1
        tensors["base_model.model.lm_head.base_layer.weight"] = ([512, 64], changed)
        try assertFormatError(try writeAdapter(config: config, tensors: tensors), mentions: "differs from the model's lm_head")
    }

    // MARK: Creating adapters

    func testNewAdaptersFollowPEFTsInitialisation() throws {
        let config = try tinyModel().config
        let adapter = LoRAAdapter.create(config: config, rank: 4, alpha: 8, targets: [.q, .down, .lmHead], seed: 7)
        XCTAssertEqual(adapter.namedPairs.count, 5)
        for (path, pair) in adapter.namedPairs {
            let a = pair.a.toArray(), bound = 1 / Float(pair.a.cols).squareRoot()
            XCTAssertLessThanOrEqual(a.map(abs).max()!, bound, path)
            XCTAssertGreaterThan(a.map(abs).max()!, 0.9 * bound, "\(path): U(-1/sqrt(in), 1/sqrt(in)) fills its range")
            XCTAssertEqual(a.reduce(0, +) / Float(a.count), 0, accuracy: 0.2 * bound, path)
            XCTAssertEqual(pair.b.toArray().map(abs).max(), 0, "\(path): B starts at zero")
        }
        let same = LoRAAdapter.create(config: config, rank: 4, alpha: 8, targets: [.q, .down, .lmHead], seed: 7)
        let other = LoRAAdapter.create(config: config, rank: 4, alpha: 8, targets: [.q, .down, .lmHead], seed: 8)
        XCTAssertEqual(adapter.lmHead!.a.toArray(), same.lmHead!.a.toArray(), "deterministic for a seed")
        XCTAssertNotEqual(adapter.lmHead!.a.toArray(), other.lmHead!.a.toArray())

        let normal = LoRAAdapter.create(config: config, rank: 8, alpha: 16, targets: [.lmHead], seed: 1, b: .normal(std: 0.1))
        let b = normal.lmHead!.b.toArray()
        let mean = b.reduce(0, +) / Float(b.count)
        let std = (b.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(b.count)).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 0.01)
        XCTAssertEqual(std, 0.1, accuracy: 0.005)
        // A new adapter leaves the logits as they were.
        let model = try tinyModel()
        let ids = try GoldenForwardTests.inputIds()
        let plain = try allLogits(model, adapter: nil, ids: ids)
        XCTAssertEqual(try allLogits(model, adapter: adapter, ids: ids), plain)
    }
}
