import XCTest
@testable import RPC

/// Typed results go on the wire exactly as the hand-built JSONValues they replace: members in
/// declaration order, an absent optional as null, integers as integers, an integral double with
/// its fraction, a non-finite double as null.
final class JSONValueEncoderTests: XCTestCase {
    struct Inner: WireResult { var plannedBytes: Int; var ratio: Double }
    struct Result: WireResult {
        var step: Int
        var loss: Double?
        var lr: Double
        var losses: [Double]
        var arena: Inner?
        var warnings: [String]
        var raw: JSONValue
        var big: Int64
        var seed: UInt64
    }

    func wire<R: Encodable>(_ result: R) throws -> String { String(decoding: try ParamsCoding.encode(result), as: UTF8.self) }

    func testAResultReadsAsTheSameJSONBuiltByHand() throws {
        let result = Result(step: 3, loss: nil, lr: 1, losses: [2.5, .nan], arena: Inner(plannedBytes: 64, ratio: 1.25), warnings: ["a\"b"],
                            raw: .object([("z", .int(1)), ("a", .null)]), big: 1 << 40, seed: 7)
        let byHand: JSONValue = .object([
            ("step", .int(3)), ("loss", .null), ("lr", .double(1)), ("losses", .array([.double(2.5), .double(.nan)])),
            ("arena", .object([("plannedBytes", .int(64)), ("ratio", .double(1.25))])), ("warnings", .array([.string("a\"b")])),
            ("raw", .object([("z", .int(1)), ("a", .null)])), ("big", .int(1 << 40)), ("seed", .int(7)),
        ])
        XCTAssertEqual(try wire(result), byHand.serializedString)
        XCTAssertEqual(try wire(result), #"{"step":3,"loss":null,"lr":1.0,"losses":[2.5,null],"arena":{"plannedBytes":64,"ratio":1.25},"warnings":["a\"b"],"raw":{"z":1,"a":null},"big":1099511627776,"seed":7}"#)
    }

    func testAnAbsentOptionalResultIsNull() throws {
        XCTAssertEqual(try wire(Inner?.none), "null")
        XCTAssertEqual(try wire(Inner?.some(Inner(plannedBytes: 1, ratio: 0))), #"{"plannedBytes":1,"ratio":0.0}"#)
    }

    /// Plain Encodable results keep Foundation's encoding (sorted keys, absent optionals left out).
    func testAPlainEncodableResultIsUnchanged() throws {
        struct Plain: Encodable { var b: Int; var a: String?; var c: Double }
        XCTAssertEqual(try wire(Plain(b: 1, a: nil, c: 2.5)), #"{"b":1,"c":2.5}"#)
    }
}
