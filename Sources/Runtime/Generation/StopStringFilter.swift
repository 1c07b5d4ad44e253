import Foundation

/// Text in, text out, minus everything from the first stop string on. Holds back the tail that
/// could still become a stop string, and releases it once it cannot.
struct StopStringFilter {
    let stops: [String]
    private var pending = ""

    init(stops: [String]) { self.stops = stops.filter { !$0.isEmpty } }

    /// Adds `piece`; returns the text now safe to emit and whether a stop string was found.
    mutating func push(_ piece: String) -> (String, Bool) {
        pending += piece
        guard !stops.isEmpty else { defer { pending = "" }; return (pending, false) }
        if let cut = stops.compactMap({ pending.range(of: $0)?.lowerBound }).min() {
            defer { pending = "" }
            return (String(pending[..<cut]), true)
        }
        let hold = stops.map { Self.overlap(pending, $0) }.max() ?? 0
        let safe = pending.index(pending.endIndex, offsetBy: -hold)
        defer { pending = String(pending[safe...]) }
        return (String(pending[..<safe]), false)
    }

    /// The rest at the end of generation.
    mutating func finish(_ piece: String) -> (String, Bool) {
        let (emit, stopped) = push(piece)
        defer { pending = "" }
        return stopped ? (emit, true) : (emit + pending, false)
    }

    /// The length (in Characters) of the longest suffix of `text` that is a proper prefix of `stop`.
    static func overlap(_ text: String, _ stop: String) -> Int {
        let maximum = min(text.count, stop.count - 1)
        guard maximum > 0 else { return 0 }
        for length in stride(from: maximum, through: 1, by: -1) where text.hasSuffix(stop.prefix(length)) {
            return length
        }
        return 0
    }
}
