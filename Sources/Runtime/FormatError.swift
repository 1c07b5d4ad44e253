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
