import Foundation
import XCTest
@testable import Runtime

/// Loading tokenizer.json: what is unsupported or malformed is a FormatError naming the file and
/// the problem, never a crash; tokenizer_config.json supplies BOS/EOS when there is no
/// post-processor; lookups and decoding are byte-exact and skip ids out of range.
final class TokenizerLoadingTests: XCTestCase {
    static let model = #"{"type":"BPE","vocab":{"<s>":0,"</s>":1,"a":2,"b":3,"ab":4,"\u00e9":5,"e\u0301":6},"merges":["a b"]}"#

    func tokenizerJSON(model: String = TokenizerLoadingTests.model, _ fields: String = "") -> Data {
        Data(#"{"version":"1.0","model":\#(model)\#(fields.isEmpty ? "" : ",")\#(fields)}"#.utf8)
    }

    func assertFormatError(_ data: Data, mentions expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Tokenizer(tokenizerJSON: data, fileName: "models/x/tokenizer.json"), file: file, line: line) { error in
            guard let formatError = error as? FormatError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(formatError.file, "models/x/tokenizer.json", file: file, line: line)
            XCTAssertTrue(formatError.problem.contains(expected), "\(formatError.problem) lacks \(expected)", file: file, line: line)
        }
    }

    func testUnsupportedComponentsNameTheirType() {
        assertFormatError(tokenizerJSON(model: #"{"type":"WordPiece","vocab":{"a":0},"unk_token":"[UNK]"}"#), mentions: "WordPiece")
        assertFormatError(tokenizerJSON(model: #"{"type":"Unigram","vocab":[["a",-1.0]]}"#), mentions: "Unigram")
        assertFormatError(tokenizerJSON(#""normalizer":{"type":"NFKC"}"#), mentions: "NFKC")
        assertFormatError(tokenizerJSON(#""normalizer":{"type":"Sequence","normalizers":[{"type":"Lowercase"}]}"#), mentions: "Lowercase")
        assertFormatError(tokenizerJSON(#""pre_tokenizer":{"type":"BertPreTokenizer"}"#), mentions: "BertPreTokenizer")
        assertFormatError(tokenizerJSON(#""pre_tokenizer":{"type":"Split","pattern":{"Regex":"\\w+"},"behavior":"Isolated","invert":false}"#), mentions: "unsupported Split regex")
        assertFormatError(tokenizerJSON(###""decoder":{"type":"WordPiece","prefix":"##"}"###), mentions: "WordPiece")
        assertFormatError(tokenizerJSON(#""post_processor":{"type":"Mystery"}"#), mentions: "Mystery")
        assertFormatError(tokenizerJSON(#""normalizer":{"type":"Replace","pattern":{"Regex":" +"},"content":" "}"#), mentions: "Regex")
    }

    func testMalformedFilesAreFormatErrors() {
        assertFormatError(Data("not json".utf8), mentions: "not valid JSON")
        assertFormatError(Data(#"{"model": {"type": "BPE", "vocab": {"a": 0}"#.utf8), mentions: "not valid JSON")
        assertFormatError(Data("[1, 2]".utf8), mentions: "not a JSON object")
        assertFormatError(Data(#"{"version":"1.0"}"#.utf8), mentions: "model")
        assertFormatError(tokenizerJSON(model: #"{"type":"BPE","merges":[]}"#), mentions: "model.vocab")
        assertFormatError(tokenizerJSON(model: #"{"type":"BPE","vocab":{"a":"zero"},"merges":[]}"#), mentions: "expected an integer")
        assertFormatError(tokenizerJSON(model: #"{"type":"BPE","vocab":{"a":0,"b":1},"merges":["a c"]}"#), mentions: "merge token \"c\" is not in the vocabulary")
        assertFormatError(tokenizerJSON(model: #"{"type":"BPE","vocab":{"a":0,"b":1},"merges":[["x","b"]]}"#), mentions: "merge token \"x\"")
        assertFormatError(tokenizerJSON(model: #"{"type":"BPE","vocab":{"a":0,"b":1},"merges":["a b"]}"#), mentions: "merged token \"ab\"")
        assertFormatError(tokenizerJSON(model: #"{"type":"BPE","vocab":{"a":0,"b":1},"merges":["ab"]}"#), mentions: "model.merges[0]")
        assertFormatError(tokenizerJSON(#""added_tokens":[{"id":9}]"#), mentions: "added_tokens[0].content")
        assertFormatError(tokenizerJSON(#""post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<x>","type_id":0}}],"special_tokens":{}}"#), mentions: "<x>")
        XCTAssertThrowsError(try Tokenizer(directory: URL(fileURLWithPath: "/nonexistent/model"))) { error in
            XCTAssertEqual((error as? FormatError)?.file, "tokenizer.json")
            XCTAssertTrue((error as? FormatError)?.problem.contains("/nonexistent/model/tokenizer.json") == true)
        }
    }

    func testMalformedConfigIsAFormatErrorNamingTheConfig() {
        XCTAssertThrowsError(try Tokenizer(tokenizerJSON: tokenizerJSON(), config: Data("{".utf8), fileName: "m/tokenizer.json")) { error in
            XCTAssertEqual((error as? FormatError)?.file, "m/tokenizer_config.json")
        }
    }

    func testConfigAddsBosAndEosWhenThereIsNoPostProcessor() throws {
        let config = Data(#"{"add_bos_token": true, "add_eos_token": true, "bos_token": {"__type": "AddedToken", "content": "<s>"}, "eos_token": "</s>"}"#.utf8)
        let tokenizer = try Tokenizer(tokenizerJSON: tokenizerJSON(), config: config)
        XCTAssertEqual(tokenizer.encode("ab"), [0, 4, 1])
        XCTAssertEqual(tokenizer.encode("ab", addSpecialTokens: false), [4])
        XCTAssertEqual(tokenizer.bosTokenId, 0)
        XCTAssertEqual(tokenizer.eosTokenId, 1)

        let bosOnly = try Tokenizer(tokenizerJSON: tokenizerJSON(), config: Data(#"{"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>"}"#.utf8))
        XCTAssertEqual(bosOnly.encode("ab"), [0, 4], "LlamaTokenizer adds BOS by default")

        // A post-processor in tokenizer.json wins over the config.
        let template = #""post_processor":{"type":"TemplateProcessing","single":[{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"</s>","type_id":0}}],"special_tokens":{"</s>":{"id":"</s>","ids":[1],"tokens":["</s>"]}}}"#
        let templated = try Tokenizer(tokenizerJSON: tokenizerJSON(template), config: config)
        XCTAssertEqual(templated.encode("ab"), [4, 1])
        XCTAssertEqual(templated.eosTokenId, 1)

        XCTAssertEqual(try Tokenizer(tokenizerJSON: tokenizerJSON()).encode("ab"), [4], "no post-processor and no config: nothing added")
    }

    func testLookupsAreByteExact() throws {
        let tokenizer = try Tokenizer(tokenizerJSON: tokenizerJSON())
        // "é" precomposed and "e" + U+0301 are equal Swift strings but different tokens.
        XCTAssertEqual(tokenizer.id(for: "\u{E9}"), 5)
        XCTAssertEqual(tokenizer.id(for: "e\u{301}"), 6)
        XCTAssertEqual(tokenizer.token(for: 6).map { Array($0.unicodeScalars) }, ["e", "\u{301}"])
        XCTAssertEqual(tokenizer.vocabularySize, 7)
    }

    func testLegacyMergeSplitsAtTheFirstSpaceByte() throws {
        // "e \u{301}": the space and the combining mark form one Swift Character.
        let tokenizer = try Tokenizer(tokenizerJSON: tokenizerJSON(model: #"{"type":"BPE","vocab":{"e":0,"\u0301":1,"e\u0301":2},"merges":["e \u0301"]}"#))
        XCTAssertEqual(tokenizer.encode("e\u{301}e"), [2, 0])
    }

    func testSparseIdsAreRejectedNotAllocated() {
        assertFormatError(tokenizerJSON(model: #"{"type":"BPE","vocab":{"a":0,"b":2000000000},"merges":[]}"#), mentions: "too sparse")
    }

    func testDecodeSkipsIdsOutOfRange() throws {
        let tokenizer = try Tokenizer(directory: TokenizerFixtures.golden)
        let ids = tokenizer.encode("Hello", addSpecialTokens: false)
        XCTAssertEqual(tokenizer.decode([-5] + ids + [512, 1_000_000, Int.max]), "Hello")
        XCTAssertEqual(tokenizer.decode([Int.min, 99_999]), "")
        let stream = tokenizer.makeStreamingDecoder()
        XCTAssertEqual(([-1, 600] + ids).map { stream.append($0) }.joined() + stream.flush(), "Hello")
    }

    func testAddedTokenIdsFollowTheModelVocabularyLikeTokenizers() throws {
        // tokenizers ignores the file's ids: content in the model keeps its id, new content
        // gets the next id after the model's vocabulary.
        let tokenizer = try Tokenizer(tokenizerJSON: tokenizerJSON(#""added_tokens":[{"id":0,"content":"<s>","special":true,"normalized":false},{"id":42,"content":"<pad>","special":true,"normalized":false},{"id":43,"content":"[X]","special":false,"normalized":false}]"#))
        XCTAssertEqual(tokenizer.id(for: "<s>"), 0)
        XCTAssertEqual(tokenizer.id(for: "<pad>"), 7)
        XCTAssertEqual(tokenizer.id(for: "[X]"), 8)
        XCTAssertEqual(tokenizer.vocabularySize, 9)
        XCTAssertEqual(tokenizer.specialTokenIds, [0, 7])
        XCTAssertEqual(tokenizer.encode("a<pad>b[X]ab", addSpecialTokens: false), [2, 7, 3, 8, 4])
        XCTAssertEqual(tokenizer.decode([2, 7, 3, 8], skipSpecialTokens: true), "a b [X]")
    }

    func testJSONParserKeepsStringsExact() throws {
        // JSONSerialization on Linux drops a U+FEFF that starts a string or follows an escape.
        let parsed = try TokenizerJSONParser.parse(Array("[\"\u{FEFF}x\", \"\\t\u{FEFF}\", \"\\ud83d\\ude00\", \"\\ud800\", 1, -2.5e1, true, null]".utf8)) as! [Any]
        XCTAssertEqual((parsed[0] as! String).unicodeScalars.first, "\u{FEFF}")
        XCTAssertEqual(Array((parsed[1] as! String).unicodeScalars), ["\t", "\u{FEFF}"])
        XCTAssertEqual(parsed[2] as? String, "😀")
        XCTAssertEqual(parsed[3] as? String, "\u{FFFD}")
        XCTAssertEqual(parsed[4] as? Int, 1)
        XCTAssertEqual(parsed[5] as? Double, -25)
        XCTAssertEqual(parsed[6] as? Bool, true)
        XCTAssertTrue(parsed[7] is TokenizerJSONParser.Null)
        for bad in ["[1,]", "{\"a\" 1}", "\"\u{01}\"", "01", "[", String(repeating: "[", count: 600) + String(repeating: "]", count: 600)] {
            XCTAssertThrowsError(try TokenizerJSONParser.parse(Array(bad.utf8)), bad)
        }
    }
}
