import Foundation

extension GGUFFile {
    /// True when `url` is a regular file whose first four bytes are GGUF's magic. Opened
    /// non-blocking and checked to be a regular file first, so a FIFO cannot stall the caller.
    /// `followLinks: false` (an output's check) answers false for a link.
    public static func hasMagic(_ url: URL, followLinks: Bool = true) -> Bool {
        let fd = open(url.path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | (followLinks ? 0 : O_NOFOLLOW))
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { return false }
        var magic = [UInt8](repeating: 0, count: 4)
        return read(fd, &magic, 4) == 4 && magic == Array("GGUF".utf8)
    }
}
