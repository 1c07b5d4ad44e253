import XCTest
@testable import RPC

final class JSONParserTests: XCTestCase {
    func testValues() throws {
        XCTAssertEqual(try JSONParser.parse("null"), .null)
        XCTAssertEqual(try JSONParser.parse(" true "), .bool(true))
        XCTAssertEqual(try JSONParser.parse("-12"), .int(-12))
        XCTAssertEqual(try JSONParser.parse("9223372036854775807"), .int(Int64.max))
        XCTAssertEqual(try JSONParser.parse("9223372036854775808"), .double(9223372036854775808))
        XCTAssertEqual(try JSONParser.parse("1.5e2"), .double(150))
        XCTAssertEqual(try JSONParser.parse("0.25"), .double(0.25))
        XCTAssertEqual(try JSONParser.parse(#""a\"b\\c\/\n\u00e9\ud83d\ude00""#), .string("a\"b\\c/\né😀"))
        XCTAssertEqual(try JSONParser.parse(#"{"a":[1,{"b":null}],"c":"é"}"#),
                       .object([("a", .array([.int(1), .object([("b", .null)])])), ("c", .string("é"))]))
    }

    func testInvalidDocuments() {
        let cases = ["", "{", "[1,]", "{\"a\":}", "{a:1}", "01", "1.", "-", "1e", "tru", "nul", "\"abc",
                     "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"\u{01}\"", "[1 2]", "{} {}", "NaN", "'a'", "1e400", "-1e400"]
        for text in cases {
            XCTAssertThrowsError(try JSONParser.parse(text), "'\(text)' must not parse")
        }
    }

    func testInvalidUTF8IsRejected() {
        let cases: [[UInt8]] = [
            [0x22, 0xFF, 0x22],              // invalid lead byte
            [0x22, 0xC3, 0x22],              // truncated sequence
            [0x22, 0xC0, 0xAF, 0x22],        // overlong "/"
            [0x22, 0xED, 0xA0, 0x80, 0x22],  // encoded surrogate
            [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22],  // above U+10FFFF
            [0xEF, 0xBB, 0xBF, 0x7B, 0x7D],  // a BOM is not JSON
        ]
        for bytes in cases { XCTAssertThrowsError(try JSONParser.parse(bytes), "\(bytes)") }
        XCTAssertEqual(try JSONParser.parse([0x22, 0xE2, 0x82, 0xAC, 0x22]), .string("€"))
    }

    func testDepthIsLimited() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        XCTAssertThrowsError(try JSONParser.parse(deep)) { error in
            XCTAssertTrue("\(error)".contains("nesting deeper"))
        }
        let ok = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        XCTAssertNoThrow(try JSONParser.parse(ok))
    }

    func testSerialisationRoundTrips() throws {
        let value = JSONValue.object([("s", .string("a\"\\\n\t\u{01}é")), ("n", .int(-3)), ("d", .double(0.1)),
                                      ("whole", .double(2)), ("a", .array([.null, .bool(false)]))])
        let text = value.serializedString
        XCTAssertEqual(try JSONParser.parse(text), value)
        XCTAssertTrue(text.contains(#""whole":2.0"#))
        XCTAssertEqual(JSONValue.double(.nan).serializedString, "null")
    }
}

extension JSONParserTests {
    func testARepeatedKeyKeepsItsLastValue() throws {
        let value = try JSONParser.parse(#"{"a":1,"b":2,"a":3}"#)
        XCTAssertEqual(value["a"], .int(3))
        struct P: Decodable { var a: Int }
        XCTAssertEqual(try JSONValueDecoder.decode(P.self, from: value).a, 3)
    }
}
