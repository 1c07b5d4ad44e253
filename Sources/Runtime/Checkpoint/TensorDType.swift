import CKernels
/// Element types a safetensors file may declare. The runtime computes in fp32 and stores weights
/// as F32, BF16 or F16; the others are recognised (so a file holding them is not "corrupt") but
/// are not loadable as weights, except U8 for packed 4-bit codes.
public enum TensorDType: String, CaseIterable, Sendable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8"
    case u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8"
    case bool = "BOOL", f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"

    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool, .f8e4m3, .f8e5m2: return 1
        }
    }

    /// Floating types the runtime can hold weights in.
    public var isWeightType: Bool { self == .f32 || self == .bf16 || self == .f16 }
}

/// Conversions between the weight types, on whole buffers (no per-element allocation).
public enum DTypeConversion {
    /// bf16 is the top half of an fp32 bit pattern.
    @inline(__always) public static func bf16ToFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Round to nearest even, as PyTorch's `.to(torch.bfloat16)` does; NaN stays NaN.
    @inline(__always) public static func floatToBF16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
        let rounding = UInt32(0x7FFF) + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    /// Widens `count` elements of `dtype` at `source` (unaligned is fine) into fp32.
    public static func toFloat32(_ source: UnsafeRawPointer, dtype: TensorDType, count: Int,
                                 into destination: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .f32:
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4)
        case .bf16 where Int(bitPattern: source) % 2 == 0, .f16 where Int(bitPattern: source) % 2 == 0:
            // Vectorised (AVX2/F16C where the CPU has them), split across the compute threads.
            let halves = source.assumingMemoryBound(to: UInt16.self), bf16: Int32 = dtype == .bf16 ? 1 : 0
            Parallel.ranges(count, costPerItem: 1) { lk_widen16(halves, bf16, destination, $0.lowerBound, $0.upperBound) }
        case .bf16:
            for i in 0..<count {
                destination[i] = bf16ToFloat(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            }
        case .f16:
            for i in 0..<count {
                destination[i] = Float(Float16(bitPattern: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        default:
            preconditionFailure("\(dtype) is not a weight type")
        }
    }

    /// Narrows fp32 into `dtype` (F32, BF16 or F16) at `destination`.
    public static func fromFloat32(_ source: UnsafePointer<Float>, count: Int, to dtype: TensorDType,
                                   into destination: UnsafeMutableRawPointer) {
        switch dtype {
        case .f32:
            destination.copyMemory(from: source, byteCount: count * 4)
        case .bf16:
            for i in 0..<count { destination.storeBytes(of: floatToBF16(source[i]), toByteOffset: 2 * i, as: UInt16.self) }
        case .f16:
            for i in 0..<count { destination.storeBytes(of: Float16(source[i]).bitPattern, toByteOffset: 2 * i, as: UInt16.self) }
        default:
            preconditionFailure("\(dtype) is not a weight type")
        }
    }
}
