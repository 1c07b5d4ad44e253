import Foundation

/// A file the runtime cannot read: which file, and what is wrong with it, in words a person can
/// act on ("tensor model.norm.weight: byte range 96..352 ends past the end of the data (320 bytes)").
/// The daemon answers it with the contract's FormatError (-31010), `data.file` and `data.problem`.
public struct FormatError: Error, Equatable, CustomStringConvertible {
    public let file: String
    public let problem: String

    public init(file: String, _ problem: String) {
        self.file = file
        self.problem = problem
    }

    public var description: String { "\(file): \(problem)" }
}

extension FormatError {
    /// The bytes of `file` in `directory`; FormatError "missing from …" when it is not there.
    static func contents(of file: String, in directory: URL) throws -> Data {
        let url = directory.appendingPathComponent(file)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw FormatError(file: file, "missing from \(directory.path)")
        }
        return try RegularFile.contents(url)
    }

    /// `data` parsed as a JSON object; FormatError naming `file` otherwise.
    static func jsonObject(_ data: Data, file: String) throws -> [String: Any] {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw FormatError(file: file, "not a JSON object")
        }
        return object
    }
}
