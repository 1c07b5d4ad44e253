import CKernels

/// A tensor in bitsandbytes' NF4 layout: per block of `blockSize` consecutive elements (row-major),
/// a 4-bit index into the NF4 code book (two per byte, high nibble first) and the block's absmax.
/// With double quantization the absmax values are themselves stored as 8-bit indices into the
/// dynamic map, with one fp32 scale per 256 blocks and one fp32 offset (their mean):
/// `absmax[b] = dynamic8[absmaxIndex[b]] · scale2[b / 256] + offset`, `w[i] = nf4[code(i)] · absmax[i / blockSize]`.
/// Immutable once built.
public final class NF4Tensor: @unchecked Sendable {
    public enum Scales {
        /// fp32 absmax per block (no double quantization).
        case plain([Float])
        /// 8-bit absmax indices into `map` (256 values), the second-level scales (one per
        /// `nestedBlockSize` blocks) and the offset.
        case double(indices: [UInt8], scales: [Float], offset: Float, map: [Float])
    }

    public static let nestedBlockSize = 256
    public static let supportedBlockSizes = (5...12).map { 1 << $0 } // 32 … 4096

    public let count: Int
    public let blockSize: Int
    public let scales: Scales
    /// The 16 code values (the NF4 book unless a checkpoint brought its own).
    public let code: [Float]
    /// (count + 1) / 2 bytes, owned.
    public let packed: UnsafeMutablePointer<UInt8>
    public var packedCount: Int { (count + 1) / 2 }
    public var blockCount: Int { (count + blockSize - 1) / blockSize }
    public var isDoubleQuantized: Bool {
        if case .double = scales { return true }
        return false
    }

    /// Bytes held: codes, absmax (1 or 4 per block), second-level scales and offset.
    public var byteCount: Int {
        switch scales {
        case .plain(let absmax): return packedCount + 4 * absmax.count
        case .double(let indices, let scales, _, _): return packedCount + indices.count + 4 * scales.count + 4
        }
    }

    /// Takes ownership of `packed`.
    init(count: Int, blockSize: Int, packed: UnsafeMutablePointer<UInt8>, scales: Scales, code: [Float] = QuantizationMaps.nf4) {
        precondition(code.count == 16)
        self.code = code
        self.count = count
        self.blockSize = blockSize
        self.packed = packed
        self.scales = scales
    }

    deinit { packed.deallocate() }

    /// Quantizes `count` fp32 values as `quantize_4bit(blocksize, quant_type="nf4",
    /// compress_statistics=doubleQuant)` does on CPU.
    public convenience init(quantizing values: UnsafePointer<Float>, count: Int, blockSize: Int = 64, doubleQuant: Bool = true) throws {
        guard Self.supportedBlockSizes.contains(blockSize) else {
            throw QuantizationError(field: "blockSize", "must be a power of two from 32 to 4096, got \(blockSize)")
        }
        precondition(count > 0)
        let blockCount = (count + blockSize - 1) / blockSize
        var absmax = [Float](repeating: 0, count: blockCount)
        let packed = UnsafeMutablePointer<UInt8>.allocate(capacity: (count + 1) / 2)
        packed.initialize(repeating: 0, count: (count + 1) / 2)
        absmax.withUnsafeMutableBufferPointer { absmax in
            QuantizationMaps.nf4.withUnsafeBufferPointer { code in
                Parallel.ranges(blockCount, costPerItem: blockSize * 8) { blocks in
                    for block in blocks {
                        let start = block * blockSize, end = min(count, start + blockSize)
                        var m: Float = 0
                        var finite = true
                        for i in start..<end { m = max(m, abs(values[i])); finite = finite && values[i].isFinite }
                        absmax[block] = finite ? m : .nan
                        if !finite { continue }
                        // x · (1/absmax), clamped, as the CPU kernel scales; a zero block gives
                        // NaN there, which torch's argmin maps to index 0.
                        let inverse = 1 / m
                        for i in start..<end {
                            let index = m == 0 ? 0 : Self.nearestNF4(min(max(values[i] * inverse, -1), 1), code)
                            // Blocks have an even size, so each byte belongs to one block.
                            packed[i / 2] |= i % 2 == 0 ? index << 4 : index
                        }
                    }
                }
            }
        }
        guard absmax.allSatisfy({ !$0.isNaN }) else {
            packed.deallocate()
            throw QuantizationError(field: "weights", "contain NaN or infinity; NF4 needs finite values")
        }
        // An odd count pads the last low nibble with the code of 0.0, as bitsandbytes pads with 0.
        if count % 2 == 1 { packed[count / 2] |= Self.zeroCode }
        guard doubleQuant else {
            self.init(count: count, blockSize: blockSize, packed: packed, scales: .plain(absmax))
            return
        }
        let offset = Float(absmax.reduce(0.0) { $0 + Double($1) } / Double(blockCount))
        let centred = absmax.map { $0 - offset }
        let (indices, scales) = centred.withUnsafeBufferPointer {
            DynamicBlockwiseQuantizer.quantize($0, blockSize: Self.nestedBlockSize)
        }
        self.init(count: count, blockSize: blockSize, packed: packed, scales: .double(indices: indices, scales: scales, offset: offset, map: QuantizationMaps.dynamic8))
    }

