import Foundation
import XCTest
@testable import Runtime

/// Where the tokenizer tests' fixtures live: Tests/RuntimeTests/Fixtures, found from this file.
enum TokenizerFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let golden = root.appendingPathComponent("golden")
    static let tokenizers = root.appendingPathComponent("tokenizers")
    /// ../shared/golden beside the repository, for the files not copied here.
    static let sharedGolden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/golden")
}
