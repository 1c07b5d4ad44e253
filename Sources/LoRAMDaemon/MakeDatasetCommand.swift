import Foundation
import Runtime

/// `loramd make-dataset`: a text dataset (train.jsonl and a held-out eval.jsonl) from the same
/// seeded English grammar the built-in tokenizer corpus comes from, so examples, tests and the
/// LoRAM pipeline have data without a download. Train and eval come from different seeds: no
/// paragraph of one is in the other.
enum MakeDatasetCommand {
    static let usage = """
    usage: loramd make-dataset --out DIR [--train-bytes N] [--eval-bytes N] [--seed N]

    Writes DIR/train.jsonl and DIR/eval.jsonl, one {"text": paragraph} per line (the `text`
    dataset format), about N bytes of text each (defaults 200000 and 20000).
    """

    static func run(_ arguments: [String]) -> Int32 {
        var out: String?
        var trainBytes = 200_000, evalBytes = 20_000
        var seed: UInt64 = 1
        var rest = arguments[...]
        func fail(_ message: String) -> Int32 {
            FileHandle.standardError.write(Data("loramd make-dataset: \(message)\n\n\(usage)\n".utf8))
            return 2
        }
        while let argument = rest.popFirst() {
            if argument == "--help" || argument == "-h" { print(usage); return 0 }
            guard let value = rest.popFirst() else { return fail("\(argument) needs a value") }
            switch argument {
            case "--out": out = value
            case "--train-bytes": guard let n = Int(value), n > 0 else { return fail("--train-bytes must be a positive integer") }; trainBytes = n
            case "--eval-bytes": guard let n = Int(value), n > 0 else { return fail("--eval-bytes must be a positive integer") }; evalBytes = n
            case "--seed": guard let n = UInt64(value) else { return fail("--seed must be a non-negative integer") }; seed = n
            default: return fail("unknown option \(argument)")
            }
        }
        guard let out else { return fail("--out is required") }
        let directory = URL(fileURLWithPath: out)
        do {
            try OutputRule.outputFolder.check(directory)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            // Seeds 2s+1 and 2s+2: a different pair per --seed, never the tokenizer corpus's own.
            for (name, bytes, split) in [("train.jsonl", trainBytes, seed &* 2 &+ 1), ("eval.jsonl", evalBytes, seed &* 2 &+ 2)] {
                let lines = try TokenizerBuilder.corpusParagraphs(seed: split, bytes: bytes).map { paragraph -> String in
                    let json = try JSONSerialization.data(withJSONObject: ["text": paragraph], options: [.withoutEscapingSlashes])
                    return String(decoding: json, as: UTF8.self)
                }
                try AtomicFile.write(Data((lines.joined(separator: "\n") + "\n").utf8), to: directory.appendingPathComponent(name))
                print("wrote \(directory.appendingPathComponent(name).path): \(lines.count) paragraphs")
            }
            return 0
        } catch {
            FileHandle.standardError.write(Data("loramd make-dataset: \(error)\n".utf8))
            return 1
        }
    }
}