    static let zeroCode = UInt8(QuantizationMaps.nf4.firstIndex(of: 0)!)

    /// argmin |x - code[j]| with ties to the lower index, as torch.argmin: the largest code ≤ x,
    /// or the next one up when it is strictly nearer (the codes are far apart, so no other can tie).
    @inline(__always)
    static func nearestNF4(_ x: Float, _ code: UnsafeBufferPointer<Float>) -> UInt8 {
        var low = 0
        while low < 15 && code[low + 1] <= x { low += 1 }
        if low < 15, abs(x - code[low + 1]) < abs(x - code[low]) { low += 1 }
        return UInt8(low)
    }

    /// Block `b`'s absmax, in the fp32 operations bitsandbytes dequantizes with.
    @inline(__always)
    public func absmax(ofBlock b: Int) -> Float {
        switch scales {
        case .plain(let absmax): return absmax[b]
        case .double(let indices, let scales, let offset, let map):
            let scaled = map[Int(indices[b])] * scales[b / Self.nestedBlockSize]
            return scaled + offset
        }
    }

    /// Rows `range` of y = W·x (+ beta·y), W this tensor as rows of `k` elements, read as it lies
    /// (`lk_gemv_nf4`): what decode needs, one token against the packed codes, no widened copy.
    public func product(_ x: UnsafePointer<Float>, k: Int, rows range: Range<Int>, into y: UnsafeMutablePointer<Float>, beta: Float) {
        code.withUnsafeBufferPointer { code in
            switch scales {
            case .plain(let absmax):
                absmax.withUnsafeBufferPointer {
                    lk_gemv_nf4(packed, code.baseAddress, blockSize, $0.baseAddress, nil, nil, nil, 0,
                                x, y, k, range.lowerBound, range.upperBound, beta)
                }
            case .double(let indices, let scales, let offset, let map):
                indices.withUnsafeBufferPointer { indices in
                    scales.withUnsafeBufferPointer { scales in
                        map.withUnsafeBufferPointer { map in
                            lk_gemv_nf4(packed, code.baseAddress, blockSize, nil, indices.baseAddress, map.baseAddress, scales.baseAddress,
                                        offset, x, y, k, range.lowerBound, range.upperBound, beta)
                        }
                    }
                }
            }
        }
    }

    /// Writes elements `range` (row-major) as fp32 to `out`: a 16-entry table per block, no allocation.
    public func dequantize(_ range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count)
        var table = (Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0),
                     Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0))
        withUnsafeMutableBytes(of: &table) { raw in
            let scaled = raw.baseAddress!.assumingMemoryBound(to: Float.self)
            code.withUnsafeBufferPointer { code in
                var i = range.lowerBound
                while i < range.upperBound {
                    let block = i / blockSize
                    let end = min(range.upperBound, (block + 1) * blockSize)
                    let scale = absmax(ofBlock: block)
                    for j in 0..<16 { scaled[j] = code[j] * scale }
                    var o = out + (i - range.lowerBound)
                    if i % 2 == 1 { o.pointee = scaled[Int(packed[i / 2] & 0x0F)]; o += 1; i += 1 }
                    while i + 1 < end {
                        let byte = packed[i / 2]
                        o[0] = scaled[Int(byte >> 4)]
                        o[1] = scaled[Int(byte & 0x0F)]
                        o += 2; i += 2
                    }
                    if i < end { o.pointee = scaled[Int(packed[i / 2] >> 4)]; i += 1 }
                }
            }
        }
    }
}
