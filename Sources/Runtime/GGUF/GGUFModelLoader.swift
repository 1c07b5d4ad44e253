import Foundation
import MemoryPlanner

/// Loading a model of any family from a GGUF file: its layout's GGUF names, every tensor type the reader
/// dequantizes widened to fp32 a block of rows at a time and stored as the requested dtype, and
/// Q/K rows put back in Hugging Face's order where the family permutes them (see `GGUFRotaryOrder`).
extension DecoderModel {
    /// The config of `file`, with LLaMA-3.1's `rope_freqs` tensor applied.
    public static func config(gguf file: GGUFFile) throws -> ModelConfig {
        let name = file.url.lastPathComponent
        var config = try ModelConfig(ggufMetadata: file.metadata, dimensions: { file.tensors[$0]?.dimensions }, fileName: name)
        if let info = file.tensors[GGUFRotaryOrder.ropeFrequencies] {
            guard info.dimensions.count == 1, info.elementCount == config.headDim / 2 else {
                throw FormatError(file: name, "tensor \(info.name) has dimensions \(info.dimensions); expected [\(config.headDim / 2)]")
            }
            var divisors = [Float](repeating: 0, count: info.elementCount)
            try divisors.withUnsafeMutableBufferPointer { try file.dequantize(info, elements: 0..<info.elementCount, into: $0.baseAddress!) }
            try config.applyGGUFFrequencyDivisors(divisors, file: name)
        }
        return config
    }

    /// Bytes the weights of `file` take once loaded as `dtype` (norms and biases, the 1-D tensors,
    /// fp32), from the tensor infos: what is charged before reading.
    public static func plannedBytes(gguf file: GGUFFile, config: ModelConfig, dtype: TensorDType) -> Int {
        config.tensors.reduce(0) { total, tensor in
            guard let info = file.tensors[ModelLayout.ggufName(tensor.spec, layer: tensor.layer)] else { return total }
            return total + info.elementCount * (tensor.spec.isVector ? 4 : dtype.byteSize)
        }
    }

    /// q and k (and their biases) come back from llama.cpp's interleaved rotary order where the
    /// family's converter permuted them.
    public static func load(gguf file: GGUFFile, config: ModelConfig, dtype: TensorDType) throws -> DecoderModel {
        let loader = GGUFWeightLoader(file: file, dtype: dtype)
        func permuted(_ spec: TensorSpec) -> Int? { config.family.ggufRotaryHeadDim(spec.role, headDim: config.headDim) }
        return try assemble(config: config, matrix: { spec, layer, rows, cols in
            try loader.matrix(ModelLayout.ggufName(spec, layer: layer), rows: rows, cols: cols, headDim: permuted(spec))
        }, vector: { spec, layer, count in
            let values = try loader.vector(ModelLayout.ggufName(spec, layer: layer), count: count)
            return permuted(spec).map { GGUFRotaryOrder.permutedRows(values, rows: count, cols: 1, headDim: $0, toGGUF: false) } ?? values
        })
    }
}

/// Reads GGUF tensors into `Weight`s of one dtype.
struct GGUFWeightLoader {
    let file: GGUFFile
    let dtype: TensorDType
    var fileName: String { file.url.lastPathComponent }

    func info(_ name: String, dimensions expected: [Int]) throws -> GGUFFile.TensorInfo {
        guard let info = file.tensors[name] else { throw FormatError(file: fileName, "missing tensor \(name)") }
        guard info.dimensions == expected else {
            throw FormatError(file: fileName, "tensor \(name) has dimensions \(info.dimensions) (ne0 first); the config implies \(expected)")
        }
        guard info.type.isDequantizable else {
            throw FormatError(file: fileName, "tensor \(name) has type \(info.type.name), which loramd cannot read (it reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and the K-quants Q2_K to Q6_K)")
        }
        return info
    }

    func vector(_ name: String, count: Int) throws -> [Float] {
        let info = try info(name, dimensions: [count])
        var values = [Float](repeating: 0, count: count)
        try values.withUnsafeMutableBufferPointer { try file.dequantize(info, elements: 0..<count, into: $0.baseAddress!) }
        return values
    }

    /// A [rows, cols] weight (GGUF dimensions [cols, rows]); with `headDim`, a Q or K weight whose
    /// rows come back from llama.cpp's interleaved rotary order.
    func matrix(_ name: String, rows: Int, cols: Int, headDim: Int? = nil) throws -> Weight {
        let info = try info(name, dimensions: [cols, rows])
        if dtype == .f32, info.type == .f32, headDim == nil {
            let bytes = file.bytes(of: info)
            if let base = bytes.baseAddress, Int(bitPattern: base) % 4 == 0 {
                return Weight(rows: rows, cols: cols, borrowing: base, owner: file)
            }
        }
        let weight = Weight(rows: rows, cols: cols, dtype: dtype)
        let rowBytes = cols * dtype.byteSize
        let blockRows = max(1, (1 << 20) / cols)
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * cols)
        defer { buffer.deallocate() }
        var row = 0
        while row < rows {
            let n = min(blockRows, rows - row)
            try file.dequantize(info, elements: (row * cols)..<((row + n) * cols), into: buffer)
            for local in 0..<n {
                let target = headDim.map { GGUFRotaryOrder.hfRow(ofGGUFRow: row + local, headDim: $0) } ?? (row + local)
                DTypeConversion.fromFloat32(buffer + local * cols, count: cols, to: dtype, into: weight.storage + target * rowBytes)
            }
            row += n
        }
        return weight
    }
}
