/// bitsandbytes' 8-bit blockwise quantization on CPU (`quantize_blockwise`, the C++
/// `quantize_block`): per block, absmax = max|x|; each x/absmax (a true division) goes to the
/// code found by binary search (the largest code ≤ the value, code[0] read as -1), moved one up
/// only when that neighbour is strictly nearer. Used for the NF4 block scales (double quantization).
public enum DynamicBlockwiseQuantizer {
    /// Indices into `code` and one fp32 scale per block of `blockSize` (the last may be partial).
    public static func quantize(_ values: UnsafeBufferPointer<Float>, blockSize: Int,
                                code: [Float] = QuantizationMaps.dynamic8) -> (indices: [UInt8], scales: [Float]) {
        precondition(code.count == 256 && blockSize > 0)
        var search = code
        search[0] = -1 // as quantize_cpu does, so that every normalised value has a left neighbour
        let blockCount = (values.count + blockSize - 1) / blockSize
        var scales = [Float](repeating: 0, count: blockCount)
        var indices = [UInt8](repeating: 0, count: values.count)
        search.withUnsafeBufferPointer { table in
            for block in 0..<blockCount {
                let range = (block * blockSize)..<min(values.count, (block + 1) * blockSize)
                var absmax = -Float.greatestFiniteMagnitude
                for i in range { absmax = max(absmax, abs(values[i])) }
                scales[block] = absmax
                for i in range {
                    let normed = values[i] / absmax
                    // 0/0 (a block of zeros) is NaN; torch's argmin then answers index 0.
                    indices[i] = normed.isNaN ? 0 : UInt8(nearest(normed, in: table))
                }
            }
        }
        return (indices, scales)
    }

    /// The left neighbour by binary search, then the right one if strictly nearer.
    @inline(__always)
    static func nearest(_ value: Float, in code: UnsafeBufferPointer<Float>) -> Int {
        var low = 0, high = code.count - 1 // invariant: code[low] ≤ value (value ≥ -1 = code[0])
        if value >= code[high] { low = high } else {
            while high - low > 1 {
                let middle = (low + high) / 2
                if code[middle] <= value { low = middle } else { high = middle }
            }
        }
        if low < code.count - 1, abs(value - code[low + 1]) < abs(value - code[low]) { return low + 1 }
        return low
    }
}
