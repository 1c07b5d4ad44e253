import Foundation

/// A weight matrix [rows, cols], row-major as Hugging Face stores it (a linear's W is [out, in],
/// so y = x·Wᵀ). Held as F32, BF16 or F16: either borrowed from the checkpoint's memory mapping
/// (F32 kept as F32, zero copy) or owned; or as NF4 (`nf4`, frozen: dtype reads U8, the packed
/// codes). Compute is fp32; other dtypes are widened (NF4 dequantized) into the caller's scratch
/// block by block just before use.
public final class Weight: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let dtype: TensorDType
    public let storage: UnsafeMutableRawPointer
    /// Keeps the memory mapping (or the NF4 tensor) alive for borrowed storage; nil when owned.
    private let owner: AnyObject?
    /// The quantized form when this weight is NF4; `storage` then points at its packed codes.
    public let nf4: NF4Tensor?

    public var elementCount: Int { rows * cols }
    public var byteCount: Int { nf4?.byteCount ?? elementCount * dtype.byteSize }
    public var isBorrowed: Bool { owner != nil }

    /// Owned, zero-filled.
    public init(rows: Int, cols: Int, dtype: TensorDType = .f32) {
        precondition(dtype.isWeightType)
        self.rows = rows
        self.cols = cols
        self.dtype = dtype
        let bytes = max(64, rows * cols * dtype.byteSize)
        storage = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        owner = nil
        nf4 = nil
    }

    /// An NF4 weight over `nf4`'s elements (rows × cols of them).
    public init(rows: Int, cols: Int, nf4: NF4Tensor) {
        precondition(nf4.count == rows * cols, "NF4 tensor of \(nf4.count) elements for [\(rows), \(cols)]")
        self.rows = rows
        self.cols = cols
        self.dtype = .u8
        storage = UnsafeMutableRawPointer(nf4.packed)
        owner = nf4
        self.nf4 = nf4
    }

    /// Borrowed from `owner`'s memory (F32, 4-byte aligned).
    init(rows: Int, cols: Int, borrowing pointer: UnsafeRawPointer, owner: AnyObject) {
        self.rows = rows
        self.cols = cols
        self.dtype = .f32
        storage = UnsafeMutableRawPointer(mutating: pointer)
        self.owner = owner
        nf4 = nil
    }

    deinit { if owner == nil { storage.deallocate() } }

    /// The fp32 pointer to the whole matrix when stored as F32; nil otherwise.
    public var float32: UnsafeMutablePointer<Float>? {
        dtype == .f32 ? storage.assumingMemoryBound(to: Float.self) : nil
    }

    /// Rows `range` as fp32: a direct pointer for F32, else widened into `scratch`.
    @inline(__always)
    public func rows(_ range: Range<Int>, scratch: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        if let direct = float32 { return UnsafePointer(direct + range.lowerBound * cols) }
        if let nf4 {
            nf4.dequantize((range.lowerBound * cols)..<(range.upperBound * cols), into: scratch)
            return UnsafePointer(scratch)
        }
        DTypeConversion.toFloat32(storage + range.lowerBound * cols * dtype.byteSize, dtype: dtype,
                                  count: range.count * cols, into: scratch)
        return UnsafePointer(scratch)
    }

    /// Copies `values` (fp32, rows × cols) in, narrowing to this weight's dtype.
    public func assign(_ values: UnsafePointer<Float>) {
        precondition(nf4 == nil, "NF4 weights are frozen")
        precondition(owner == nil, "borrowed weights are read-only")
        DTypeConversion.fromFloat32(values, count: elementCount, to: dtype, into: storage)
    }

    /// The whole matrix as an fp32 array (tests, saving).
    public func toArray() -> [Float] {
        [Float](unsafeUninitializedCapacity: elementCount) { buffer, count in
            if let nf4 {
                nf4.dequantize(0..<elementCount, into: buffer.baseAddress!)
            } else {
                DTypeConversion.toFloat32(storage, dtype: dtype, count: elementCount, into: buffer.baseAddress!)
            }
            count = elementCount
        }
    }

    /// Loads tensor `name` of `checkpoint` as a [rows, cols] weight stored as `dtype`
    /// (nil: as in the file). Checks the shape first. A bitsandbytes NF4 tensor (one with a
    /// quant state beside it) loads as NF4 whatever `dtype` asks.
    static func load(_ name: String, from checkpoint: CheckpointDirectory, rows: Int, cols: Int,
                     dtype requested: TensorDType?, isVector: Bool = false) throws -> Weight {
        if !isVector, NF4Checkpoint.isQuantized(name, in: checkpoint) {
            return try NF4Checkpoint.load(name, from: checkpoint, rows: rows, cols: cols)
        }
        let file = checkpoint.fileName(of: name)
        guard let info = checkpoint.info(name), let bytes = checkpoint.bytes(of: name) else {
            throw FormatError(file: file, "missing tensor \(name)")
        }
        let expected = isVector ? [cols] : [rows, cols]
        guard info.shape == expected else {
            throw FormatError(file: file, "tensor \(name) has shape \(info.shape), the config implies \(expected)")
        }
        guard info.dtype.isWeightType else {
            throw FormatError(file: file, "tensor \(name) is \(info.dtype.rawValue); weights must be F32, BF16 or F16")
        }
        let dtype = requested ?? info.dtype
        if dtype == .f32, info.dtype == .f32, Int(bitPattern: bytes.baseAddress) % 4 == 0 {
            return Weight(rows: rows, cols: cols, borrowing: bytes.baseAddress!, owner: checkpoint)
        }
        let weight = Weight(rows: rows, cols: cols, dtype: dtype)
        if dtype == info.dtype {
            weight.storage.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        } else {
            // Convert in row blocks through a bounded fp32 buffer.
            let blockRows = max(1, (1 << 20) / max(1, cols))
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * cols)
            defer { buffer.deallocate() }
            var row = 0
            while row < rows {
                let n = min(blockRows, rows - row)
                DTypeConversion.toFloat32(bytes.baseAddress! + row * cols * info.dtype.byteSize, dtype: info.dtype, count: n * cols, into: buffer)
                DTypeConversion.fromFloat32(buffer, count: n * cols, to: dtype, into: weight.storage + row * cols * dtype.byteSize)
                row += n
            }
        }
        return weight
    }
}
