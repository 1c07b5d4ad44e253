import Foundation
import MemoryPlanner

/// A LoRA adapter directory as PEFT writes it: adapter_config.json (`PEFTAdapterConfig`) and
/// adapter_model.safetensors with `base_model.model.<module>.lora_A.weight` [r, in] and
/// `.lora_B.weight` [out, r] per targeted linear.
///
/// Loading checks everything against the model before keeping anything: a tensor that does not
/// fit it is `AdapterShapeMismatch`; a missing, surplus, misnamed or non-float tensor, or a config
/// loramd does not implement, is `FormatError`. Names with PEFT's in-memory adapter name
/// (`.lora_A.default.weight`) and F32/BF16/F16 tensors are read too; values are held in fp32.
/// Saving writes F32 tensors without `.default`, each file by temporary name and rename.
///
///     let adapter = try PEFTAdapterFile.load(directory: url, model: model)
///     let session = try InferenceSession(model: model, capacity: 512, adapter: adapter)
///     try PEFTAdapterFile.save(adapter, to: out, baseModelNameOrPath: "/models/llama")
public enum PEFTAdapterFile {
    public static let weightsFileName = "adapter_model.safetensors"
    static let prefix = "base_model.model."

    public enum Matrix: String, Sendable { case a = "A", b = "B" }

    /// The tensor name PEFT saves for `matrix` of the linear at `modulePath`.
    public static func tensorName(_ modulePath: String, _ matrix: Matrix) -> String {
        "\(prefix)\(modulePath).lora_\(matrix.rawValue).weight"
    }

