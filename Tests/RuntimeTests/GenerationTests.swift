import XCTest
@testable import Runtime

/// Generation with the KV cache: transformers' greedy ids exactly, sampling reproducible from a
/// seed, stop strings cut and held back correctly.
final class GenerationTests: XCTestCase {
    /// Spells each id as "<id>" so stop strings can be tested without a tokenizer.
    final class IdSpeller: IncrementalTextDecoder {
        func append(_ id: Int) -> String { "<\(id)>" }
        func flush() -> String { "" }
    }

    func testGreedyGenerationMatchesTransformersTokenForToken() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let cases = try Fixtures.json("tiny_greedy_golden.json")["cases"] as! [[String: Any]]
        XCTAssertEqual(cases.count, 2)
        for (index, golden) in cases.enumerated() {
            let prompt = golden["prompt_ids"] as! [Int]
            let expected = golden["generated_ids"] as! [Int]
            let session = try InferenceSession(model: model, capacity: prompt.count + expected.count)
            var options = TextGenerator.Options(maxTokens: expected.count)
            options.eosTokenIds = []
            let output = try TextGenerator(session: session).generate(prompt: prompt, options: options, decoder: IdSpeller())
            XCTAssertEqual(output.ids, expected, "case \(index)")
            XCTAssertEqual(output.finishReason, .length)
            XCTAssertEqual(output.promptTokens, prompt.count)
        }
    }

    func testEOSEndsGenerationAndIsNotText() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let golden = (try Fixtures.json("tiny_greedy_golden.json")["cases"] as! [[String: Any]])[0]
        let prompt = golden["prompt_ids"] as! [Int], expected = golden["generated_ids"] as! [Int]
        var options = TextGenerator.Options(maxTokens: 20)
        options.eosTokenIds = [expected[3]]  // pretend the 4th token is EOS
        let output = try TextGenerator(session: try InferenceSession(model: model, capacity: 64))
            .generate(prompt: prompt, options: options, decoder: IdSpeller())
        XCTAssertEqual(output.finishReason, .eos)
        XCTAssertEqual(output.ids, Array(expected[0...3]))
        XCTAssertEqual(output.text, expected[0..<3].map { "<\($0)>" }.joined())
    }

    func testStopStringCutsTheTextAndNothingPastItStreams() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let golden = (try Fixtures.json("tiny_greedy_golden.json")["cases"] as! [[String: Any]])[0]
        let prompt = golden["prompt_ids"] as! [Int], expected = golden["generated_ids"] as! [Int]
        let full = expected.map { "<\($0)>" }.joined()
        // A stop string that starts inside the 5th token's text and ends in the 6th.
        let fifth = "<\(expected[4])>", sixth = "<\(expected[5])>"
        let stop = String(fifth.dropFirst()) + String(sixth.prefix(2))
        var options = TextGenerator.Options(maxTokens: 20)
        options.stop = [stop]
        var streamed = ""
        let output = try TextGenerator(session: try InferenceSession(model: model, capacity: 64))
            .generate(prompt: prompt, options: options, decoder: IdSpeller(), onText: { streamed += $0 })
        XCTAssertEqual(output.finishReason, .stop)
        XCTAssertEqual(output.text, String(full[..<full.range(of: stop)!.lowerBound]))
        XCTAssertEqual(streamed, output.text, "nothing of the stop string or past it was streamed")
        XCTAssertEqual(output.ids.count, 6)
    }

    func testSamplingIsReproducibleAndRespectsTopK() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let prompt = [1, 5, 9, 42]
        func run(seed: UInt64, topK: Int? = nil, topP: Double? = nil) throws -> [Int] {
            var options = TextGenerator.Options(maxTokens: 12)
            options.sampler = Sampler.Settings(temperature: 1.0, topK: topK, topP: topP, seed: seed)
            return try TextGenerator(session: try InferenceSession(model: model, capacity: 32))
                .generate(prompt: prompt, options: options, decoder: IdSpeller()).ids
        }
        XCTAssertEqual(try run(seed: 7), try run(seed: 7))
        XCTAssertNotEqual(try run(seed: 7), try run(seed: 8))
        // top-k 1 and a tiny top-p are both greedy.
        var greedy = TextGenerator.Options(maxTokens: 12)
        greedy.sampler = Sampler.Settings(temperature: 0)
        let greedyIds = try TextGenerator(session: try InferenceSession(model: model, capacity: 32))
            .generate(prompt: prompt, options: greedy, decoder: IdSpeller()).ids
        XCTAssertEqual(try run(seed: 3, topK: 1), greedyIds)
        XCTAssertEqual(try run(seed: 3, topP: 1e-6), greedyIds)
    }

    func testSamplerDistributionFollowsTheSoftmax() {
        // Logits log(1), log(2), log(7): frequencies 0.1, 0.2, 0.7 at temperature 1.
        let logits: [Float] = [0, log(2), log(7)]
        let sampler = Sampler(vocabSize: 3, settings: .init(temperature: 1, seed: 1))
        var counts = [0, 0, 0]
        for _ in 0..<20000 { counts[logits.withUnsafeBufferPointer { sampler.next($0.baseAddress!, count: 3) }] += 1 }
        XCTAssertEqual(Double(counts[0]) / 20000, 0.1, accuracy: 0.01)
        XCTAssertEqual(Double(counts[1]) / 20000, 0.2, accuracy: 0.01)
        XCTAssertEqual(Double(counts[2]) / 20000, 0.7, accuracy: 0.01)
    }

    func testStopFilterHoldsBackPartialMatches() {
        var filter = StopStringFilter(stops: ["END"])
        XCTAssertEqual(filter.push("abcE").0, "abc")
        XCTAssertEqual(filter.push("N").0, "")
        XCTAssertEqual(filter.push("x").0, "ENx", "released once it can no longer be a stop string")
        let (text, stopped) = filter.push("yyEND zzz")
        XCTAssertEqual(text, "yy")
        XCTAssertTrue(stopped)
        var tail = StopStringFilter(stops: ["END"])
        _ = tail.push("abE")
        XCTAssertEqual(tail.finish("N").0, "EN", "at the end, a partial match is plain text")
    }
}
