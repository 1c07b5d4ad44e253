import MemoryPlanner
import RPC

/// Sizes a request gives, checked against their `SizeLimits` bound as the request is decoded, in
/// every method: `@Size<SeqLen> var seqLen: Int` or `@SizeIfGiven<Samples> var maxSamples: Int?`.
/// A value outside its bound is InvalidParams naming the field before any work ("seqLen is
/// 9223372036854775807, past loramd's limit of 67108864"); what a method needs beyond the bound
/// (compare's seqLen of at least 2) it still checks itself.
protocol SizeBound { static var range: ClosedRange<Int> { get } }

enum SizeBounds {
    enum SeqLen: SizeBound { static let range = 1...SizeLimits.seqLen }
    enum Samples: SizeBound { static let range = 1...SizeLimits.samples }
    enum MicroBatch: SizeBound { static let range = 1...SizeLimits.microBatch }
    enum GradAccum: SizeBound { static let range = 1...SizeLimits.gradAccum }
    enum Steps: SizeBound { static let range = 1...SizeLimits.steps }
    /// A count that may be zero (`warmupSteps`).
    enum StepCount: SizeBound { static let range = 0...SizeLimits.steps }
    enum Rank: SizeBound { static let range = 1...SizeLimits.loraRank }
    enum NewTokens: SizeBound { static let range = 1...SizeLimits.newTokens }
    /// Tokens a plan adds after the prompt (`newTokens`, may be zero).
    enum TokenCount: SizeBound { static let range = 0...SizeLimits.seqLen }
    enum TopK: SizeBound { static let range = 1...SizeLimits.vocab }
}

extension SizeBound {
    static func checked(_ decoder: Decoder) throws -> Int {
        let value = try decoder.singleValueContainer().decode(Int.self)
        guard range.contains(value) else {
            let problem = value < range.lowerBound ? "must be at least \(range.lowerBound), got \(value)" : "is \(value), past loramd's limit of \(range.upperBound)"
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: problem))
        }
        return value
    }
}

@propertyWrapper struct Size<Bound: SizeBound>: Decodable {
    var wrappedValue: Int
    init(wrappedValue: Int) { self.wrappedValue = wrappedValue }
    init(from decoder: Decoder) throws { wrappedValue = try Bound.checked(decoder) }
}

@propertyWrapper struct SizeIfGiven<Bound: SizeBound>: Decodable {
    var wrappedValue: Int?
    init(wrappedValue: Int?) { self.wrappedValue = wrappedValue }
    init(from decoder: Decoder) throws {
        wrappedValue = try decoder.singleValueContainer().decodeNil() ? nil : try Bound.checked(decoder)
    }
}

extension KeyedDecodingContainer {
    /// An absent optional size is nil, as for a plain `Int?`.
    func decode<Bound>(_ type: SizeIfGiven<Bound>.Type, forKey key: Key) throws -> SizeIfGiven<Bound> {
        try decodeIfPresent(type, forKey: key) ?? SizeIfGiven(wrappedValue: nil)
    }
}