    /// Reads the adapter in `directory` for `model`.
    public static func load(directory: URL, model: DecoderModel) throws -> LoRAAdapter {
        let config = try PEFTAdapterConfig(directory: directory)
        let targets = try config.resolveTargets(layerCount: model.config.layerCount, layout: model.config.family.layout)
        let weightsURL = directory.appendingPathComponent(weightsFileName)
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("adapter_model.bin").path) {
                throw FormatError(file: "adapter_model.bin", "PyTorch pickles are not read; save the adapter with safe_serialization=True")
            }
            throw FormatError(file: weightsFileName, "missing from \(directory.path)")
        }
        let file = try SafetensorsFile(url: weightsURL)
        var factors = try classify(file, model: model)
        try checkFactors(factors, rank: config.rank, targets: targets, layerCount: model.config.layerCount)

        let adapter = LoRAAdapter(config: model.config, rank: config.rank, alpha: config.alpha, dropout: config.dropout, targets: targets)
        for (path, pair) in adapter.namedPairs {
            for (matrix, weight) in [(Matrix.a, pair.a), (.b, pair.b)] {
                let info = factors.removeValue(forKey: tensorName(path, matrix))!
                let expected = [weight.rows, weight.cols]
                guard info.shape == expected else { throw AdapterShapeMismatch(tensor: info.name, expected: expected, found: info.shape) }
                guard info.dtype.isWeightType else {
                    throw FormatError(file: weightsFileName, "tensor \(info.name) is \(info.dtype.rawValue); LoRA factors must be F32, BF16 or F16")
                }
                DTypeConversion.toFloat32(file.bytes(of: info).baseAddress!, dtype: info.dtype, count: weight.elementCount, into: weight.float32!)
            }
        }
        if let name = factors.keys.min() {
            throw FormatError(file: weightsFileName, "tensor \(name) is for a module adapter_config.json does not target")
        }
        return adapter
    }

    /// Every factor the targets need is present, a matrix, and of rank `rank`. Checked before the
    /// adapter is allocated: r comes from adapter_config.json, and only the file's own tensors
    /// (bounded by its size) keep an absurd r from becoming an allocation of that size.
    /// The rank is the adapter's own business (FormatError); the other side is the model's.
    private static func checkFactors(_ factors: [String: SafetensorsFile.TensorInfo], rank: Int,
                                     targets: Set<LoRATarget>, layerCount: Int) throws {
        var paths = (0..<layerCount).flatMap { i in LoRATarget.layerTargets.filter(targets.contains).map { $0.modulePath(layer: i) } }
        if targets.contains(.lmHead) { paths.append(LoRATarget.lmHead.modulePath(layer: 0)) }
        for path in paths {
            for matrix in [Matrix.a, .b] {
                let name = tensorName(path, matrix)
                guard let info = factors[name] else {
                    throw FormatError(file: weightsFileName, "missing tensor \(name): adapter_config.json targets \(path)")
                }
                guard info.shape.count == 2 else {
                    throw FormatError(file: weightsFileName, "tensor \(info.name) has shape \(info.shape), a LoRA factor is a matrix")
                }
                let rankAxis = matrix == .a ? 0 : 1
                guard info.shape[rankAxis] == rank else {
                    throw FormatError(file: weightsFileName, "tensor \(info.name) has shape \(info.shape), rank \(info.shape[rankAxis]); adapter_config.json says r = \(rank)")
                }
            }
        }
    }

    /// Writes adapter_config.json and adapter_model.safetensors into `directory` (created if
    /// needed); returns the two files.
    @discardableResult
    public static func save(_ adapter: LoRAAdapter, to directory: URL, baseModelNameOrPath: String? = nil) throws -> [URL] {
        try DurableFileSystem.makeDirectories(directory)
        var entries: [SafetensorsWriter.Entry] = []
        for (path, pair) in adapter.namedPairs {
            for (matrix, weight) in [(Matrix.a, pair.a), (.b, pair.b)] {
                entries.append(SafetensorsWriter.Entry(name: tensorName(path, matrix), dtype: .f32, shape: [weight.rows, weight.cols]) { buffer in
                    DTypeConversion.toFloat32(weight.storage, dtype: weight.dtype, count: weight.elementCount,
                                              into: buffer.baseAddress!.assumingMemoryBound(to: Float.self))
                })
            }
        }
        entries.sort { $0.name < $1.name }
        let weightsURL = directory.appendingPathComponent(weightsFileName)
        let configURL = directory.appendingPathComponent(PEFTAdapterConfig.fileName)
        try SafetensorsWriter().write(entries, to: weightsURL)
        let config = PEFTAdapterConfig(rank: adapter.rank, alpha: adapter.alpha, dropout: adapter.dropout, targets: adapter.targets,
                                       baseModelNameOrPath: baseModelNameOrPath)
        try AtomicFile.write(try config.jsonData(), to: configURL)
        return [configURL, weightsURL]
    }

    /// The file's LoRA factors by their saved name (`.default` removed), after checking every
    /// other tensor: only lm_head's `base_layer.weight` (PEFT saves it whenever lm_head is a
    /// target) may be there, and only if it is the model's own output projection.
    private static func classify(_ file: SafetensorsFile, model: DecoderModel) throws -> [String: SafetensorsFile.TensorInfo] {
        var lora: [String: SafetensorsFile.TensorInfo] = [:]
        let layerCount = model.config.layerCount
        for (name, info) in file.tensors.sorted(by: { $0.key < $1.key }) {
            guard name.hasPrefix(prefix) else {
                throw FormatError(file: weightsFileName, "tensor \(name) is not named base_model.model.<module>.lora_A/lora_B.weight")
            }
            if name == "\(prefix)lm_head.base_layer.weight" {
                try checkBaseLayer(info, file: file, model: model)
                continue
            }
            var saved = name
            for matrix in [Matrix.a, .b] {
                let withAdapterName = ".lora_\(matrix.rawValue).default.weight"
                if name.hasSuffix(withAdapterName) { saved = String(name.dropLast(withAdapterName.count)) + ".lora_\(matrix.rawValue).weight" }
            }
            guard saved.hasSuffix(".lora_A.weight") || saved.hasSuffix(".lora_B.weight") else {
                throw FormatError(file: weightsFileName, "tensor \(name) is not a LoRA factor loramd applies (only lora_A and lora_B weights are)")
            }
            let path = String(saved.dropFirst(prefix.count).dropLast(".lora_A.weight".count))
            if let layer = layerIndex(path), layer >= layerCount {
                throw AdapterShapeMismatch(tensor: name, expected: nil, found: info.shape)
            }
            guard lora.updateValue(info, forKey: saved) == nil else {
                throw FormatError(file: weightsFileName, "tensor \(saved) appears twice (with and without .default)")
            }
        }
        return lora
    }

    /// The layer of a `model.layers.<i>.<linear>` path.
    private static func layerIndex(_ path: String) -> Int? {
        let parts = path.split(separator: ".")
        guard parts.count == 5, parts[0] == "model", parts[1] == "layers", let i = Int(parts[2]),
              LoRATarget.layerTargets.contains(where: { $0.modulePath(layer: i) == path }) else { return nil }
        return i
    }

    /// PEFT saves lm_head's base weight beside its factors (for resized vocabularies); loramd
    /// applies the adapter to the model's own weight, so the two must agree (compared at the
    /// coarser of the two dtypes).
    private static func checkBaseLayer(_ info: SafetensorsFile.TensorInfo, file: SafetensorsFile, model: DecoderModel) throws {
        let expected = [model.lmHead.rows, model.lmHead.cols]
        guard info.shape == expected else { throw AdapterShapeMismatch(tensor: info.name, expected: expected, found: info.shape) }
        guard info.dtype.isWeightType else {
            throw FormatError(file: weightsFileName, "tensor \(info.name) is \(info.dtype.rawValue); weights must be F32, BF16 or F16")
        }
        var saved = [Float](repeating: 0, count: info.elementCount)
        saved.withUnsafeMutableBufferPointer { DTypeConversion.toFloat32(file.bytes(of: info).baseAddress!, dtype: info.dtype, count: info.elementCount, into: $0.baseAddress!) }
        var own = model.lmHead.toArray()
        for coarse in Set([info.dtype, model.lmHead.dtype]) where coarse != .f32 {
            for i in [0, 1] {
                var values = i == 0 ? saved : own
                var narrow = [UInt16](repeating: 0, count: values.count)
                values.withUnsafeBufferPointer { source in
                    narrow.withUnsafeMutableBytes { DTypeConversion.fromFloat32(source.baseAddress!, count: source.count, to: coarse, into: $0.baseAddress!) }
                }
                values.withUnsafeMutableBufferPointer { target in
                    narrow.withUnsafeBytes { DTypeConversion.toFloat32($0.baseAddress!, dtype: coarse, count: target.count, into: target.baseAddress!) }
                }
                if i == 0 { saved = values } else { own = values }
            }
        }
        guard saved == own else {
            throw FormatError(file: weightsFileName, "tensor \(info.name) differs from the model's lm_head: the adapter was saved with output weights of its own, which loramd does not apply")
        }
    }
}
