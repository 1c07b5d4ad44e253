import RPC

#if _endian(big)
#error("base64 logits are the host's float bytes, which must be little-endian")
#endif

/// `model/forward`'s result, written straight into JSON bytes from the session's logits: a
/// `JSONValue` tree of 24 M doubles is what turned 96 MB of logits into half a gigabyte. Its size
/// is known before it is built, so it is charged to the budget first (`estimatedBytes`).
///
/// - `json`: `{"logits": [[…V floats…], …]}`, each float as the shortest decimal of its double.
/// - `base64`: `{"logits": "<base64>", "logitsEncoding": "base64", "dtype": "float32",
///   "shape": [rows, V]}`, the rows' little-endian float32 bytes in row-major order.
enum LogitsReply {
    enum Encoding: String, CaseIterable { case json, base64 }

    /// The longest a float can print as JSON: a sign, 17 digits, the point, "e-308", the comma.
    static let jsonBytesPerFloat = 25

    /// An upper bound on the result's bytes.
    static func estimatedBytes(rows: Int, vocab: Int, encoding: Encoding) -> Int {
        switch encoding {
        case .json: return 64 + rows * (2 + vocab * jsonBytesPerFloat)
        case .base64: return 160 + Base64.encodedCount(rows * vocab * 4)
        }
    }

    static func build(_ logits: UnsafePointer<Float>, rows: Int, vocab: Int, encoding: Encoding) -> RawJSON {
        var out: [UInt8] = []
        switch encoding {
        case .json:
            // Exactly what the JSONValue tree serialized to, without the tree; sized once.
            out.reserveCapacity(estimatedBytes(rows: rows, vocab: vocab, encoding: .json))
            out.append(contentsOf: Array(#"{"logits":["#.utf8))
            for r in 0..<rows {
                if r > 0 { out.append(UInt8(ascii: ",")) }
                out.append(UInt8(ascii: "["))
                let row = logits + r * vocab
                for v in 0..<vocab {
                    if v > 0 { out.append(UInt8(ascii: ",")) }
                    JSONValue.double(Double(row[v])).write(to: &out)
                }
                out.append(UInt8(ascii: "]"))
            }
            out.append(contentsOf: Array("]}".utf8))
        case .base64:
            out.reserveCapacity(estimatedBytes(rows: rows, vocab: vocab, encoding: .base64))
            out.append(contentsOf: Array(#"{"logits":""#.utf8))
            // Every platform Swift runs loramd on is little-endian: the floats' bytes are the wire's.
            Base64.append(UnsafeRawBufferPointer(start: logits, count: rows * vocab * MemoryLayout<Float>.size), to: &out)
            out.append(contentsOf: Array(#"","logitsEncoding":"base64","dtype":"float32","shape":[\#(rows),\#(vocab)]}"#.utf8))
        }
        return RawJSON(bytes: out)
    }
}
