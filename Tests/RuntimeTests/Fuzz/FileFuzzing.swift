import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// The loop every file-parser fuzz test runs: a fixed number of cases from a fixed seed, each case
/// from its own generator (seed, index), so one case can be replayed alone. A case passes when the
/// parser succeeds or throws one of the errors the contract maps (FormatError, and for adapters
/// AdapterShapeMismatch), and returns within `timeLimit`. A trap kills the process, so long runs
/// (`scripts/fuzz-parsers`) print each case before running it: the last line names the culprit.
///
/// Environment: LORAMD_FUZZ_CASES (cases per parser), LORAMD_FUZZ_SEED, LORAMD_FUZZ_START (first
/// case index, to replay one), LORAMD_FUZZ_TRACE=1 (print every case).
enum FileFuzzing {
    static let environment = ProcessInfo.processInfo.environment

    static func cases(default count: Int) -> Int { Int(environment["LORAMD_FUZZ_CASES"] ?? "") ?? count }
    static var seed: UInt64 { UInt64(environment["LORAMD_FUZZ_SEED"] ?? "") ?? 0x5EED_F11E }
    static var start: Int { Int(environment["LORAMD_FUZZ_START"] ?? "") ?? 0 }
    static var trace: Bool { environment["LORAMD_FUZZ_TRACE"] == "1" }

    /// Seconds a single case may take in a debug build before it counts as a hang.
    static let timeLimit = 2.0

    /// The generator of case `index`: independent of every other case.
    static func generator(seed: UInt64, index: Int) -> SplitMix64 {
        var mixer = SplitMix64(seed: seed ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15))
        return SplitMix64(seed: mixer.next())
    }

    /// Writes a case's file. Unlinked first: ext4 flushes a file truncated and rewritten in place
    /// on close, which made the disk, not the parser, the cost of a case.
    static func write(_ data: Data, to url: URL) throws {
        unlink(url.path)
        try data.write(to: url)
    }

    struct Tally {
        var accepted = 0
        var refused = 0
    }

    /// Whether `error` is one the daemon answers as a contract error for a bad file.
    static func isContractError(_ error: Error, allowing extra: [Error.Type]) -> Bool {
        if error is FormatError { return true }
        return extra.contains { type(of: error) == $0 }
    }
}

extension XCTestCase {
    /// Runs `body` for each case; see `FileFuzzing`. `allowing` adds error types besides FormatError.
    func fuzz(_ parser: String, cases defaultCases: Int, allowing extra: [Error.Type] = [],
              file: StaticString = #filePath, line: UInt = #line,
              _ body: (_ random: inout SplitMix64, _ index: Int) throws -> Void) {
        let count = FileFuzzing.cases(default: defaultCases), seed = FileFuzzing.seed, first = FileFuzzing.start
        var tally = FileFuzzing.Tally()
        let began = Date()
        for index in first..<(first + count) {
            if FileFuzzing.trace {
                print("fuzz-case \(parser) seed \(seed) case \(index)")
                fflush(stdout)
            }
            var random = FileFuzzing.generator(seed: seed, index: index)
            let start = Date()
            do {
                try body(&random, index)
                tally.accepted += 1
            } catch where FileFuzzing.isContractError(error, allowing: extra) {
                tally.refused += 1
            } catch {
                XCTFail("\(parser) seed \(seed) case \(index): \(type(of: error)) is not a contract error: \(error)", file: file, line: line)
                return
            }
            let elapsed = Date().timeIntervalSince(start)
            if elapsed > FileFuzzing.timeLimit {
                XCTFail("\(parser) seed \(seed) case \(index): took \(String(format: "%.2f", elapsed)) s", file: file, line: line)
                return
            }
            if testRun?.failureCount ?? 0 > 0 {
                print("fuzz: \(parser) failed at seed \(seed) case \(index); replay with LORAMD_FUZZ_SEED=\(seed) LORAMD_FUZZ_START=\(index) LORAMD_FUZZ_CASES=1")
                return
            }
        }
        let seconds = String(format: "%.1f", Date().timeIntervalSince(began))
        print("fuzz: \(parser) \(count) cases from seed \(seed) (first \(first)): \(tally.accepted) accepted, \(tally.refused) refused, \(seconds) s")
        // A mutator that never gets past the parser's first check, or never breaks anything, tests little.
        if count >= 200 {
            XCTAssertGreaterThan(tally.refused, count / 20, "\(parser): too few cases refused; the mutations do not reach the checks", file: file, line: line)
        }
    }
}
