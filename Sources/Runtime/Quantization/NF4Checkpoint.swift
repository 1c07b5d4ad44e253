import Foundation

/// NF4 weights in the safetensors layout transformers + bitsandbytes save and load for a 4-bit
/// model (`QuantState.as_dict(packed=True)`): beside `X.weight` (U8 [n/2, 1], the packed codes)
/// come `X.weight.absmax`, `.quant_map`, with double quantization `.nested_absmax`,
/// `.nested_quant_map`, and `.quant_state.bitsandbytes__nf4`, the UTF-8 bytes of a JSON object
/// with the non-tensor fields (quant_type, blocksize, dtype, shape, nested_blocksize, nested_dtype,
/// nested_offset).
public enum NF4Checkpoint {
    static let stateSuffix = ".quant_state.bitsandbytes__nf4"

    static func isQuantized(_ name: String, in checkpoint: CheckpointDirectory) -> Bool {
        checkpoint.info(name + stateSuffix) != nil
    }

    /// The tensors that store `weight` (NF4) under `name`; `dtype` is the compute dtype recorded
    /// in the quant state ("float32", "bfloat16", "float16").
    static func entries(_ name: String, _ weight: Weight, dtype: String) -> [SafetensorsWriter.Entry] {
        let nf4 = weight.nf4!
        var entries = [
            SafetensorsWriter.Entry(name: name, dtype: .u8, shape: [nf4.packedCount, 1]) { buffer in
                buffer.baseAddress!.copyMemory(from: nf4.packed, byteCount: nf4.packedCount)
            },
            .floats(name + ".quant_map", nf4.code, shape: [16]),
        ]
        var state = "{\"quant_type\": \"nf4\", \"blocksize\": \(nf4.blockSize), \"dtype\": \"\(dtype)\", \"shape\": [\(weight.rows), \(weight.cols)]"
        switch nf4.scales {
        case .plain(let absmax):
            entries.append(.floats(name + ".absmax", absmax, shape: [absmax.count]))
        case .double(let indices, let scales, let offset, let map):
            entries.append(bytes(name + ".absmax", indices))
            entries.append(.floats(name + ".nested_absmax", scales, shape: [scales.count]))
            entries.append(.floats(name + ".nested_quant_map", map, shape: [map.count]))
            state += ", \"nested_blocksize\": \(NF4Tensor.nestedBlockSize), \"nested_dtype\": \"float32\", \"nested_offset\": \(Double(offset))"
        }
        state += "}"
        entries.append(bytes(name + stateSuffix, Array(state.utf8)))
        return entries
    }

    static func bytes(_ name: String, _ values: [UInt8]) -> SafetensorsWriter.Entry {
        SafetensorsWriter.Entry(name: name, dtype: .u8, shape: [values.count]) { buffer in
            values.withUnsafeBytes { buffer.copyMemory(from: $0) }
        }
    }

    /// config.json's `quantization_config`, as `BitsAndBytesConfig.to_dict()` writes it.
    static func quantizationConfig(doubleQuant: Bool, computeDType: String) -> [String: Any] {
        ["quant_method": "bitsandbytes", "_load_in_8bit": false, "_load_in_4bit": true, "load_in_4bit": true,
         "load_in_8bit": false, "llm_int8_threshold": 6.0, "llm_int8_skip_modules": NSNull(),
         "llm_int8_enable_fp32_cpu_offload": false, "llm_int8_has_fp16_weight": false,
         "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": doubleQuant,
         "bnb_4bit_compute_dtype": computeDType, "bnb_4bit_quant_storage": "uint8"]
    }

    /// Bytes `name` will occupy once loaded: the sizes of its stored parts.
    static func plannedBytes(_ name: String, in checkpoint: CheckpointDirectory) -> Int {
        [name, name + ".absmax", name + ".nested_absmax"].reduce(0) { total, part in
            total + (checkpoint.info(part).map { $0.elementCount * $0.dtype.byteSize } ?? 0)
        } + (checkpoint.info(name + ".nested_absmax") != nil ? 4 : 0)
    }

    /// Reads `name` as an NF4 [rows, cols] weight, checking every part against the quant state.
    static func load(_ name: String, from checkpoint: CheckpointDirectory, rows: Int, cols: Int) throws -> Weight {
        let file = checkpoint.fileName(of: name)
        func fail(_ problem: String) -> FormatError { FormatError(file: file, "\(name): \(problem)") }
        func tensor(_ part: String, _ dtype: TensorDType, count: Int? = nil) throws -> UnsafeRawBufferPointer {
            guard let info = checkpoint.info(name + part), let bytes = checkpoint.bytes(of: name + part) else {
                throw fail("missing tensor \(name + part)")
            }
            guard info.dtype == dtype else { throw fail("\(name + part) is \(info.dtype.rawValue), expected \(dtype.rawValue)") }
            if let count, info.elementCount != count {
                throw fail("\(name + part) has \(info.elementCount) elements, expected \(count)")
            }
            return bytes
        }
        func floats(_ part: String, count: Int) throws -> [Float] {
            let bytes = try tensor(part, .f32, count: count)
            return (0..<count).map { bytes.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
        }
        let stateBytes = try tensor(stateSuffix, .u8)
        guard let state = (try? JSONSerialization.jsonObject(with: Data(stateBytes))) as? [String: Any] else {
            throw fail("the quant state is not a JSON object")
        }
        guard state["quant_type"] as? String == "nf4" else { throw fail("quant_type must be nf4") }
        guard let blockSize = state["blocksize"] as? Int, NF4Tensor.supportedBlockSizes.contains(blockSize) else {
            throw fail("blocksize must be a power of two from 32 to 4096")
        }
        guard let shape = state["shape"] as? [Int], shape == [rows, cols] else {
            throw fail("quant state shape \(String(describing: state["shape"])), the config implies [\(rows), \(cols)]")
        }
        let count = rows * cols, blockCount = (count + blockSize - 1) / blockSize
        let packedBytes = try tensor("", .u8, count: (count + 1) / 2)
        let code = try floats(".quant_map", count: 16)
        let scales: NF4Tensor.Scales
        if checkpoint.info(name + ".nested_absmax") != nil {
            guard state["nested_blocksize"] as? Int == NF4Tensor.nestedBlockSize else { throw fail("nested_blocksize must be 256") }
            guard let offset = (state["nested_offset"] as? NSNumber)?.floatValue else { throw fail("nested_offset is missing") }
            let indices = Array(try tensor(".absmax", .u8, count: blockCount))
            let nested = try floats(".nested_absmax", count: (blockCount + NF4Tensor.nestedBlockSize - 1) / NF4Tensor.nestedBlockSize)
            let map = try floats(".nested_quant_map", count: 256)
            scales = .double(indices: indices, scales: nested, offset: offset,
                             map: map == QuantizationMaps.dynamic8 ? QuantizationMaps.dynamic8 : map)
        } else {
            scales = .plain(try floats(".absmax", count: blockCount))
        }
        let packed = UnsafeMutablePointer<UInt8>.allocate(capacity: packedBytes.count)
        packed.initialize(from: packedBytes.bindMemory(to: UInt8.self).baseAddress!, count: packedBytes.count)
        let tensor = NF4Tensor(count: count, blockSize: blockSize, packed: packed, scales: scales,
                               code: code == QuantizationMaps.nf4 ? QuantizationMaps.nf4 : code)
        return Weight(rows: rows, cols: cols, nf4: tensor)
    }
}
