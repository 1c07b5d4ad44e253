import Foundation
import MemoryPlanner

/// Seeded mutations of a binary file: bit flips, truncation, insertions, deletions, duplicated
/// runs, and little-endian integers overwritten with values a length or count field should never
/// hold (0, all ones, 2^31, 2^63, …). `fields` are offsets of known length/count/type fields;
/// aiming at them reaches the checks a random flip would rarely hit.
struct ByteMutator {
    /// 8-byte values for a u64/i64 length or count.
    static let hugeValues: [UInt64] = [0, 1, 0xFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000,
                                       1 << 40, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, .max, .max - 7]

    static func integer(_ random: inout SplitMix64) -> UInt64 {
        random.next() % 3 == 0 ? random.next() % 4096 : hugeValues[Int(random.next() % UInt64(hugeValues.count))]
    }

    /// 1–4 mutations of `input`; `fields` are aimed at half the time when given.
    static func mutate(_ input: [UInt8], _ random: inout SplitMix64, fields: [Int] = []) -> [UInt8] {
        var bytes = input
        for _ in 0..<(1 + Int(random.next() % 4)) {
            if !fields.isEmpty && random.next() % 2 == 0 {
                let field = fields[Int(random.next() % UInt64(fields.count))]
                let width = [1, 2, 4, 8][Int(random.next() % 4)]
                overwrite(&bytes, at: field, width: width, with: integer(&random))
                continue
            }
            let position = bytes.isEmpty ? 0 : Int(random.next() % UInt64(bytes.count))
            switch random.next() % 9 {
            case 0 where !bytes.isEmpty: bytes[position] ^= UInt8(1 << (random.next() % 8))
            case 1 where !bytes.isEmpty: bytes[position] = [0x00, 0xFF, 0x7F, 0x80, 0x22, 0x5C][Int(random.next() % 6)]
            case 2: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
            case 3 where !bytes.isEmpty: bytes.removeSubrange(position..<min(bytes.count, position + 1 + Int(random.next() % 16)))
            case 4: bytes.removeSubrange(position..<bytes.count)  // truncation
            case 5 where !bytes.isEmpty:
                let run = Array(bytes[position..<min(bytes.count, position + 1 + Int(random.next() % 64))])
                bytes.insert(contentsOf: run, at: Int(random.next() % UInt64(bytes.count + 1)))
            case 6, 7:
                overwrite(&bytes, at: position, width: [4, 8][Int(random.next() % 2)], with: integer(&random))
            default:
                bytes.insert(contentsOf: (0..<(1 + Int(random.next() % 8))).map { _ in UInt8(truncatingIfNeeded: random.next()) }, at: position)
            }
        }
        return bytes
    }

    static func overwrite(_ bytes: inout [UInt8], at offset: Int, width: Int, with value: UInt64) {
        for k in 0..<width where offset + k < bytes.count {
            bytes[offset + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k)))
        }
    }
}
