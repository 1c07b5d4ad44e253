import Foundation

/// General text the machine already has, for aligning a carrier when the caller gives no data
/// (`loram/run {align: true}`): plain-text documentation of installed packages. The paper aligns
/// on FineWeb and OpenWebMath; any broad, non-domain text serves the same purpose of pulling the
/// carrier back towards the original's general behaviour.
///
/// Sources, in this order, each walked in sorted path order (so the same machine gives the same
/// file): `/usr/share/common-licenses`, `/usr/share/doc` (Debian/Ubuntu), `/usr/share/man` is not
/// used (troff). Files are read whole if they are valid UTF-8, at least 2 KB, not compressed;
/// each is cut into documents of about 2,000 characters, until `maxBytes` of text are collected.
public enum GeneralText {
    public static let fileName = "alignment-text.jsonl"
    public static let roots = ["/usr/share/common-licenses", "/usr/share/doc"]
    /// 4 MB: about a million tokens, more than 80 steps × 4 × 256 use, with room for a longer run.
    public static let defaultMaxBytes = 4 << 20

    public struct Written: Sendable {
        public var url: URL
        public var documents: Int
        public var bytes: Int
        public var sources: [String]
    }

    public struct NoText: Error, CustomStringConvertible {
        public var description: String { "no general text found under \(GeneralText.roots.joined(separator: ", ")); give align.dataset" }
    }

    /// Writes the collected text as a JSONL `text` dataset at `url` (atomically) and says what it holds.
    public static func write(to url: URL, roots: [String] = GeneralText.roots, maxBytes: Int = GeneralText.defaultMaxBytes) throws -> Written {
        var lines = Data()
        var documents = 0, bytes = 0
        var used: [String] = []
        let manager = FileManager.default
        outer: for root in roots {
            guard let enumerator = manager.enumerator(atPath: root) else { continue }
            let paths = (enumerator.allObjects as? [String] ?? []).sorted()
            var usedRoot = false
            for relative in paths {
                let path = root + "/" + relative
                let lower = path.lowercased()
                if [".gz", ".xz", ".bz2", ".zst", ".zip", ".png", ".jpg", ".gif", ".pdf", ".svg"].contains(where: lower.hasSuffix) { continue }
                guard let attributes = try? manager.attributesOfItem(atPath: path), attributes[.type] as? FileAttributeType == .typeRegular,
                      let size = attributes[.size] as? Int, size >= 2048, size <= 1 << 20,
                      let data = manager.contents(atPath: path), let text = String(data: data, encoding: .utf8) else { continue }
                var rest = Substring(text)
                while !rest.isEmpty {
                    let piece = rest.prefix(2000)
                    rest = rest.dropFirst(piece.count)
                    let line = "{\"text\":" + JSONStringLiteral.quote(String(piece)) + "}\n"
                    lines.append(Data(line.utf8))
                    documents += 1
                    bytes += piece.utf8.count
                    usedRoot = true
                    if bytes >= maxBytes {
                        if !used.contains(root) { used.append(root) }
                        break outer
                    }
                }
            }
            if usedRoot { used.append(root) }
        }
        guard documents > 0 else { throw NoText() }
        try AtomicFile.write(lines, to: url)
        return Written(url: url, documents: documents, bytes: bytes, sources: used)
    }
}
