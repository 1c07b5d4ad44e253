import Foundation
import RPC
import Runtime

/// Paths in params: relative ones resolve against the daemon's working directory.
enum PathParam {
    static func url(_ path: String) -> URL {
        URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).standardizedFileURL
    }

    /// A path something will be written to: not empty (that would be the daemon's working
    /// directory), without a NUL byte (which the file system would cut the name at), and holding
    /// nothing `rule` may not replace (checked now, before any work, and again by the writer).
    static func output(_ path: String, field: String, rule: OutputRule) throws -> URL {
        try check(path, field: field)
        let url = url(path)
        do { try rule.check(url) } catch let conflict as OutputConflict { throw ErrorMapping.refusal(conflict, field: field) }
        return url
    }

    static func check(_ path: String, field: String) throws {
        if path.isEmpty { throw RPCError.invalidParams(field: field, "must not be empty") }
        if path.utf8.contains(0) { throw RPCError.invalidParams(field: field, "must not contain a NUL character") }
    }

    /// A directory that must exist, else NotFound naming it.
    static func existingDirectory(_ path: String, field: String) throws -> URL {
        let url = try existingItem(path, field: field)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw RPCError.invalidParams(field: field, "must be a directory, \(url.path) is a file")
        }
        return url
    }

    /// A file or a directory that must exist (a model is either), else NotFound naming it.
    static func existingItem(_ path: String, field: String, missing: String = "file or directory") throws -> URL {
        try check(path, field: field)
        let url = url(path)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw RPCError(.notFound, "Not found: \(url.path)", hint: "Check '\(field)': no such \(missing).",
                           data: [("field", .string(field)), ("path", .string(url.path))])
        }
        return url
    }

    static func existingFile(_ path: String, field: String) throws -> URL {
        try existingItem(path, field: field, missing: "file")
    }
}
