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
