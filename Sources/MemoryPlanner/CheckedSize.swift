/// A count of elements or bytes whose arithmetic refuses to overflow: `+` and `*` throw
/// `SizeError.overflow` where Int's would trap. Plans multiply sizes a request or a file chose
/// (seqLen², heads, layers, vocab), so every such product goes through this type; the formulas read
/// as formulas, with one `try` in front:
///
/// ```swift
/// let t = try b * s                                   // b, s: CheckedSize
/// let bytes = try (2 * t * heads * d + b * heads * s * s) * 4
/// program.buffer("saved", kind: .activation, bytes: try bytes.named("layers.0.saved"))
/// ```
///
/// Not ExpressibleByIntegerLiteral on purpose: a literal stays an Int (the mixed operators take
/// it), so expressions of literals alone never make the type checker consider this type.
public struct CheckedSize: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let value: Int

    public init(_ value: Int) { self.value = value }

    public var description: String { "\(value)" }

    public static func < (a: CheckedSize, b: CheckedSize) -> Bool { a.value < b.value }

    public static func + (a: CheckedSize, b: CheckedSize) throws(SizeError) -> CheckedSize {
        let (sum, overflow) = a.value.addingReportingOverflow(b.value)
        if overflow { throw .overflow(what: "") }
        return CheckedSize(sum)
    }

    public static func * (a: CheckedSize, b: CheckedSize) throws(SizeError) -> CheckedSize {
        let (product, overflow) = a.value.multipliedReportingOverflow(by: b.value)
        if overflow { throw .overflow(what: "") }
        return CheckedSize(product)
    }

    // Mixed with plain Int (a literal, a width already checked), so formulas need no conversions.
    public static func + (a: Int, b: CheckedSize) throws(SizeError) -> CheckedSize { try CheckedSize(a) + b }
    public static func + (a: CheckedSize, b: Int) throws(SizeError) -> CheckedSize { try a + CheckedSize(b) }
    public static func * (a: Int, b: CheckedSize) throws(SizeError) -> CheckedSize { try CheckedSize(a) * b }
    public static func * (a: CheckedSize, b: Int) throws(SizeError) -> CheckedSize { try a * CheckedSize(b) }

    /// The sum of `sizes`, checked.
    public static func sum<S: Sequence>(_ sizes: S) throws -> CheckedSize where S.Element == CheckedSize {
        var total = CheckedSize(0)
        for size in sizes { total = try total + size }
        return total
    }

    /// The value, as the size of something called `what`: an overflow inside gets that name, and
    /// a value past `SizeLimits.planBytes` is refused as one.
    public func named(_ what: String) throws -> Int {
        guard value <= SizeLimits.planBytes else { throw SizeError.overflow(what: what) }
        return value
    }

    /// `body`'s size named `what` (see `named`); an overflow inside `body` is reported as `what`'s.
    public static func named(_ what: String, _ body: () throws -> CheckedSize) throws -> Int {
        do { return try body().named(what) } catch let error as SizeError { throw error.naming(what) }
    }
}
