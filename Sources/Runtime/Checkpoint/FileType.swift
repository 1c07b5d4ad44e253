import Foundation

/// What kind of thing a path names (`S_IFREG`, `S_IFDIR`, `S_IFLNK`, ...), links not followed, and
/// how error messages name each kind.
public enum FileType {
    /// The type of `url` itself (a link is `S_IFLNK`); nil when nothing is there.
    public static func of(_ url: URL) -> mode_t? {
        var status = stat()
        guard lstat(url.path, &status) == 0 else { return nil }
        return status.st_mode & S_IFMT
    }

    /// "a folder", "a FIFO", "a character device", ...
    public static func describe(_ type: mode_t) -> String {
        switch type {
        case S_IFDIR: return "a folder"
        case S_IFREG: return "a regular file"
        case S_IFLNK: return "a symbolic link"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }
}
