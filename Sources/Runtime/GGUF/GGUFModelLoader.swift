import Foundation

/// Loading a LLaMA model from a GGUF file: llama.cpp's tensor names, every tensor type the reader
/// dequantizes widened to fp32 a block of rows at a time and stored as the requested dtype, and
/// Q/K rows put back in Hugging Face's order (see `GGUFLlamaNames`).
extension DecoderModel {
    /// The config of `file`, with LLaMA-3.1's `rope_freqs` tensor applied.
    public static func config(gguf file: GGUFFile) throws -> ModelConfig {
        let name = file.url.lastPathComponent
        var config = try ModelConfig(ggufMetadata: file.metadata, dimensions: { file.tensors[$0]?.dimensions }, fileName: name)
        if let info = file.tensors[GGUFLlamaNames.ropeFrequencies] {
            guard info.dimensions.count == 1, info.elementCount == config.headDim / 2 else {
                throw FormatError(file: name, "tensor \(info.name) has dimensions \(info.dimensions); expected [\(config.headDim / 2)]")
            }
            var divisors = [Float](repeating: 0, count: info.elementCount)
            try divisors.withUnsafeMutableBufferPointer { try file.dequantize(info, elements: 0..<info.elementCount, into: $0.baseAddress!) }
            try config.applyGGUFFrequencyDivisors(divisors, file: name)
        }
        return config
    }

    /// Bytes the weights of `file` take once loaded as `dtype` (norms, the 1-D tensors, fp32), from
    /// the tensor infos: what is charged before reading.
    public static func plannedBytes(gguf file: GGUFFile, config: ModelConfig, dtype: TensorDType) -> Int {
        var names = [GGUFLlamaNames.embedding, GGUFLlamaNames.finalNorm] + (config.tiedEmbeddings ? [] : [GGUFLlamaNames.output])
        for i in 0..<config.layerCount {
            names += [GGUFLlamaNames.inputNorm(i), GGUFLlamaNames.postAttentionNorm(i)] + GGUFLlamaNames.linears.map { GGUFLlamaNames.layer(i, $0.gguf) }
        }
        return names.reduce(0) { total, name in
            guard let info = file.tensors[name] else { return total }
            return total + info.elementCount * (info.dimensions.count == 1 ? 4 : dtype.byteSize)
        }
    }

    public static func load(gguf file: GGUFFile, config: ModelConfig, dtype: TensorDType) throws -> DecoderModel {
        let c = config.hiddenSize, d = config.headDim
        let loader = GGUFWeightLoader(file: file, dtype: dtype)
        let embedding = try loader.matrix(GGUFLlamaNames.embedding, rows: config.vocabSize, cols: c)
        var layers: [DecoderLayer] = []
        for (i, shape) in config.layers.enumerated() {
            let h = shape.heads, kv = shape.kvHeads, inter = shape.intermediate
            func linear(_ hf: String, _ rows: Int, _ cols: Int, permuted: Bool = false) throws -> Weight {
                try loader.matrix(GGUFLlamaNames.linear(i, hf: hf)!, rows: rows, cols: cols, headDim: permuted ? d : nil)
            }
            layers.append(DecoderLayer(
                shape: shape,
                inputNorm: try loader.vector(GGUFLlamaNames.inputNorm(i), count: c),
                postAttentionNorm: try loader.vector(GGUFLlamaNames.postAttentionNorm(i), count: c),
                q: try linear("self_attn.q_proj", h * d, c, permuted: true),
                k: try linear("self_attn.k_proj", kv * d, c, permuted: true),
                v: try linear("self_attn.v_proj", kv * d, c),
                o: try linear("self_attn.o_proj", c, h * d),
                gate: try linear("mlp.gate_proj", inter, c),
                up: try linear("mlp.up_proj", inter, c),
                down: try linear("mlp.down_proj", c, inter)))
        }
        let finalNorm = try loader.vector(GGUFLlamaNames.finalNorm, count: c)
        let lmHead = config.tiedEmbeddings ? nil : try loader.matrix(GGUFLlamaNames.output, rows: config.vocabSize, cols: c)
        return DecoderModel(config: config, embedding: embedding, layers: layers, finalNorm: finalNorm, lmHead: lmHead)
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
                let target = headDim.map { GGUFLlamaNames.hfRow(ofGGUFRow: row + local, headDim: $0) } ?? (row + local)
                DTypeConversion.fromFloat32(buffer + local * cols, count: cols, to: dtype, into: weight.storage + target * rowBytes)
            }
            row += n
        }
        return weight
    }
}
