import Foundation
import MemoryPlanner

/// Seeded, structure-aware mutations of a JSON document. A random walk from the root picks a node
/// (each level as likely as the next, so a 500-entry vocabulary does not soak up every mutation),
/// which is then replaced by an edge value (0, -1, 1e18, 2^63, 1e400, -0, a string, null, deep
/// nesting), deleted, retyped (string ↔ number), wrapped, or, for an object, given a duplicate key.
/// Values JSONSerialization cannot write (2^63, 1e400, duplicate keys) go in as placeholders and
/// are spliced into the text afterwards. A quarter of the documents also get byte-level mutations.
struct JSONMutator {
    /// Raw JSON texts a field may be replaced with.
    static let edgeValues: [String] = [
        "0", "-1", "1", "2", "1.5", "-0", "1e18", "-1e18", "9223372036854775807", "9223372036854775808",
        "-9223372036854775809", "18446744073709551616", "1e400", "-1e400", "4.9e-324", "4096", "65",
        "true", "false", "null", "\"\"", "\"x\"", "\"12\"", "\"\\ud800\"", "\"\\u0000\"", "[]", "{}", "[0]", "[-1]",
        "[1e18]", "{\"a\":1}",
        "\"" + String(repeating: "a", count: 5000) + "\"",
        String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
        String(repeating: "{\"a\":", count: 600) + "1" + String(repeating: "}", count: 600),
    ]
    /// Sizes that pass a plausibility check (positive, under 1e12) but, unless checked against
    /// SizeLimits first, make a reader reserve gigabytes or loop for minutes.
    static let hugeSizeValues: [String] = ["1000000", "2147483647", "4294967296", "99999999999", "999999999999"]

    var random: SplitMix64
    private var placeholders: [String] = []
    private let edgeValues = JSONMutator.edgeValues

    init(_ random: SplitMix64) { self.random = random }

    /// `document` mutated; byte-mutated text when it does not parse as JSON.
    static func mutate(_ document: Data, _ random: inout SplitMix64) -> Data {
        guard let tree = try? JSONSerialization.jsonObject(with: document, options: [.fragmentsAllowed]) else {
            return Data(ByteMutator.mutate([UInt8](document), &random))
        }
        var mutator = JSONMutator(random)
        var value: Any = tree
        for _ in 0..<(1 + Int(mutator.random.next() % 3)) {
            value = mutator.walk(value, depth: 0) ?? NSNull()
        }
        var text = mutator.serialize(value)
        random = mutator.random
        if random.next() % 4 == 0 { text = ByteMutator.mutate(text, &random) }
        return Data(text)
    }

    private mutating func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }

    /// The tree with one node changed; nil when the node at the root is deleted.
    mutating func walk(_ value: Any, depth: Int) -> Any? {
        let descend = depth == 0 || random.next() % 3 != 0
        if descend, var object = value as? [String: Any], !object.isEmpty {
            let key = pick(object.keys.sorted())
            object[key] = walk(object[key]!, depth: depth + 1)
            return object
        }
        if descend, var array = value as? [Any], !array.isEmpty {
            let index = Int(random.next() % UInt64(array.count))
            if let changed = walk(array[index], depth: depth + 1) { array[index] = changed } else { array.remove(at: index) }
            return array
        }
        return change(value)
    }

    private mutating func change(_ value: Any) -> Any? {
        switch random.next() % 10 {
        case 0, 1, 2:
            return placeholder(random.next() % 3 == 0 ? pick(Self.hugeSizeValues) : pick(edgeValues))
        case 3:
            return nil
        case 4:  // retype: a string becomes a number, anything else its own text as a string
            if value is String { return placeholder(pick(["12", "-1", "0"])) }
            return serialize(value).count < 200 ? String(decoding: serialize(value), as: UTF8.self) : "x"
        case 5:  // a duplicate key with another value
            guard let object = value as? [String: Any], !object.isEmpty else { return placeholder(pick(edgeValues)) }
            let members = object.keys.sorted().map { "\(Self.quoted($0)):\(String(decoding: serialize(object[$0]!), as: UTF8.self))" }
            return placeholder("{" + members.joined(separator: ",") + ",\(Self.quoted(pick(object.keys.sorted()))):\(pick(edgeValues))}")
        case 6:  // wrapped, a little or deeply
            let depth = pick([1, 2, 600])
            return placeholder(String(repeating: "[", count: depth) + String(decoding: serialize(value), as: UTF8.self) + String(repeating: "]", count: depth))
        case 7:  // a list emptied, cut or with an element repeated
            guard var array = value as? [Any], !array.isEmpty else { return placeholder(pick(edgeValues)) }
            switch random.next() % 3 {
            case 0: return [Any]()
            case 1: array.removeLast(1 + Int(random.next() % UInt64(array.count)))
            default: array.insert(array[Int(random.next() % UInt64(array.count))], at: Int(random.next() % UInt64(array.count + 1)))
            }
            return array
        case 8:  // numbers nudged: off by one, negated, scaled
            guard let number = value as? NSNumber, !(value is Bool && "\(type(of: value))".contains("Bool")) else { return placeholder(pick(edgeValues)) }
            let d = number.doubleValue
            return placeholder(pick(["\(d + 1)", "\(d - 1)", "\(-d)", "\(d * 2)", "\(Int(exactly: d.rounded()) ?? 0)"]))
        default:  // a string mutated byte by byte
            guard let string = value as? String else { return placeholder(pick(edgeValues)) }
            return String(decoding: ByteMutator.mutate(Array(string.utf8), &random), as: UTF8.self)
        }
    }

    private mutating func placeholder(_ raw: String) -> String {
        placeholders.append(raw)
        return "@@fuzz\(placeholders.count - 1)@@"
    }

    static func quoted(_ key: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: key, options: [.fragmentsAllowed])
        return String(decoding: data, as: UTF8.self)
    }

    /// The tree as JSON text, placeholders replaced by their raw text (which may hold others).
    func serialize(_ value: Any) -> [UInt8] {
        guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes]) else {
            return Array("null".utf8)
        }
        var text = String(decoding: data, as: UTF8.self)
        for _ in 0..<4 where text.contains("@@fuzz") {
            for (index, raw) in placeholders.enumerated().reversed() { text = text.replacingOccurrences(of: "\"@@fuzz\(index)@@\"", with: raw) }
        }
        return Array(text.utf8)
    }
}
