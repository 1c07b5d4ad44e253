/// A result already serialized to JSON bytes, passed to the client as it is. For results too
/// large to go through a `JSONValue` tree (a row of logits per position): the handler writes
/// them straight into bytes, sized in advance.
public struct RawJSON: Encodable {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// Only `ParamsCoding.encode` serializes a result, and it passes the bytes through.
    public func encode(to encoder: Encoder) throws {
        throw EncodingError.invalidValue(self, .init(codingPath: encoder.codingPath, debugDescription: "RawJSON goes to the wire as it is"))
    }
}

extension RawJSON {
    /// `{"<key>": [v0, v1, …]}`, written digit by digit into one buffer sized in advance.
    public static func object(_ key: String, integers values: [Int]) -> RawJSON {
        var out: [UInt8] = []
        out.reserveCapacity(key.utf8.count + 8 + values.count * (maxDigits(values) + 1))
        out.append(UInt8(ascii: "{"))
        JSONValue.writeString(key, to: &out)
        out.append(contentsOf: Array(":[".utf8))
        var digits = [UInt8](repeating: 0, count: 20)
        for (i, value) in values.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            if value < 0 { out.append(UInt8(ascii: "-")) }
            var magnitude = value.magnitude
            var count = 0
            repeat {
                digits[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            } while magnitude > 0
            for d in stride(from: count - 1, through: 0, by: -1) { out.append(digits[d]) }
        }
        out.append(contentsOf: Array("]}".utf8))
        return RawJSON(bytes: out)
    }

    /// The most bytes one of `values` prints as.
    static func maxDigits(_ values: [Int]) -> Int {
        guard let largest = values.lazy.map(\.magnitude).max() else { return 1 }
        return String(largest).utf8.count + 1
    }
}
