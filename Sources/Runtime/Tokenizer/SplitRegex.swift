/// The pre-tokenizer split regexes LLaMA-family files use, as hand-written scanners over Unicode
/// scalars (no regex engine: the patterns are fixed, and a scanner is linear and allocation-light).
/// Each reproduces the leftmost-first backtracking semantics of the Oniguruma regex tokenizers
/// uses, with `\p{L}`/`\p{N}` as general categories L*/N* and `\s` as Unicode White_Space.
enum SplitRegex: Equatable {
    /// GPT-2, used by the ByteLevel pre-tokenizer when `use_regex` is true:
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// LLaMA-3 / tiktoken cl100k (maxDigits 3), and Qwen2's variant with single digits (maxDigits 1):
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case cl100k(maxDigits: Int)

    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let cl100kPattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    init?(pattern: String) {
        switch pattern {
        case SplitRegex.gpt2Pattern: self = .gpt2
        case SplitRegex.cl100kPattern: self = .cl100k(maxDigits: 3)
        case SplitRegex.qwen2Pattern: self = .cl100k(maxDigits: 1)
        default: return nil
        }
    }

    // Scalar classes.
    static let other: UInt8 = 0, letter: UInt8 = 1, number: UInt8 = 2, space: UInt8 = 3

    private static let asciiClasses: [UInt8] = (0..<128).map { v -> UInt8 in
        switch v {
        case 0x41...0x5A, 0x61...0x7A: return letter
        case 0x30...0x39: return number
        case 0x09...0x0D, 0x20: return space
        default: return other
        }
    }

    @inline(__always)
    static func classify(_ scalar: Unicode.Scalar) -> UInt8 {
        if scalar.value < 128 { return asciiClasses[Int(scalar.value)] }
        let properties = scalar.properties
        if properties.isWhitespace { return space }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return letter
        case .decimalNumber, .letterNumber, .otherNumber: return number
        default: return other
        }
    }

    /// The matches in `text` (valid UTF-8) as byte ranges, in order. Every scalar of these
    /// patterns starts some match, so the matches tile the text.
    func matches(in text: [UInt8], chunkBytes: Int = SplitRegex.chunkBytes) -> [Range<Int>] {
        var out: [Range<Int>] = []
        out.reserveCapacity(min(text.count, chunkBytes) / 3 + 1)
        forEachMatch(in: text, chunkBytes: chunkBytes) { out.append($0) }
        return out
    }

    /// About how many bytes are scanned at once: the scanner holds ~9 bytes per scalar of its chunk.
    static let chunkBytes = 1 << 16

    /// Calls `body` with each match, in order. A long text is scanned a chunk at a time, cut
    /// where a match always ends: after a line feed, before an ASCII scalar that is not white
    /// space (no alternative of these patterns takes a line feed and then anything but white
    /// space), or after an ASCII letter, before a space (a letter run ends at white space, and
    /// a space is never the end of a match that starts before it). The scanner looks one scalar
    /// past a match's end at most, so each chunk is scanned with the scalar after its cut in
    /// view: the matches are those of the whole text.
    func forEachMatch(in text: [UInt8], chunkBytes: Int = SplitRegex.chunkBytes, _ body: (Range<Int>) -> Void) {
        var start = 0
        while start < text.count {
            let cut = Self.nextCut(in: text, from: start + max(1, chunkBytes))
            start = scan(text, start..<(cut < text.count ? cut + 1 : cut), stop: cut, body)
        }
    }

    /// The first cut at or after `from`, or the end of the text.
    static func nextCut(in text: [UInt8], from: Int) -> Int {
        var p = max(1, from)
        while p < text.count {
            let b = text[p]
            let a = text[p - 1]
            if a == 0x0A && b < 0x80 && !(b >= 0x09 && b <= 0x0D) && b != 0x20 { return p }
            if b == 0x20 && ((a >= 0x41 && a <= 0x5A) || (a >= 0x61 && a <= 0x7A)) { return p }
            p += 1
        }
        return text.count
    }

    /// Scans the matches that start in `window` before `stop`; returns where the last one ends.
    private func scan(_ text: [UInt8], _ window: Range<Int>, stop: Int, _ body: (Range<Int>) -> Void) -> Int {
        let scalars = ByteText.scalarRanges(text[window])
        let n = scalars.count
        var values = [UInt32](repeating: 0, count: n)
        var classes = [UInt8](repeating: 0, count: n)
        for k in 0..<n {
            values[k] = scalars[k].scalar.value
            classes[k] = SplitRegex.classify(scalars[k].scalar)
        }
        var i = 0
        var upper = window.lowerBound
        while i < n && scalars[i].range.lowerBound < stop {
            let end: Int
            switch self {
            case .gpt2: end = SplitRegex.gpt2MatchEnd(values, classes, i)
            case .cl100k(let maxDigits): end = SplitRegex.cl100kMatchEnd(values, classes, i, maxDigits)
            }
            upper = end < n ? scalars[end].range.lowerBound : window.upperBound
            body(scalars[i].range.lowerBound..<upper)
            i = end
        }
        return upper
    }

    @inline(__always)
    private static func run(_ classes: [UInt8], from i: Int, of cls: UInt8) -> Int {
        var j = i
        while j < classes.count && classes[j] == cls { j += 1 }
        return j
    }

    /// `\s+(?!\S)|\s+` at a whitespace scalar: the run, less its last scalar when a
    /// non-space follows and the run is longer than one.
    @inline(__always)
    private static func whitespaceEnd(_ classes: [UInt8], _ i: Int) -> Int {
        let r = run(classes, from: i, of: space)
        if r == classes.count || r - i == 1 { return r }
        return r - 1
    }

    private static let apostrophe: UInt32 = 0x27, blank: UInt32 = 0x20, cr: UInt32 = 0x0D, lf: UInt32 = 0x0A

    /// The end of the contraction `'s|'t|'re|'ve|'m|'ll|'d` at `i`, if there is one; with
    /// `caseInsensitive`, letters match their simple case folds (ſ folds to s).
    @inline(__always)
    private static func contractionEnd(_ values: [UInt32], _ i: Int, caseInsensitive: Bool) -> Int? {
        guard values[i] == apostrophe, i + 1 < values.count else { return nil }
        func fold(_ v: UInt32) -> UInt32 {
            guard caseInsensitive else { return v }
            if v >= 0x41 && v <= 0x5A { return v + 0x20 }
            if v == 0x17F { return 0x73 }  // ſ LATIN SMALL LETTER LONG S
            return v
        }
        let a = fold(values[i + 1])
        switch a {
        case 0x73, 0x74, 0x6D, 0x64: return i + 2  // s t m d
        default: break
        }
        guard i + 2 < values.count else { return nil }
        let b = fold(values[i + 2])
        switch (a, b) {
        case (0x72, 0x65), (0x76, 0x65), (0x6C, 0x6C): return i + 3  // re ve ll
        default: return nil
        }
    }

    private static func gpt2MatchEnd(_ values: [UInt32], _ classes: [UInt8], _ i: Int) -> Int {
        if let end = contractionEnd(values, i, caseInsensitive: false) { return end }
        let cls = classes[i]
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional leading U+0020.
        if values[i] == blank && i + 1 < classes.count && classes[i + 1] != space {
            return run(classes, from: i + 1, of: classes[i + 1])
        }
        if cls != space { return run(classes, from: i, of: cls) }
        return whitespaceEnd(classes, i)
    }

    private static func cl100kMatchEnd(_ values: [UInt32], _ classes: [UInt8], _ i: Int, _ maxDigits: Int) -> Int {
        if let end = contractionEnd(values, i, caseInsensitive: true) { return end }
        let n = classes.count
        let cls = classes[i]
        // `[^\r\n\p{L}\p{N}]?\p{L}+`
        if cls == letter { return run(classes, from: i, of: letter) }
        if cls != number && values[i] != cr && values[i] != lf && i + 1 < n && classes[i + 1] == letter {
            return run(classes, from: i + 1, of: letter)
        }
        // `\p{N}{1,3}`
        if cls == number { return min(run(classes, from: i, of: number), i + maxDigits) }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        var start: Int? = nil
        if values[i] == blank && i + 1 < n && classes[i + 1] == other { start = i + 1 }
        if cls == other { start = i }
        if let start {
            var j = run(classes, from: start, of: other)
            while j < n && (values[j] == cr || values[j] == lf) { j += 1 }
            return j
        }
        // `\s*[\r\n]+`: through the last line break of the whitespace run.
        let r = run(classes, from: i, of: space)
        var k = r - 1
        while k >= i {
            if values[k] == cr || values[k] == lf { return k + 1 }
            k -= 1
        }
        return whitespaceEnd(classes, i)
    }
}
